"""`evaluate` that survives and scales: episodes written as they end and resumed from, env
kwargs and seeds for unofficial runs, episodes in threads or side by side with the same
submission as a sequential run, and `mallm play --show-turns`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from mallm_envs.agents.spec import LLMSettings, build_agents
from mallm_envs.cli import main
from mallm_envs.leaderboard.submission import EvaluationError, Submission, evaluate
from mallm_envs.leaderboard.verify import VerificationError, verify_file

ENV = "CommonWord-v0"
INFO = {"name": "scripted-test", "spec": "scripted"}


def scripted(env: Any) -> dict[str, Any]:
    return build_agents("scripted", env, seed=0)


def replayable(submission: Submission) -> dict[str, Any]:
    """A submission without the measured wall times (which no two runs share)."""
    data = submission.to_dict()
    data["usage"] = [{**u, "wall_time_s": None} for u in data["usage"]]
    data["summary"] = {**data["summary"], "reported": None}
    return data


class Interrupted(KeyboardInterrupt):
    pass


class StopsAt:
    """A factory whose agents are interrupted (Ctrl-C) in the middle of episode ``stop``."""

    def __init__(self, stop: int) -> None:
        self.stop = stop
        self.built = 0

    def __call__(self, env: Any) -> dict[str, Any]:
        self.built += 1
        agents = scripted(env)
        if self.built == self.stop:
            first = next(iter(agents))

            def interrupted(observation: Any, info: Any) -> str:
                raise Interrupted

            agents[first].act = interrupted
        return agents


def test_finished_episodes_are_kept_and_a_rerun_plays_only_the_missing_ones(tmp_path) -> None:
    folder = tmp_path / "run.episodes"
    with pytest.raises(Interrupted):
        evaluate(ENV, StopsAt(4), agent_info=INFO, limit=6, progress=False, episodes_dir=folder)
    files = sorted(p.name for p in folder.iterdir())
    assert files == [
        "episode-000000.json",
        "episode-000001.json",
        "episode-000002.json",
        "run.json",
    ]
    rerun = StopsAt(stop=0)  # never interrupts
    resumed = evaluate(ENV, rerun, agent_info=INFO, limit=6, progress=False, episodes_dir=folder)
    assert rerun.built == 3  # only episodes 3, 4 and 5 were played again
    whole = evaluate(ENV, scripted, agent_info=INFO, limit=6, progress=False)
    assert replayable(resumed) == replayable(whole)
    assert [e.seed for e in resumed.episodes] == [0, 1, 2, 3, 4, 5]


def test_a_folder_of_another_evaluation_is_refused(tmp_path) -> None:
    folder = tmp_path / "run.episodes"
    evaluate(ENV, scripted, agent_info=INFO, limit=2, progress=False, episodes_dir=folder)
    other = {**INFO, "name": "someone else"}
    with pytest.raises(EvaluationError, match=r"another evaluation .*agent"):
        evaluate(ENV, scripted, agent_info=other, limit=2, progress=False, episodes_dir=folder)
    with pytest.raises(EvaluationError, match="differs in: seed"):
        evaluate(ENV, scripted, agent_info=INFO, seed=5, progress=False, episodes_dir=folder)
    (folder / "episode-000001.json").write_text("{half")
    with pytest.raises(EvaluationError, match=r"episode-000001\.json is not a finished episode"):
        evaluate(ENV, scripted, agent_info=INFO, limit=2, progress=False, episodes_dir=folder)


def test_env_kwargs_and_a_seed_make_a_clearly_unofficial_run(tmp_path) -> None:
    submission = evaluate(
        ENV,
        scripted,
        agent_info=INFO,
        limit=3,
        env_kwargs={"max_turns": 1},
        seed=100,
        progress=False,
    )
    assert [e.seed for e in submission.episodes] == [100, 101, 102]
    assert all(e.env_spec["kwargs"]["max_turns"] == 1 and e.turns == 1 for e in submission.episodes)
    assert submission.unofficial["env_kwargs"] == {"max_turns": 1}
    assert submission.unofficial["seed"] == 100 and submission.unofficial["limit"] == 3
    assert "unofficial" in submission.unofficial["note"]
    path = submission.save(tmp_path / "unofficial.json.gz")
    assert json.loads(gzip.decompress(path.read_bytes()))["unofficial"]["seed"] == 100
    with pytest.raises(VerificationError, match=r"\[unofficial\].*max_turns"):
        verify_file(path)
    with pytest.raises(Exception, match="does not take 'nope'"):
        evaluate(ENV, scripted, agent_info=INFO, env_kwargs={"nope": 1}, progress=False)


def test_an_official_run_has_no_unofficial_field_and_verifies(tmp_path) -> None:
    submission = evaluate(ENV, scripted, agent_info=INFO, progress=False)
    assert submission.unofficial is None and "unofficial" not in submission.to_dict()
    assert verify_file(submission.save(tmp_path / "s.json.gz")).summary["episodes"] == 50


@pytest.mark.parametrize(
    ("env_id", "options"),
    [("CoopCode-v1", {"concurrency": 3}), (ENV, {"concurrency": 4, "batch_episodes": 2})],
)
def test_threads_give_the_submission_of_a_sequential_run(env_id, options) -> None:
    sequential = evaluate(env_id, scripted, agent_info=INFO, limit=7, progress=False)
    threaded = evaluate(env_id, scripted, agent_info=INFO, limit=7, progress=False, **options)
    assert replayable(threaded) == replayable(sequential)


def test_threads_and_side_by_side_episodes_with_a_shared_tiny_model() -> None:
    pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
    settings = LLMSettings(temperature=0.8, max_new_tokens=4)

    def tiny(env: Any) -> dict[str, Any]:
        return build_agents("llm:tiny", env, seed=0, settings=settings)

    runs = [
        evaluate("SummaryPair-v1", tiny, agent_info=INFO, limit=4, progress=False, **options)
        for options in ({}, {"concurrency": 2}, {"batch_episodes": 3}, {"batch": False})
    ]
    for run in runs[1:]:
        assert replayable(run) == replayable(runs[0])


def test_agents_shared_between_episodes_in_flight_are_refused() -> None:
    shared: dict[str, Any] = {}

    def same_objects(env: Any) -> dict[str, Any]:
        if not shared:
            shared.update(scripted(env))
        return shared

    with pytest.raises(EvaluationError, match="fresh agents for every episode"):
        evaluate(ENV, same_objects, agent_info=INFO, limit=4, progress=False, concurrency=2)
    assert evaluate(ENV, same_objects, agent_info=INFO, limit=2, progress=False).episodes


# --------------------------------------------------------------------------- command line


def test_mallm_evaluate_resumes_and_marks_unofficial_runs(tmp_path, capsys) -> None:
    out = tmp_path / "s.json.gz"
    folder = Path(f"{out}.episodes")
    argv = ["evaluate", ENV, "--agent", "scripted", "--out", str(out), "--quiet", "--limit", "4"]
    argv += ["--name", "scripted-test"]
    # An interrupted run of the same evaluation left two episodes behind.
    info = {"name": "scripted-test", "spec": "scripted", "model": None, "revision": None}
    info.update({"decoding": None, "description": None})
    config = {"llm_settings": {**LLMSettings().__dict__}}
    with pytest.raises(Interrupted):
        evaluate(
            ENV, StopsAt(3), agent_info=info, limit=4, progress=False, episodes_dir=folder,
            run_config=config,
        )  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "resuming: 2 finished episode(s)" in captured.err
    assert "unofficial run (limit 4): not for boards" in captured.out
    assert not folder.exists() and out.exists()
    assert main([*argv, "--env-kwargs", '{"max_turns": 1}', "--seed", "9"]) == 0
    data = json.loads(gzip.decompress(out.read_bytes()))
    assert data["unofficial"]["env_kwargs"] == {"max_turns": 1}
    assert [e["seed"] for e in data["episodes"]] == [9, 10, 11, 12]
    assert main(["verify", str(out)]) == 1
    assert "[unofficial]" in capsys.readouterr().out
    assert main([*argv, "--concurrency", "0"]) == 2
    assert "concurrency must be an int >= 1" in capsys.readouterr().err


def test_play_show_turns_and_the_old_flag_names_the_new_one(capsys) -> None:
    assert main(["play", "Kitchen-v0", "--agents", "scripted", "--show-turns", "1"]) == 0
    out = capsys.readouterr().out
    assert "more steps not shown" in out and "over 400 turn(s)" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["play", ENV, "--max-turns", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--show-turns" in err and "--kwargs '{\"max_turns\": N}'" in err


STOPPER = """
import os

from mallm_envs.agents.base import BaseAgent


class Stopper(BaseAgent):
    def act(self, observation, info):
        if os.environ.get("STOP_AT_SEED") == str(self.seed):
            raise KeyboardInterrupt
        return "apple"

    def reset(self, seed=None):
        self.seed = None if seed is None else seed // 1000


def factory(env, agent):
    return Stopper()
"""


def test_an_interrupted_mallm_evaluate_says_how_to_resume(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "stopper.py").write_text(STOPPER)
    out = tmp_path / "s.json.gz"
    argv = ["evaluate", ENV, "--agent", f"{tmp_path / 'stopper.py'}:factory", "--out", str(out)]
    argv += ["--quiet", "--limit", "5", "--name", "stopper"]
    monkeypatch.setenv("STOP_AT_SEED", "3")
    assert main(argv) == 130
    assert "interrupted: 3 finished episode(s) kept in" in capsys.readouterr().err
    monkeypatch.delenv("STOP_AT_SEED")
    assert main(argv) == 0
    assert "resuming: 3 finished episode(s)" in capsys.readouterr().err
    data = json.loads(gzip.decompress(out.read_bytes()))
    assert [e["seed"] for e in data["episodes"]] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("spec", ["llm:tiny", "prompting:parallel:tiny"])
def test_a_shared_in_process_model_is_used_by_one_thread_at_a_time(monkeypatch, spec) -> None:
    llm = pytest.importorskip("mallm_envs.agents.llm", reason="needs the llm extra")
    import threading
    import time

    original = llm.MultiAgentLM.generate
    state = {"active": 0, "most": 0, "threads": set()}
    guard = threading.Lock()

    def spy(self: Any, prompts: Any, **kwargs: Any) -> Any:
        with guard:
            state["active"] += 1
            state["most"] = max(state["most"], state["active"])
            state["threads"].add(threading.get_ident())
        try:
            time.sleep(0.01)  # widen the window in which a second thread could enter
            return original(self, prompts, **kwargs)
        finally:
            with guard:
                state["active"] -= 1

    monkeypatch.setattr(llm.MultiAgentLM, "generate", spy)
    settings = LLMSettings(temperature=0.8, max_new_tokens=3)

    def team(env: Any) -> dict[str, Any]:
        return build_agents(spec, env, seed=0, settings=settings)

    threaded = evaluate(ENV, team, agent_info=INFO, limit=6, progress=False, concurrency=3)
    assert state["most"] == 1 and len(state["threads"]) > 1  # several threads, one at a time
    sequential = evaluate(ENV, team, agent_info=INFO, limit=6, progress=False)
    assert replayable(threaded) == replayable(sequential)


class Crashes(StopsAt):
    """Agents of episode ``stop`` crash (a bug in the agent, not Ctrl-C)."""

    def __call__(self, env: Any) -> dict[str, Any]:
        agents = super().__call__(env)
        if self.built == self.stop:
            first = next(iter(agents))

            def crash(observation: Any, info: Any) -> str:
                raise ValueError("agent bug")

            agents[first].act = crash
        return agents


def test_a_crash_in_one_thread_keeps_the_other_episodes(tmp_path) -> None:
    folder = tmp_path / "run.episodes"
    with pytest.raises(ValueError, match="agent bug"):
        evaluate(
            ENV, Crashes(3), agent_info=INFO, limit=6, progress=False, episodes_dir=folder,
            concurrency=2,
        )  # fmt: skip
    kept = sorted(int(p.stem.split("-")[1]) for p in folder.glob("episode-*.json"))
    assert 2 not in kept and {0, 1} <= set(kept)
    rerun = StopsAt(stop=0)
    resumed = evaluate(
        ENV, rerun, agent_info=INFO, limit=6, progress=False, episodes_dir=folder, concurrency=2
    )
    assert rerun.built == 6 - len(kept)
    whole = evaluate(ENV, scripted, agent_info=INFO, limit=6, progress=False)
    assert replayable(resumed) == replayable(whole)
