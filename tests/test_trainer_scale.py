"""Issue 18 item 6: gradient checkpointing (same gradient as the cached scoring), a prompt
length cap that keeps the end of the observation, and several tasks per update."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

from baselines import common, maac, magrpo  # noqa: E402

torch.set_num_threads(1)
AGENTS = ["agent_0", "agent_1"]


def _args(tmp_path: Path, **overrides) -> magrpo.Args:
    values = dict(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        group_size=2,
        max_new_tokens=3,
        temperature=1.0,
        top_p=1.0,
        learning_rate=1e-2,
        baseline="none",
        num_updates=1,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        plot=False,
        export=False,
        threads=1,
    )
    values.update(overrides)
    return magrpo.Args(**values)


@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_gradient_checkpointing_gives_the_cached_gradient(tmp_path: Path, adapter: str) -> None:
    plain = common.build_model(_args(tmp_path, adapter=adapter), AGENTS, "cpu", 0)
    checkpointed_args = _args(tmp_path, adapter=adapter, gradient_checkpointing=True)
    checkpointed = common.build_model(checkpointed_args, AGENTS, "cpu", 0)
    prompts = [plain.encode("Your words: a, b"), plain.encode("Your words: a, b"), [5, 6]]
    responses = [[7, 8, 9], [10], [11, 12, 13, 14]]
    coefficients = torch.tensor([1.0, -0.5, 0.25])
    loss_a, logprobs_a = plain.accumulate_policy_gradient(
        "agent_1", prompts, responses, coefficients=coefficients
    )
    loss_b, logprobs_b = common.accumulate_policy_gradient(
        checkpointed, checkpointed_args, "agent_1", prompts, responses, coefficients
    )
    assert torch.allclose(logprobs_a, logprobs_b, atol=1e-5)
    assert float(loss_a) == pytest.approx(float(loss_b), abs=1e-5)
    grads_a = [p.grad for p in plain.trainable_parameters("agent_1")]
    grads_b = [p.grad for p in checkpointed.trainable_parameters("agent_1")]
    assert sum(g is not None for g in grads_a) > 0
    for a, b in zip(grads_a, grads_b):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-5)


def test_training_with_gradient_checkpointing(tmp_path: Path) -> None:
    rows = magrpo.train(_args(tmp_path, gradient_checkpointing=True))
    assert torch.isfinite(torch.tensor(rows[0]["loss/agent_0"]))
    assert rows[0]["kl/agent_0"] == pytest.approx(0.0, abs=1e-4)  # first samples: base policy


def test_prompt_cap_keeps_the_end_of_the_observation(tmp_path: Path) -> None:
    lm = common.build_model(_args(tmp_path), AGENTS, "cpu", 0)
    text = "first words here, then the middle part, and the final question?"
    capped = common.cap_prompt(lm, text, 5)
    assert len(lm.tokenizer(capped, add_special_tokens=False)["input_ids"]) <= 5
    assert text.endswith(capped.strip()[-3:]) and len(capped) < len(text)
    assert common.cap_prompt(lm, text, 0) == text
    full = magrpo.train(_args(tmp_path / "a"))[0]["prompt_tokens_mean"]
    capped_rows = magrpo.train(_args(tmp_path / "b", max_prompt_tokens=8))
    assert capped_rows[0]["prompt_tokens_mean"] < full


def test_several_tasks_per_update(tmp_path: Path) -> None:
    args = _args(tmp_path, tasks_per_update=3)
    assert common.task_seeds(args, 2, common.Distributed("cpu")) == [3, 4, 5]
    row = magrpo.train(args)[0]
    assert row["joint_actions"] == 3 * 2  # three tasks, two joint actions each
    lm = common.build_model(args, AGENTS, "cpu", 0)
    critic_args = maac.Args(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        rollouts=2,
        max_new_tokens=2,
        output_dir=str(tmp_path / "maac"),
    )
    trajectories = maac.rollout(lm, critic_args, [1, 2], torch.Generator().manual_seed(0))
    assert len(trajectories) == 4
    assert trajectories[0][0].state == trajectories[1][0].state  # grouped task by task
    assert trajectories[0][0].state != trajectories[2][0].state
