"""Issue 18: docs/baselines.md lists every trainer option and every logged column as they are."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

from baselines import common, maac, magrpo  # noqa: E402

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "baselines.md").read_text()


@pytest.mark.parametrize("args_class", [magrpo.Args, maac.Args], ids=["magrpo", "maac"])
def test_every_option_is_documented(args_class) -> None:
    missing = [
        f"--{f.name.replace('_', '-')}"
        for f in dataclasses.fields(args_class)
        if f"`--{f.name.replace('_', '-')}`" not in DOCS
    ]
    assert not missing, f"docs/baselines.md does not list {missing}"


def _documented(column: str) -> bool:
    generic = re.sub(r"^reward/.+", "reward/<component>", column)
    generic = re.sub(r"^grad_norm/critic_.+", "grad_norm/critic_<name>", generic)
    generic = re.sub(r"^grad_norm/policy.+", "grad_norm/<policy>", generic)
    generic = re.sub(r"^(critic_loss|value_mean)/.+", r"\1/<name>", generic)
    generic = re.sub(r"/agent_\d+$", "/<agent>", generic)
    return f"`{generic}`" in DOCS


def test_every_logged_column_is_documented(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    shared = dict(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        max_new_tokens=2,
        num_updates=1,
        eval_every=1,
        eval_episodes=1,
        progress=False,
        tensorboard=False,
        plot=False,
        export=False,
        threads=1,
    )
    magrpo.train(magrpo.Args(group_size=2, output_dir=str(tmp_path / "a"), **shared))
    maac.train(maac.Args(rollouts=2, output_dir=str(tmp_path / "b"), **shared))
    columns = {c for run in ("a", "b") for c in common.read_metrics(tmp_path / run)[0]}
    missing = sorted(c for c in columns if not _documented(c))
    assert not missing, f"docs/baselines.md does not describe {missing}"
