"""Issue 17 items 8-12 and issue 16 items 2 and 8: hostile values, usage figures, parse
budget, duplicates, control characters, ranking by the primary measure, reproduction."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pytest

from mallm_envs.agents.spec import build_agents
from mallm_envs.cli import main
from mallm_envs.leaderboard import build, evaluate, generate_suite, verify_file
from mallm_envs.leaderboard import verify as verify_module
from mallm_envs.leaderboard.board import clean_text
from mallm_envs.leaderboard.submission import summarize
from mallm_envs.leaderboard.verify import VerificationError, reproduce

ENV = "CommonWord-v0"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scripted() -> dict:
    submission = evaluate(
        ENV,
        lambda env: build_agents("scripted", env, seed=0),
        agent_info={"name": "scripted-test", "spec": "scripted", "model": None},
        progress=False,
    )
    return json.loads(gzip.decompress(submission.to_bytes()))


def write(folder: Path, data: dict | str | bytes, name: str = "s.json.gz") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, dict):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    path = folder / name
    path.write_bytes(gzip.compress(data))
    return path


def refused(tmp_path: Path, data: dict | str | bytes, code: str, message: str) -> None:
    with pytest.raises(VerificationError) as caught:
        verify_file(write(tmp_path, data))
    assert caught.value.code == code, str(caught.value)
    assert message in str(caught.value), str(caught.value)


# ------------------------------------------------------------ item 8: hostile values


@pytest.mark.parametrize(
    "value, message",
    [
        ("fast", "must be a number or null, got str"),
        ({"a": 1}, "must be a number or null, got dict"),
        (1e308, "is 1e+308; it must be between 0"),
    ],
)
def test_hostile_usage_values_are_typed_errors(tmp_path, scripted, value, message) -> None:
    data = copy.deepcopy(scripted)
    data["usage"][3]["wall_time_s"] = value
    refused(tmp_path, data, "usage", f"submission.usage[3].wall_time_s {message}")


def test_a_5000_digit_integer_is_a_typed_error(tmp_path, scripted) -> None:
    text = json.dumps(scripted).replace('"seed": 7,', '"seed": ' + "9" * 5000 + ",", 1)
    assert "9" * 5000 in text
    refused(tmp_path, text, "json", "integer of 5000 digits")


def test_board_reports_a_bad_file_and_builds_the_rest(tmp_path, scripted) -> None:
    board = tmp_path / "boards" / ENV
    write(board, scripted, "good.json.gz")
    write(board, json.dumps(scripted).replace("1.0", "1" + "0" * 5000, 1), "digits.json.gz")
    usage = copy.deepcopy(scripted)
    usage["agent"]["name"] = "usage"
    usage["usage"][0]["tokens"] = "many"
    write(board, usage, "usage.json.gz")
    boards, failures, _ = build(tmp_path / "boards", reproduce=False)
    assert [e.file for e in boards[ENV]] == ["good.json.gz"]
    assert len(failures) == 2
    assert "digits.json.gz: [json]" in failures[0] and "usage.json.gz: [usage]" in failures[1]


# ------------------------------------------------------------ item 9: NaN, Infinity, negative


@pytest.mark.parametrize(
    "field, raw, code, message",
    [
        ("wall_time_s", "NaN", "json", "holds NaN"),
        ("wall_time_s", "Infinity", "json", "holds Infinity"),
        ("wall_time_s", "1e999", "json", "not finite"),
        ("wall_time_s", "-0.5", "usage", "is -0.5; it must be between 0"),
        ("tokens", "-3", "usage", "is -3; it must be between 0"),
        ("tokens", "2.5", "usage", "must be a whole number"),
    ],
)
def test_nan_infinite_and_negative_usage_are_refused(
    tmp_path, scripted, field, raw, code, message
) -> None:
    data = copy.deepcopy(scripted)
    data["usage"][0][field] = "@@"
    text = json.dumps(data).replace('"@@"', raw)
    refused(tmp_path, text, code, message)


# ------------------------------------------------------------ item 10: what is parsed


def test_a_small_upload_cannot_cost_gigabytes(tmp_path, scripted) -> None:
    text = json.dumps(scripted)
    bomb = text[:-1] + ', "padding": [' + "{}," * (16 * 1024 * 1024 // 3) + "{}]}"
    path = write(tmp_path, bomb)
    assert path.stat().st_size < 100_000  # about 33 KB compressed
    with pytest.raises(VerificationError, match=r"\[size\] s.json.gz holds \d+ JSON objects"):
        verify_file(path)


def test_the_value_count_is_linear_even_for_unterminated_strings(tmp_path) -> None:
    """Every quote escaped: a string that never ends must not be rescanned from each quote."""
    refused(tmp_path, b'{"a": "' + b'\\"' * 300_000, "json", "is not valid JSON")


def test_unknown_top_level_fields_are_refused(tmp_path, scripted) -> None:
    data = copy.deepcopy(scripted)
    data["padding"] = [{}] * 10
    refused(tmp_path, data, "field", "unknown top-level field(s): 'padding'")


def test_decompressed_limit_is_below_the_old_256_mib() -> None:
    assert verify_module.MAX_JSON_BYTES <= 64 * 1024 * 1024
    assert verify_module.MAX_JSON_CONTAINERS <= 2_000_000


# ------------------------------------------------------------ item 11: copies and names


def test_copies_and_repeated_names_get_one_row(tmp_path, scripted) -> None:
    board = tmp_path / "boards" / ENV
    write(board, scripted, "a-original.json.gz")
    copied = copy.deepcopy(scripted)
    copied["agent"]["name"] = "my own agent"
    write(board, copied, "b-copy.json.gz")
    random = evaluate(
        ENV,
        lambda env: build_agents("random", env, seed=0),
        agent_info={"name": "Scripted-Test", "spec": "random"},
        progress=False,
    )
    random.save(board / "c-same-name.json.gz")
    boards, failures, _ = build(tmp_path / "boards", reproduce=False)
    assert [e.file for e in boards[ENV]] == ["a-original.json.gz"]
    assert "b-copy.json.gz: its transcripts hold exactly the actions of a-original" in failures[0]
    assert (
        "c-same-name.json.gz: the agent name 'Scripted-Test' is already on the board"
        in (failures[1])
    )


# ------------------------------------------------------------ item 12: control characters


@pytest.mark.parametrize(
    "field, text",
    [
        ("model", "org/model\r| 1 | forged row"),
        ("model", "\x1b[31mred"),
        ("description", "looks fine \u202egnp.exe"),
        ("model", "zero\u200bwidth"),
        ("revision", "a\x00b"),
    ],
)
def test_control_characters_in_agent_text_are_refused(tmp_path, scripted, field, text) -> None:
    data = copy.deepcopy(scripted)
    data["agent"][field] = text
    refused(tmp_path, data, "agent-text", f"submission.agent.{field} holds the character U+")


def test_multi_line_agent_descriptions_stay_allowed(tmp_path, scripted) -> None:
    data = copy.deepcopy(scripted)
    data["agent"]["description"] = "two LoRA adapters\n\ttrained with MAGRPO"
    data["agent"]["per_role"]["agent_0"]["system_prompt"] = "You are a helper.\nAnswer briefly."
    assert verify_file(write(tmp_path, data)).summary["episodes"] == 50
    data["agent"]["model"] = "org/model\nsecond line"
    refused(tmp_path, data, "agent-text", "submission.agent.model holds the character U+000A")


def test_board_cells_are_clean_even_for_text_that_slipped_through() -> None:
    assert clean_text("a\rb\x1b[0m\u202ec\u2028d") == "a b [0m c d"


# ------------------------------------------------------------ issue 16 item 2: ranking


class _Primary:
    """Built in the fixture (needs the core test env)."""


@pytest.fixture()
def success_ranked_env(monkeypatch):
    from mallm_envs.core import TurnResult
    from mallm_envs.registration import register, registry

    from ._envs_for_tests import TargetSumEnv

    class SuccessFirstEnv(TargetSumEnv):
        """'solve' succeeds for 1 point; 'farm' scores 3 points and never succeeds."""

        primary_measure = "success_rate"

        def __init__(self, **kwargs) -> None:
            super().__init__(max_turns=1, **kwargs)

        def _play_turn(self, actions):
            solved = actions["agent_0"] == "solve"
            farmed = actions["agent_0"] == "farm"
            return TurnResult(
                reward=1.0 if solved else 3.0 if farmed else 0.0,
                agent_infos={a: {"success": solved} for a in actions},
            )

    import sys

    monkeypatch.setattr(sys.modules[__name__], "_Primary", SuccessFirstEnv, raising=False)
    register("SuccessFirst-v0", entry_point=f"{__name__}:_Primary")
    suite = generate_suite("SuccessFirst-v0", n_seeds=3)
    monkeypatch.setattr(verify_module, "load_suite", lambda env_id: suite)
    yield suite
    registry._specs.pop("SuccessFirst-v0")


def test_boards_rank_by_the_declared_primary_measure(tmp_path, success_ranked_env) -> None:
    board = tmp_path / "boards" / "SuccessFirst-v0"
    board.mkdir(parents=True)
    for name, answer in (("farmer", "farm"), ("solver", "solve")):
        evaluate(
            "SuccessFirst-v0",
            lambda env, a=answer: build_agents(f"fixed:{a}", env),
            agent_info={"name": name, "spec": f"fixed:{answer}"},
            suite=success_ranked_env,
            progress=False,
        ).save(board / f"{name}.json.gz")
    boards, failures, _ = build(tmp_path / "boards")
    assert failures == []
    assert [e.name for e in boards["SuccessFirst-v0"]] == ["solver", "farmer"]
    table = (board / "README.md").read_text()
    assert "| success [95% CI] (ranked) | team return [95% CI] |" in table
    solver = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    assert solver.startswith("| 1 | solver | - | 100.0% [") and "| 1.000 [1.000, 1.000] |" in solver


def test_repository_code_boards_rank_by_success() -> None:
    table = (ROOT / "leaderboards" / "CoopCode-v0" / "README.md").read_text()
    assert "success [95% CI] (ranked)" in table
    kitchen = (ROOT / "leaderboards" / "Kitchen-v0" / "README.md").read_text()
    assert "team return [95% CI] (ranked)" in kitchen


# ------------------------------------------------------------ issue 16 item 8: reproduction


def test_scripted_entries_are_reproduced(tmp_path, scripted, capsys) -> None:
    path = write(tmp_path, scripted)
    assert verify_file(path).check == "replayed"
    assert verify_file(path, reproduce_agent=True).check == "reproduced"
    assert main(["verify", "--reproduce", str(path)]) == 0
    assert "50 episodes reproduced" in capsys.readouterr().out


def test_relabelled_transcripts_replay_but_do_not_reproduce(tmp_path, scripted, capsys) -> None:
    """The oracle's actions under another agent's spec: replay accepts them (it proves the
    score follows from the actions), reproduction does not (the declared agent acts
    otherwise)."""
    relabelled = copy.deepcopy(scripted)
    relabelled["agent"].update(name="my random agent", spec="random")
    path = write(tmp_path, relabelled)
    report = verify_file(path)
    assert report.check == "replayed"
    with pytest.raises(
        VerificationError, match=r"\[reproduce\] episode 0 .*declared agent 'random'"
    ):
        reproduce(report)
    assert main(["verify", "--reproduce", str(path)]) == 1
    assert "FAIL" in capsys.readouterr().out
    # On a board the row stays "replayed" and the build says why.
    board = tmp_path / "boards" / ENV
    write(board, relabelled, "relabelled.json.gz")
    boards, failures, _ = build(tmp_path / "boards")
    assert failures == [] and boards[ENV][0].report.check == "replayed"
    assert boards[ENV][0].report.reproduce_note.startswith("reproduction failed")


def test_declared_decoding_does_not_stop_a_scripted_agent_from_reproducing(
    tmp_path, scripted
) -> None:
    data = copy.deepcopy(scripted)
    data["agent"]["decoding"] = {"temperature": 0.7}
    assert verify_file(write(tmp_path, data), reproduce_agent=True).check == "reproduced"


def test_user_code_is_never_run_by_the_verifier(tmp_path, scripted) -> None:
    data = copy.deepcopy(scripted)
    data["agent"]["spec"] = "os:system"
    report = verify_file(write(tmp_path, data), reproduce_agent=True)
    assert report.check == "replayed" and "user code" in report.reproduce_note


def test_greedy_tiny_lm_is_reproduced_and_sampling_is_not(tmp_path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from mallm_envs.agents.spec import LLMSettings

    env_id = "CommonWord-v1"
    suite = generate_suite(env_id, n_seeds=4)
    monkeypatch.setattr(verify_module, "load_suite", lambda _: suite)
    paths = {}
    for temperature in (0.0, 0.7):
        settings = LLMSettings(temperature=temperature, max_new_tokens=2)
        submission = evaluate(
            env_id,
            lambda env, s=settings: build_agents("llm:tiny", env, seed=0, settings=s),
            agent_info={"name": f"tiny t{temperature}", "spec": "llm:tiny", "model": "tiny"},
            suite=suite,
            progress=False,
        )
        # As `mallm evaluate` does: the decoding recorded is the one the agents ran with.
        submission.agent["decoding"] = next(iter(submission.agent["per_role"].values()))["sampling"]
        paths[temperature] = submission.save(tmp_path / f"t{temperature}.json.gz")
    assert verify_file(paths[0.0], reproduce_agent=True).check == "reproduced"
    report = verify_file(paths[0.7], reproduce_agent=True)
    assert report.check == "replayed" and "sampled decoding" in report.reproduce_note


def test_batched_reproduction_checks_every_episode_like_one_at_a_time(
    tmp_path, monkeypatch, capsys
) -> None:
    """``--batch-episodes`` plays episodes side by side: a greedy LLM entry reproduces as
    it does one at a time, and an episode whose record differs is named, wherever it sits in
    a batch."""
    pytest.importorskip("torch")
    from mallm_envs.agents.spec import LLMSettings

    env_id = "CommonWord-v1"
    suite = generate_suite(env_id, n_seeds=5)
    monkeypatch.setattr(verify_module, "load_suite", lambda _: suite)
    settings = LLMSettings(temperature=0.0, max_new_tokens=3)
    submission = evaluate(
        env_id,
        lambda env: build_agents("llm:tiny", env, seed=0, settings=settings),
        agent_info={"name": "tiny greedy", "spec": "llm:tiny", "model": "tiny"},
        suite=suite,
        progress=False,
    )
    submission.agent["decoding"] = next(iter(submission.agent["per_role"].values()))["sampling"]
    path = submission.save(tmp_path / "tiny.json.gz")
    for batch in (1, 2, 5, 8):
        assert verify_file(path, reproduce_agent=True, batch_episodes=batch).check == ("reproduced")
    assert main(["verify", "--reproduce", "--batch-episodes", "3", str(path)]) == 0
    assert "5 episodes reproduced" in capsys.readouterr().out
    # Episode 3's record claims another agent's actions (its replay still holds: a different
    # tiny model's actions are valid moves too).
    other = evaluate(
        env_id,
        lambda env: build_agents("random", env, seed=7),
        agent_info={"name": "r", "spec": "random"},
        suite=suite,
        progress=False,
    )
    submission.episodes[3] = other.episodes[3]
    submission.summary = summarize(submission.episodes, submission.usage)
    forged = submission.save(tmp_path / "forged.json.gz")
    report = verify_file(forged)
    for batch in (1, 2, 4):
        with pytest.raises(VerificationError, match=r"\[reproduce\] episode 3 "):
            reproduce(report, batch_episodes=batch)
    with pytest.raises(SystemExit):
        main(["verify", "--reproduce", "--batch-episodes", "0", str(path)])
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_boards_rebuild_language_model_agents_only_on_request(tmp_path, monkeypatch) -> None:
    """A board build must not re-run every LLM entry (an SmolLM2 suite is an hour of CPU)."""
    pytest.importorskip("torch")
    from mallm_envs.agents.spec import LLMSettings
    from mallm_envs.leaderboard.board import runs_a_model

    assert runs_a_model("llm:tiny") and runs_a_model("prompting:parallel:smollm2-135m")
    assert runs_a_model("helper=openai:m@http://127.0.0.1:1/v1,main=scripted")
    assert not runs_a_model("scripted") and not runs_a_model("fixed:llm: is a word")
    env_id = "CommonWord-v1"
    suite = generate_suite(env_id, n_seeds=2)
    monkeypatch.setattr(verify_module, "load_suite", lambda _: suite)
    settings = LLMSettings(temperature=0.0, max_new_tokens=2)
    submission = evaluate(
        env_id,
        lambda env: build_agents("llm:tiny", env, seed=0, settings=settings),
        agent_info={"name": "tiny greedy", "spec": "llm:tiny", "model": "tiny"},
        suite=suite,
        progress=False,
    )
    submission.agent["decoding"] = next(iter(submission.agent["per_role"].values()))["sampling"]
    (tmp_path / env_id).mkdir()
    submission.save(tmp_path / env_id / "tiny.json.gz")
    boards, failures, _ = build(tmp_path)
    (entry,) = boards[env_id]
    assert not failures and entry.report.check == "replayed"
    assert "reproduce-models" in entry.report.reproduce_note
    boards, failures, _ = build(tmp_path, reproduce_models=True)
    assert boards[env_id][0].report.check == "reproduced"


def test_repository_reference_entries_are_reproduced() -> None:
    for board in sorted((ROOT / "leaderboards").iterdir()):
        readme = board / "README.md"
        if not board.is_dir() or not readme.exists():
            continue
        for line in readme.read_text().splitlines():
            if line.startswith("| ") and ("oracle" in line or "| scripted" in line):
                assert "| reproduced |" in line, f"{board.name}: {line}"


class _Planted:
    def __reduce__(self):
        return (Path("planted-code-ran").touch, ())


def test_a_planted_checkpoint_is_not_loaded_by_reproduction(
    tmp_path, scripted, monkeypatch
) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    torch.save({"args": {}, "policies": {}, "evil": _Planted()}, tmp_path / "checkpoint.pt")
    data = copy.deepcopy(scripted)
    data["agent"].update(spec=f"checkpoint:{tmp_path}", decoding={"temperature": 0.0})
    report = verify_file(write(tmp_path, data), reproduce_agent=True)
    assert report.check == "replayed" and "does not load weights-only" in report.reproduce_note
    assert not (tmp_path / "planted-code-ran").exists()


def test_board_outside_a_checkout_is_a_clear_error(tmp_path, capsys) -> None:
    assert main(["board", str(tmp_path / "nowhere")]) == 2
    assert "no boards folder at" in capsys.readouterr().err
