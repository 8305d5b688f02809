"""Issue 18 item 4: held-out greedy evaluation, sampled completions, KL to the base model,
entropy, gradient norm and learning rate logged, TensorBoard hyperparameters, a curves PNG,
W&B only on request."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

import mallm_envs  # noqa: E402
from baselines import common, maac, magrpo  # noqa: E402
from mallm_envs.agents.llm import MultiAgentLM, SamplingConfig  # noqa: E402

torch.set_num_threads(1)
AGENTS = ["agent_0", "agent_1"]


def test_training_logs_eval_completions_diagnostics_and_curves(tmp_path: Path) -> None:
    args = magrpo.Args(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        group_size=2,
        max_new_tokens=3,
        temperature=1.0,
        top_p=1.0,
        learning_rate=1e-2,
        num_updates=3,
        checkpoint_every=3,
        eval_every=2,
        eval_episodes=2,
        log_completions=2,
        output_dir=str(tmp_path / "run"),
        progress=False,
        threads=1,
    )
    magrpo.train(args)
    folder = Path(args.output_dir)
    rows = common.read_metrics(folder)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert ["eval/team_return" in r for r in rows] == [False, True, True]  # every 2 and last
    policy = "policy0_agent_0"
    for row in rows:
        for column in (
            "kl/agent_0",
            "entropy/agent_1",
            f"grad_norm/{policy}",
            "learning_rate",
            "update_skipped",
            "tokens_mean/agent_0",
            "tokens_sum",
            "time/diagnostics",
        ):
            assert column in row, column
        assert row["learning_rate"] == 1e-2 and row["entropy/agent_1"] > 0
    assert rows[0]["kl/agent_0"] == pytest.approx(0.0, abs=1e-4)  # LoRA starts at the base
    records = [json.loads(line) for line in (folder / "completions.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["kind"] == "train"]
    assert len(train_records) == 3 * 2 * 2  # steps x samples x agents
    assert {"prompt", "completion", "reward", "agent", "finish_reason"} <= set(train_records[0])
    assert sorted({r["step"] for r in records if r["kind"] == "eval"}) == [2, 3]
    assert (folder / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard")).Reload()
    assert "eval/team_return" in events.Tags()["scalars"]
    assert "hyperparameters/text_summary" in events.Tags()["tensors"]


def test_kl_is_measured_against_the_frozen_base(tmp_path: Path) -> None:
    lm = MultiAgentLM(AGENTS, "tiny", adapter="lora", seed=0)
    with torch.no_grad():
        for policy in lm.policies:
            for parameter in lm.trainable_parameters(AGENTS[lm.policies.index(policy)]):
                parameter.add_(torch.randn_like(parameter) * 0.5)
    sampled = lm.generate(
        {a: ["Say a word."] for a in AGENTS},
        num_samples=3,
        sampling=SamplingConfig(1.0, 1.0, 4),
        generator=torch.Generator().manual_seed(1),
    )
    generations = {a: sampled[a][0] for a in AGENTS}
    metrics = common.sample_diagnostics(lm, generations, log_kl=True)
    base = MultiAgentLM(AGENTS, "tiny", adapter="none")
    for agent, samples in generations.items():
        tokens = sum(g.num_tokens for g in samples)
        base_sum = float(
            base.sequence_logprobs(
                agent, [g.prompt_ids for g in samples], [g.response_ids for g in samples]
            ).sum()
        )
        expected = (sum(g.logprob_sum for g in samples) - base_sum) / tokens
        assert metrics[f"kl/{agent}"] == pytest.approx(expected, abs=1e-4)
        assert abs(metrics[f"kl/{agent}"]) > 1e-3  # the adapters moved the policy
        assert metrics[f"entropy/{agent}"] == pytest.approx(
            -sum(g.logprob_sum for g in samples) / tokens
        )


def test_evaluation_uses_the_test_split_when_there_is_one(tmp_path: Path) -> None:
    code = magrpo.Args(env_id="CoopCode-v0", output_dir=str(tmp_path))
    options, where = common.eval_env_options(code)
    assert options["split"] == "test" and "test split" in where
    word = magrpo.Args(env_id="CommonWord-v0", output_dir=str(tmp_path), eval_seed_start=7)
    options, where = common.eval_env_options(word)
    assert "split" not in options and "seeds from 7" in where


def test_actor_critic_logs_the_same_diagnostics(tmp_path: Path) -> None:
    args = maac.Args(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        rollouts=2,
        max_new_tokens=2,
        num_updates=1,
        eval_every=1,
        eval_episodes=1,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        plot=False,
        threads=1,
    )
    maac.train(args)
    row = common.read_metrics(args.output_dir)[0]
    for column in ("eval/team_return", "kl/agent_0", "grad_norm/critic_shared", "learning_rate"):
        assert column in row, column
    assert not (Path(args.output_dir) / "curves.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_track_without_wandb_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(common.TrainerConfigError, match="pip install wandb"):
        magrpo.Args(track=True, output_dir=str(tmp_path))


def test_evaluation_plays_the_official_test_tasks_in_order(tmp_path: Path) -> None:
    code = magrpo.Args(env_id="CoopCode-v1", output_dir=str(tmp_path), eval_episodes=3)
    options, _ = common.eval_env_options(code)
    env = mallm_envs.make("CoopCode-v1", split="test")
    official = env.unwrapped.official_test_tasks()
    assert common.eval_task_ids(code, options) == official[:3]
    many = magrpo.Args(env_id="CoopCode-v1", output_dir=str(tmp_path), eval_episodes=23)
    assert common.eval_task_ids(many, options) == official + official[:2]
    word = magrpo.Args(env_id="CommonWord-v0", output_dir=str(tmp_path), eval_episodes=2)
    assert common.eval_task_ids(word, common.eval_env_options(word)[0]) == [None, None]
