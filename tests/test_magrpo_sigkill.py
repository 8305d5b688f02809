"""A real SIGKILL in the middle of MAGRPO training: the resumed run ends exactly where an
uninterrupted one does (metrics and final weights), with no half-written files left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

from baselines import common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIME_COLUMNS = ("time/rollout", "time/update", "time/step", "time/diagnostics", "time/eval")
ARGS = [
    "--env-id", "CommonWord-v0", "--env-kwargs", '{"max_turns": 2}', "--group-size", "2",
    "--max-new-tokens", "2", "--temperature", "1.0", "--top-p", "1.0", "--learning-rate", "1e-2",
    "--num-updates", "8", "--checkpoint-every", "2", "--no-progress", "--no-tensorboard",
    "--threads", "1",
]  # fmt: skip


def run(output: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "baselines.magrpo",
        *ARGS,
        "--output-dir",
        str(output),
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]


def policies(folder: Path) -> dict:
    saved = torch.load(folder / common.CHECKPOINT_NAME, map_location="cpu", weights_only=False)
    return saved["policies"]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    process = run(straight)
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-3000:]

    killed = tmp_path / "killed"
    process = run(killed)
    metrics = killed / common.METRICS_NAME
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill once a checkpoint exists and training went on
        if (
            (killed / common.CHECKPOINT_NAME).exists()
            and metrics.exists()
            and len(metrics.read_text().splitlines()) >= 4
        ):
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    steps_done = len(metrics.read_text().splitlines()) - 1
    assert 0 < steps_done < 8, "the run was not killed in the middle"

    process = run(killed)  # resumes from the last complete checkpoint
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-3000:]
    assert strip(common.read_metrics(killed)) == strip(common.read_metrics(straight))
    expected, got = policies(straight), policies(killed)
    for policy, tensors in expected.items():
        for name, tensor in tensors.items():
            assert torch.equal(tensor, got[policy][name]), f"{policy}.{name} differs"
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]
