"""Issue 18 items 2 and 3: runs that never overwrite by surprise, and settings refused up front
with one line (non-text envs, trees that cannot fit), a branch cap for long horizons."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

from baselines import common  # noqa: E402
from baselines.magrpo import Args, main, rollout, train, tree_size  # noqa: E402

torch.set_num_threads(1)


def small_args(tmp_path: Path | None, **overrides) -> Args:
    values = dict(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        group_size=2,
        max_new_tokens=2,
        temperature=1.0,
        top_p=1.0,
        learning_rate=1e-2,
        num_updates=2,
        checkpoint_every=1,
        output_dir=None if tmp_path is None else str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        threads=1,
    )
    values.update(overrides)
    return Args(**values)


def test_a_finished_run_says_so_and_no_resume_never_overwrites(tmp_path, capsys) -> None:
    train(small_args(tmp_path))
    capsys.readouterr()
    assert train(small_args(tmp_path)) == []  # relaunched: nothing to do, said on stderr
    said = capsys.readouterr().err
    assert "already finished" in said and "a checkpoint at update 2" in said
    with pytest.raises(common.TrainerConfigError, match="--overwrite") as refused:
        train(small_args(tmp_path, resume=False, num_updates=1))
    assert "a checkpoint at update 2 and 2 metric rows" in str(refused.value)
    assert len(common.read_metrics(tmp_path / "run")) == 2  # untouched
    rows = train(small_args(tmp_path, resume=False, overwrite=True, num_updates=1))
    assert [int(r["step"]) for r in rows] == [1]
    assert "--overwrite: deleting it" in capsys.readouterr().err
    assert len(common.read_metrics(tmp_path / "run")) == 1
    saved = common.load_checkpoint(tmp_path / "run" / common.CHECKPOINT_NAME)
    assert saved["step"] == 1


def test_a_resumed_run_says_where_it_continues(tmp_path, capsys) -> None:
    train(small_args(tmp_path, num_updates=1))
    capsys.readouterr()
    rows = train(small_args(tmp_path, num_updates=2))
    assert [int(r["step"]) for r in rows] == [2]
    assert "resuming at update 2" in capsys.readouterr().err


def test_rows_without_a_checkpoint_start_over_and_say_so(tmp_path, capsys) -> None:
    # A run folder can hold logged rows and no checkpoint: the run stopped before its first
    # checkpoint, or the folder came to another machine without its (untracked) checkpoint.
    first = train(small_args(tmp_path, num_updates=2))
    (tmp_path / "run" / common.CHECKPOINT_NAME).unlink()
    capsys.readouterr()
    again = train(small_args(tmp_path, num_updates=2))
    said = capsys.readouterr().err
    assert "2 metric rows but no checkpoint" in said and "starting over from step 0" in said
    assert [int(r["step"]) for r in again] == [1, 2]
    logged = common.read_metrics(tmp_path / "run")
    assert [int(r["step"]) for r in logged] == [1, 2]  # replaced, not appended to
    assert [r["team_return"] for r in again] == [r["team_return"] for r in first]


def test_default_run_folder_is_named_by_env_algorithm_seed_and_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = small_args(None, num_updates=1, seed=3)
    train(args)
    assert re.fullmatch(r"runs/CommonWord-v0__magrpo__3__\d{10}", args.output_dir)
    assert (tmp_path / args.output_dir / common.METRICS_NAME).is_file()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--env-id", "KitchenNumeric-v0"], "is not a text environment"),
        (["--env-id", "Kitchen-v0"], "set --branch-turns 2"),
        (["--group-size", "0"], "--group-size must be >= 1"),
        (["--top-p", "0"], "top_p must be in (0, 1]"),
        (["--env-id", "CommonWrd-v0"], "did you mean 'CommonWord'"),
        (["--env-kwargs", "[1]"], "--env-kwargs must be a JSON object"),
    ],
)
def test_config_errors_are_one_line(tmp_path, capsys, argv, expected) -> None:
    with pytest.raises(SystemExit) as ended:
        main([*argv, "--output-dir", str(tmp_path / "run"), "--no-progress"])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_tree_size_and_the_branch_cap() -> None:
    assert tree_size(4, 2) == 20
    assert tree_size(2, 3) == 2 + 4 + 8
    assert tree_size(2, 3, branch_turns=1) == 2 + 2 * 2
    assert tree_size(4, 400, branch_turns=2) == 4 + 16 + 16 * 398
    assert tree_size(3, 2, branch_turns=5) == tree_size(3, 2)


def test_branched_turns_then_single_sample_continuation(tmp_path) -> None:
    args = small_args(tmp_path, env_kwargs='{"max_turns": 3}', group_size=3, branch_turns=1)
    lm = common.build_model(args, ["agent_0", "agent_1"], "cpu", args.seed)
    root = rollout(lm, args, task_seed=5, generator=torch.Generator().manual_seed(0))
    assert len(root.rewards) == 3
    later = [n for n in root.nodes() if n is not root]
    assert later and all(len(n.rewards) == 1 and n.turn >= 1 for n in later)
    assert len(root.nodes()) <= tree_size(3, 3, branch_turns=1)
    # a long horizon trains with the cap: only the branched turn's groups give advantages
    rows = train(small_args(tmp_path, env_kwargs='{"max_turns": 3}', branch_turns=1))
    assert [int(r["step"]) for r in rows] == [1, 2]


def test_a_setting_added_after_a_checkpoint_counts_as_its_default() -> None:
    saved = small_args(None).to_dict()
    added = saved.pop("group_size")  # as if group_size were added after the checkpoint
    defaults = common.argument_defaults(Args)
    common.check_resumable(saved, {**saved, "group_size": defaults["group_size"]}, defaults)
    with pytest.raises(common.TrainerConfigError, match="group_size"):
        common.check_resumable(saved, {**saved, "group_size": defaults["group_size"] + 1}, defaults)
    with pytest.raises(common.TrainerConfigError, match="group_size"):  # no defaults: refused
        common.check_resumable(saved, {**saved, "group_size": added})
