"""MAGRPO (baselines/magrpo.py): the math, one or two real updates, exact resume, torchrun."""

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
from baselines.magrpo import (  # noqa: E402
    Args,
    group_advantages,
    policy_loss,
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
        group_size=2,
        max_new_tokens=2,
        temperature=1.0,
        top_p=1.0,
        learning_rate=1e-2,
        num_updates=2,
        checkpoint_every=1,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        threads=1,
    )
    values.update(overrides)
    return Args(**values)


def test_group_advantages_and_loss() -> None:
    returns = torch.tensor([1.0, 0.0, 0.0, 3.0])
    assert group_advantages(returns, "mean").tolist() == [0.0, -1.0, -1.0, 2.0]
    assert group_advantages(returns, "none").tolist() == [1.0, 0.0, 0.0, 3.0]
    assert group_advantages(returns, "max").tolist() == [-2.0, -3.0, -3.0, 0.0]
    assert group_advantages(returns, "loo").tolist() == pytest.approx([0.0, -4 / 3, -4 / 3, 8 / 3])
    normalized = group_advantages(returns, "mean", normalize_std=True)
    assert normalized.tolist() == pytest.approx(
        (torch.tensor([0.0, -1, -1, 2]) / returns.std()).tolist(), rel=1e-4
    )
    assert group_advantages(returns * 100, "mean", clip=10.0).abs().max() == 10.0
    assert group_advantages(torch.tensor([0.5, 0.5]), "mean").tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        group_advantages(returns, "median")
    logprobs = torch.tensor([-1.0, -2.0], requires_grad=True)
    loss = policy_loss(torch.tensor([1.0, -1.0]), logprobs, torch.tensor([0.5, 0.5]))
    loss.backward()
    assert float(loss.detach()) == pytest.approx(-0.5)  # -(0.5*1*-1 + 0.5*-1*-2)
    assert logprobs.grad.tolist() == [-0.5, 0.5]  # raise the good sample, lower the bad one


def test_args_are_validated_where_they_are_born(tmp_path: Path) -> None:
    for bad in (
        {"env_kwargs": "[1]"},
        {"env_kwargs": "{"},
        {"group_size": 1},
        {"gamma": 1.5},
        {"top_p": 0.0},
        {"num_updates": 0},
        {"learning_rate": 0.0},
    ):
        with pytest.raises(common.TrainerConfigError):
            small_args(tmp_path, **bad)
    assert small_args(tmp_path, group_size=1, baseline="none").group_size == 1


def test_multi_turn_rollout_branches_every_joint_action(tmp_path: Path) -> None:
    args = small_args(tmp_path, group_size=3)
    lm = common.build_model(args, ["agent_0", "agent_1"], "cpu", args.seed)
    root = rollout(lm, args, task_seed=11, generator=torch.Generator().manual_seed(0))
    assert len(root.rewards) == 3 and all(len(root.generations[a]) == 3 for a in lm.agents)
    children = [c for c in root.children if c is not None]
    assert len(children) == sum(not d for d in root.done)
    for g, child in enumerate(root.children):
        if child is None:
            continue
        assert child.turn == 1 and len(child.rewards) == 3
        assert child.branch.actions == [
            ("agent_0", root.generations["agent_0"][g].text),
            ("agent_1", root.generations["agent_1"][g].text),
        ]
        # each branch's second-turn prompt carries its own first-turn feedback
        env = child.branch.env()
        assert env.turn == 1 and len(env.history) == 1
    expected = [
        r + 0.5 * (sum(c.returns(0.5)) / 3 if c else 0.0)
        for r, c in zip(root.rewards, root.children)
    ]
    assert root.returns(0.5) == pytest.approx(expected)


def _final_policies(folder: Path) -> dict:
    return common.load_checkpoint(folder / common.CHECKPOINT_NAME)["policies"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"baseline": "none", "adapter": "lora", "tensorboard": True},
        {"baseline": "none", "adapter": "full", "shared_policy": True, "gamma": 1.0},
    ],
    ids=["lora-per-agent", "full-shared"],
)
def test_two_updates_move_every_trainable_parameter(tmp_path: Path, overrides: dict) -> None:
    args = small_args(tmp_path, **overrides)
    initial = common.build_model(args, ["agent_0", "agent_1"], "cpu", args.seed)
    before = {p: initial.policy_state_dict(p) for p in initial.policies}
    rows = train(args)
    assert [int(r["step"]) for r in rows] == [1, 2]
    for row in rows:
        losses = [v for k, v in row.items() if k.startswith("loss/")]
        assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
        assert row["tokens_sum"] > 0 and "reward/agreement" in row
    after = _final_policies(Path(args.output_dir))
    assert set(after) == set(before)
    for policy, tensors in before.items():
        assert tensors
        for name, value in tensors.items():
            assert not torch.equal(value, after[policy][name]), f"{policy}:{name} did not move"
    metrics = common.read_metrics(args.output_dir)
    assert [int(r["step"]) for r in metrics] == [1, 2]
    if args.tensorboard:
        assert list((Path(args.output_dir) / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_after_a_kill_continues_identically(tmp_path: Path) -> None:
    straight = small_args(tmp_path / "a", num_updates=4, checkpoint_every=2, baseline="mean")
    expected = train(straight)

    class Killed(Exception):
        pass

    def kill_at_three(step: int, metrics: dict) -> None:
        if step == 3:
            raise Killed

    broken = small_args(tmp_path / "b", num_updates=4, checkpoint_every=2, baseline="mean")
    with pytest.raises(Killed):
        train(broken, on_step=kill_at_three)
    assert [int(r["step"]) for r in common.read_metrics(broken.output_dir)] == [1, 2, 3]
    assert not [p for p in Path(broken.output_dir).iterdir() if p.name.endswith(".tmp")]
    resumed = train(broken)
    assert [int(r["step"]) for r in resumed] == [3, 4]  # from the step-2 checkpoint
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]  # noqa: E731
    assert strip(common.read_metrics(broken.output_dir)) == strip(
        common.read_metrics(straight.output_dir)
    )
    assert strip(expected) == strip(common.read_metrics(straight.output_dir))
    # completions logged after the checkpoint were dropped on resume, then logged again
    completions = lambda args: (Path(args.output_dir) / "completions.jsonl").read_text()  # noqa: E731
    assert completions(broken) == completions(straight)
    final_a, final_b = (
        _final_policies(Path(straight.output_dir)),
        _final_policies(Path(broken.output_dir)),
    )
    for policy in final_a:
        for name in final_a[policy]:
            assert torch.equal(final_a[policy][name], final_b[policy][name])


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
    reason="torchrun is not installed",
)
def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    torchrun = str(Path(sys.executable).parent / "torchrun")
    output = tmp_path / "ddp"
    command = [
        torchrun, "--standalone", "--nproc_per_node", "2",
        "-m", "baselines.magrpo",
        "--env-kwargs", '{"max_turns": 1}', "--group-size", "2", "--max-new-tokens", "2",
        "--num-updates", "2", "--checkpoint-every", "2", "--baseline", "none",
        "--learning-rate", "1e-2", "--output-dir", str(output), "--threads", "1",
        "--no-progress", "--no-tensorboard", "--device", "cpu",
    ]  # fmt: skip
    # run as a module from the checkout: no PYTHONPATH, no sys.path edits
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=240, env=environment, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = common.load_checkpoint(output / common.CHECKPOINT_NAME)
    assert checkpoint["world_size"] == 2 and checkpoint["step"] == 2
    assert len(set(checkpoint["replica_checksums"])) == 1  # gradients were averaged: in sync
    assert len(checkpoint["rng"]) == 2
    assert [int(r["step"]) for r in common.read_metrics(output)] == [1, 2]
    # the CSV's columns come in the order one process logs them (they were sorted under DDP)
    single = small_args(
        tmp_path / "single", env_kwargs='{"max_turns": 1}', baseline="none", num_updates=1
    )
    train(single)
    header = lambda folder: (Path(folder) / common.METRICS_NAME).read_text().splitlines()[0]  # noqa: E731
    assert header(output) == header(single.output_dir)
