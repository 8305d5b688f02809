"""Actor-critic trainer (baselines/maac.py): GAE, shared vs independent critics, resume."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

from baselines import common  # noqa: E402
from baselines.maac import (  # noqa: E402
    Args,
    build_critics,
    critic_input,
    gae_advantages,
    load_critic_state_dict,
    rollout,
    train,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
TIME_COLUMNS = ("time/rollout", "time/update", "time/step", "time/diagnostics", "time/eval")


def small_args(tmp_path: Path, **overrides) -> Args:
    values = dict(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 2}',
        rollouts=2,
        max_new_tokens=2,
        temperature=1.0,
        top_p=1.0,
        learning_rate=1e-2,
        critic_learning_rate=1e-2,
        num_updates=2,
        checkpoint_every=1,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        threads=1,
    )
    values.update(overrides)
    return Args(**values)


def test_gae_matches_hand_computation() -> None:
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.5, 0.25, 1.0])
    dones = torch.tensor([0.0, 0.0, 1.0])
    gamma, lam = 0.9, 0.8
    d2 = 2.0 - 1.0
    d1 = 0.0 + gamma * 1.0 - 0.25
    d0 = 1.0 + gamma * 0.25 - 0.5
    expected = [d0 + gamma * lam * (d1 + gamma * lam * d2), d1 + gamma * lam * d2, d2]
    assert gae_advantages(rewards, values, dones, gamma, lam).tolist() == pytest.approx(expected)
    # lambda = 0 is one-step TD; lambda = 1 with V = 0 is the discounted return
    td = gae_advantages(rewards, values, dones, gamma, 0.0)
    assert td.tolist() == pytest.approx([d0, d1, d2])
    mc = gae_advantages(rewards, torch.zeros(3), dones, gamma, 1.0)
    assert mc.tolist() == pytest.approx([1.0 + gamma**2 * 2.0, gamma * 2.0, 2.0])
    # a done turn cuts the bootstrap from the next one
    cut = gae_advantages(
        torch.tensor([1.0, 5.0]), torch.tensor([0.0, 3.0]), torch.tensor([1.0, 0.0]), 0.9, 1.0
    )
    assert cut[0].item() == pytest.approx(1.0)


def test_critics_read_state_or_own_observation(tmp_path: Path) -> None:
    args = small_args(tmp_path, rollouts=3)
    lm = common.build_model(args, ["agent_0", "agent_1"], "cpu", args.seed)
    trajectories = rollout(lm, args, task_seed=4, generator=torch.Generator().manual_seed(0))
    assert len(trajectories) == 3
    for trajectory in trajectories:
        assert 1 <= len(trajectory) <= 2 and trajectory[-1].done
        assert all(not t.done for t in trajectory[:-1])
        first = trajectory[0]
        assert "agent_0 words:" in critic_input(first, "shared")
        assert critic_input(first, "agent_1") == first.observations["agent_1"]
        assert critic_input(first, "agent_1").startswith("You and your partner")
    shared = build_critics(args, ["agent_0", "agent_1"], "cpu")
    independent = build_critics(
        small_args(tmp_path, critic="independent"), ["agent_0", "agent_1"], "cpu"
    )
    assert list(shared) == ["shared"] and list(independent) == ["agent_0", "agent_1"]
    values = shared["shared"]([t.state for t in trajectories[0]])
    assert values.shape == (len(trajectories[0]),) and torch.all(
        values == 0
    )  # zero-initialised head


def test_critic_runs_a_repeated_state_once_with_the_same_values_and_gradient(tmp_path) -> None:
    """The rollouts of one task share their first state: the critic encodes it once, and
    values and gradients equal those of encoding every row."""
    args = small_args(tmp_path)
    critic = build_critics(args, ["agent_0", "agent_1"], "cpu")["shared"]
    with torch.no_grad():
        critic.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    texts = ["state of task A", "state of task B, longer", "state of task A", "state of task A"]
    targets = torch.tensor([0.5, -1.0, 2.0, 0.0])
    passes = []
    original = critic.backbone.forward

    def counted(*a, **k):
        passes.append(k["input_ids"].shape[0])
        return original(*a, **k)

    critic.backbone.forward = counted
    values = critic(texts)
    torch.nn.functional.mse_loss(values, targets).backward()
    grads = [p.grad.clone() for p in critic.parameters()]
    assert passes == [2]
    critic.zero_grad()
    each = torch.cat([critic([text]) for text in texts])
    torch.nn.functional.mse_loss(each, targets).backward()
    assert torch.allclose(values, each, atol=1e-5)
    for got, parameter in zip(grads, critic.parameters()):
        scale = float(parameter.grad.abs().max())
        assert scale > 0 and float((got - parameter.grad).abs().max()) <= 1e-5 * scale
    assert values[0] == values[2] == values[3] and values[0] != values[1]


@pytest.mark.parametrize("critic", ["shared", "independent"])
def test_two_updates_move_every_trainable_parameter(tmp_path: Path, critic: str) -> None:
    args = small_args(tmp_path, critic=critic)
    agents = ["agent_0", "agent_1"]
    initial = common.build_model(args, agents, "cpu", args.seed)
    before = {p: initial.policy_state_dict(p) for p in initial.policies}
    critics_before = {
        name: {k: v.clone() for k, v in c.state_dict().items()}
        for name, c in build_critics(args, agents, "cpu").items()
    }
    rows = train(args)
    assert [int(r["step"]) for r in rows] == [1, 2]
    for row in rows:
        values = [v for k, v in row.items() if k.startswith(("loss/", "critic_loss/"))]
        assert len(values) == (3 if critic == "shared" else 4)
        assert all(torch.isfinite(torch.tensor(values)))
    checkpoint = common.load_checkpoint(Path(args.output_dir) / common.CHECKPOINT_NAME)
    for policy, tensors in before.items():
        for name, value in tensors.items():
            assert not torch.equal(value, checkpoint["policies"][policy][name]), name
    assert set(checkpoint["critics"]) == set(critics_before)
    for name, tensors in critics_before.items():
        for key, value in tensors.items():
            assert not torch.equal(value, checkpoint["critics"][name][key]), f"{name}:{key}"


def test_resume_after_a_kill_continues_identically(tmp_path: Path) -> None:
    straight = small_args(tmp_path / "a", num_updates=4, checkpoint_every=2)
    train(straight)

    class Killed(Exception):
        pass

    def kill_at_three(step: int, metrics: dict) -> None:
        if step == 3:
            raise Killed

    broken = small_args(tmp_path / "b", num_updates=4, checkpoint_every=2)
    with pytest.raises(Killed):
        train(broken, on_step=kill_at_three)
    resumed = train(broken)
    assert [int(r["step"]) for r in resumed] == [3, 4]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]  # noqa: E731
    assert strip(common.read_metrics(broken.output_dir)) == strip(
        common.read_metrics(straight.output_dir)
    )
    a = common.load_checkpoint(Path(straight.output_dir) / common.CHECKPOINT_NAME)
    b = common.load_checkpoint(Path(broken.output_dir) / common.CHECKPOINT_NAME)
    assert a["replica_checksums"] == b["replica_checksums"]


def test_lora_critic_trains_only_its_adapter_and_head_and_resumes_identically(tmp_path) -> None:
    agents = ["agent_0", "agent_1"]
    critic = build_critics(small_args(tmp_path, critic_adapter="lora"), agents, "cpu")["shared"]
    trained = {n for n, p in critic.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or n.startswith("head.") for n in trained)
    assert {"head.weight", "head.bias"} <= trained
    frozen = {n: p.detach().clone() for n, p in critic.named_parameters() if not p.requires_grad}
    assert frozen  # the backbone

    straight = small_args(tmp_path / "a", critic_adapter="lora", num_updates=4, checkpoint_every=2)
    train(straight)
    saved = common.load_checkpoint(Path(straight.output_dir) / common.CHECKPOINT_NAME)
    kept = saved["critics"]["shared"]
    assert set(kept) == trained  # the frozen backbone is not in the checkpoint
    full = build_critics(small_args(tmp_path), agents, "cpu")["shared"]
    assert sum(v.numel() for v in kept.values()) < sum(p.numel() for p in full.parameters()) / 5
    for name in ("head.weight", "head.bias"):
        assert not torch.equal(kept[name], torch.zeros_like(kept[name])), name
    lora_b = [k for k in kept if "lora_B" in k]
    assert lora_b and any(bool(kept[k].any()) for k in lora_b)  # B starts at 0: it moved

    class Killed(Exception):
        pass

    def kill_at_three(step: int, metrics: dict) -> None:
        if step == 3:
            raise Killed

    broken = small_args(tmp_path / "b", critic_adapter="lora", num_updates=4, checkpoint_every=2)
    with pytest.raises(Killed):
        train(broken, on_step=kill_at_three)
    assert [int(r["step"]) for r in train(broken)] == [3, 4]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]  # noqa: E731
    assert strip(common.read_metrics(broken.output_dir)) == strip(
        common.read_metrics(straight.output_dir)
    )
    resumed = common.load_checkpoint(Path(broken.output_dir) / common.CHECKPOINT_NAME)
    assert all(torch.equal(kept[k], resumed["critics"]["shared"][k]) for k in kept)
    # a fully trained critic's checkpoint does not load into a LoRA critic
    with pytest.raises(common.TrainerConfigError, match="does not fit"):
        load_critic_state_dict(critic, full.state_dict())


def test_args_are_validated(tmp_path: Path) -> None:
    for bad in (
        {"rollouts": 0},
        {"gae_lambda": 2.0},
        {"critic_learning_rate": 0.0},
        {"env_kwargs": "x"},
    ):
        with pytest.raises(common.TrainerConfigError):
            small_args(tmp_path, **bad)


# Slow tier: the same plumbing (baselines/common.py) runs in test_magrpo's torchrun test.
@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
    reason="torchrun is not installed",
)
def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    output = tmp_path / "ddp"
    command = [
        str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2",
        "-m", "baselines.maac",
        "--env-kwargs", '{"max_turns": 1}', "--rollouts", "2", "--max-new-tokens", "2",
        "--num-updates", "1", "--learning-rate", "1e-2", "--output-dir", str(output),
        "--threads", "1", "--no-progress", "--no-tensorboard", "--device", "cpu",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=environment, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = common.load_checkpoint(output / common.CHECKPOINT_NAME)
    assert checkpoint["world_size"] == 2 and len(set(checkpoint["replica_checksums"])) == 1
