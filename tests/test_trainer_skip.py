"""Issue 18 item 5: an update whose advantages are all 0 runs no forward/backward pass and no
optimizer step, and says so in the metrics (rewards may be negative: v1 code envs)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

from baselines import common, maac, magrpo  # noqa: E402

torch.set_num_threads(1)


def _setup(tmp_path: Path):
    args = magrpo.Args(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        group_size=3,
        max_new_tokens=2,
        learning_rate=1e-2,
        num_updates=1,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
    )
    lm = common.build_model(args, ["agent_0", "agent_1"], "cpu", args.seed)
    optimizers = {
        p: torch.optim.AdamW(
            lm.trainable_parameters(next(a for a in lm.agents if lm.policy_name(a) == p)), lr=0.1
        )
        for p in lm.policies
    }
    root = magrpo.rollout(lm, args, task_seed=1, generator=torch.Generator().manual_seed(0))
    return args, lm, optimizers, root


@pytest.mark.parametrize("reward", [-0.75, 0.0, 1.0])
def test_equal_group_rewards_skip_the_update(tmp_path, monkeypatch, reward) -> None:
    args, lm, optimizers, root = _setup(tmp_path)
    root.rewards = [reward] * 3
    before = {p: lm.policy_state_dict(p) for p in lm.policies}

    def must_not_run(*_args, **_kwargs):
        raise AssertionError("a forward/backward pass ran for an all-zero-advantage group")

    monkeypatch.setattr(lm, "accumulate_policy_gradient", must_not_run)
    metrics = magrpo.update(lm, optimizers, root, args, common.Distributed("cpu"))
    assert metrics["update_skipped"] == 1.0 and metrics["advantage_abs_mean"] == 0.0
    for policy, tensors in before.items():
        assert all(torch.equal(v, lm.policy_state_dict(policy)[k]) for k, v in tensors.items())
        assert not optimizers[policy].state  # AdamW never stepped


def test_unequal_negative_rewards_still_update(tmp_path) -> None:
    args, lm, optimizers, root = _setup(tmp_path)
    root.rewards = [-1.0, -0.5, -1.0]
    before = {p: lm.policy_state_dict(p) for p in lm.policies}
    metrics = magrpo.update(lm, optimizers, root, args, common.Distributed("cpu"))
    assert metrics["update_skipped"] == 0.0
    assert all(metrics[f"grad_norm/{p}"] > 0 for p in lm.policies)
    for policy, tensors in before.items():
        after = lm.policy_state_dict(policy)
        assert any(not torch.equal(v, after[k]) for k, v in tensors.items())


def test_actor_critic_skips_actors_with_zero_advantages(tmp_path, monkeypatch) -> None:
    args = maac.Args(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        rollouts=2,
        max_new_tokens=2,
        advantage_norm="center",
        num_updates=1,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
    )
    lm = common.build_model(args, ["agent_0", "agent_1"], "cpu", args.seed)
    critics = maac.build_critics(args, list(lm.agents), "cpu")
    actor_opt = {
        p: torch.optim.AdamW(
            lm.trainable_parameters(next(a for a in lm.agents if lm.policy_name(a) == p)), lr=0.1
        )
        for p in lm.policies
    }
    critic_opt = {n: torch.optim.AdamW(c.parameters(), lr=0.1) for n, c in critics.items()}
    trajectories = maac.rollout(lm, args, task_seed=1, generator=torch.Generator().manual_seed(0))
    for trajectory in trajectories:
        for turn in trajectory:
            turn.reward = -0.25  # equal returns: centred advantages are all 0
    monkeypatch.setattr(lm, "accumulate_policy_gradient", lambda *a, **k: 1 / 0)
    metrics = maac.update(
        lm, critics, actor_opt, critic_opt, trajectories, args, common.Distributed("cpu")
    )
    assert metrics["update_skipped"] == 1.0
    assert all(not o.state for o in actor_opt.values())
    assert all(o.state for o in critic_opt.values())  # the critic still learns the value
