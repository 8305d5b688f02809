"""Issue 17 item 14: checkpoints load without running code, refuse corruption, clean temps."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from baselines import common  # noqa: E402

MARKER = "checkpoint-planted-code-ran"


def _payload() -> dict:
    generator = torch.Generator().manual_seed(3)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    weights = {"w": torch.arange(64, dtype=torch.float32).reshape(8, 8) + 0.5}
    return {
        "algorithm": "magrpo",
        "step": 7,
        "args": {"lr": 0.1, "agents": ["a", "b"], "resume": True, "note": None},
        "policies": {"a": weights, "b": {"bias": torch.zeros(3, dtype=torch.bfloat16)}},
        "optimizers": {"a": optimizer.state_dict()},
        "replica_checksums": [common.checksum({"a": weights})],
        "rng": [common.rng_state(generator)],
    }


def test_round_trip_keeps_every_value_and_rng_state(tmp_path) -> None:
    payload = _payload()
    path = tmp_path / common.CHECKPOINT_NAME
    common.save_checkpoint(path, payload)
    loaded = common.load_checkpoint(path)
    assert loaded is not None and set(loaded) == set(payload)
    assert torch.equal(loaded["policies"]["a"]["w"], payload["policies"]["a"]["w"])
    assert loaded["policies"]["b"]["bias"].dtype == torch.bfloat16
    assert loaded["args"] == payload["args"] and loaded["step"] == 7
    state, original = loaded["rng"][0]["numpy"], payload["rng"][0]["numpy"]
    assert state[0] == original[0] and state[1].dtype == original[1].dtype
    assert np.array_equal(state[1], original[1]) and state[2:] == original[2:]
    generator = torch.Generator()
    common.set_rng_state(loaded["rng"][0], generator)
    assert np.random.get_state()[1].tolist() == original[1].tolist()
    resumed = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=0.1)
    resumed.load_state_dict(loaded["optimizers"]["a"])


class _Planted:
    def __reduce__(self):
        return (Path(MARKER).touch, ())


def test_a_planted_pickle_runs_no_code_on_resume(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / common.CHECKPOINT_NAME
    torch.save({"step": 1, "evil": _Planted()}, path)
    with pytest.raises(common.CheckpointError, match="cannot be loaded safely"):
        common.load_checkpoint(path)
    assert not (tmp_path / MARKER).exists()


def test_a_plain_pickle_is_refused_too(tmp_path) -> None:
    path = tmp_path / common.CHECKPOINT_NAME
    path.write_bytes(pickle.dumps({"step": 1}))
    with pytest.raises(common.CheckpointError):
        common.load_checkpoint(path)


def test_a_flipped_bit_in_a_weight_is_refused(tmp_path) -> None:
    path = tmp_path / common.CHECKPOINT_NAME
    common.save_checkpoint(path, _payload())
    raw = bytearray(path.read_bytes())
    needle = (torch.arange(64, dtype=torch.float32) + 0.5).numpy().tobytes()
    at = raw.find(needle)
    assert at >= 0, "the weight's bytes are stored as they are"
    raw[at + 40] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(common.CheckpointError, match="is corrupted"):
        common.load_checkpoint(path)


def test_stale_temporary_files_are_removed(tmp_path) -> None:
    path = tmp_path / common.CHECKPOINT_NAME
    stale = tmp_path / f".{common.CHECKPOINT_NAME}.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".metrics.csv.x.tmp"
    other.write_bytes(b"")
    assert common.load_checkpoint(path) is None
    assert not stale.exists() and other.exists()
    stale.write_bytes(b"half a checkpoint")
    common.save_checkpoint(path, {"step": 1})
    assert not stale.exists() and [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == [
        other.name
    ]
