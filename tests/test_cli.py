"""The `mallm` command line."""

from __future__ import annotations

import json

from mallm_envs.cli import main
from mallm_envs.core import load_episodes


def test_list(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "CommonWord-v0" in out and "agent_0, agent_1" in out
    assert main(["list", "--json"]) == 0
    specs = json.loads(capsys.readouterr().out)
    assert any(s["id"] == "CommonWord-v0" for s in specs)


def test_play_prints_a_readable_transcript(capsys, tmp_path) -> None:
    out_file = tmp_path / "t.jsonl"
    assert (
        main(
            ["play", "CommonWord-v0", "--agents", "scripted", "--seed", "0", "--out", str(out_file)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "-- agent_0 observes:" in out and "-- agent_1 acts:" in out
    assert "team return +1.000" in out
    (episode,) = load_episodes(out_file)
    assert episode.team_return == 1.0


def test_play_with_random_and_per_role_agents(capsys) -> None:
    assert main(["play", "CommonWord", "--agents", "random,fixed:apple", "--seed", "3"]) == 0
    assert "== turn 1 done" in capsys.readouterr().out


def test_errors_are_messages_not_tracebacks(capsys) -> None:
    assert main(["play", "Nope-v0"]) == 2
    assert "no environment named 'Nope'" in capsys.readouterr().err
    assert main(["play", "CommonWord-v0", "--kwargs", '{"bad": 1}']) == 2
    assert "does not take 'bad'" in capsys.readouterr().err
    assert main(["play", "CommonWord-v0", "--agents", "a,b,c"]) == 2
    assert "3 agent specs for 2 roles" in capsys.readouterr().err
    assert main(["play", "CommonWord-v0", "--kwargs", "{nope"]) == 2
    assert "bad JSON" in capsys.readouterr().err


def test_demo_plays_every_env(capsys) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "CommonWord-v0" in out and "success" in out


def test_evaluate_records_the_decoding_the_llm_agents_used(tmp_path, capsys) -> None:
    import pytest

    pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
    import gzip

    out = tmp_path / "s.json.gz"
    argv = ["evaluate", "CommonWord-v0", "--agent", "llm:tiny", "--out", str(out), "--quiet"]
    argv += ["--limit", "2", "--temperature", "0", "--max-new-tokens", "3"]
    assert main(argv) == 0
    agent = json.loads(gzip.decompress(out.read_bytes()))["agent"]
    assert agent["decoding"]["temperature"] == 0.0
    assert agent["decoding"]["max_new_tokens"] == 3
    assert agent["model"] == "tiny"
    for description in agent["per_role"].values():
        assert description["sampling"]["max_new_tokens"] == 3
    # A declared decoding that the agents would not follow is refused, not recorded.
    claim = ["--decoding", '{"temperature": 0}']
    assert (
        main(["evaluate", "CommonWord-v0", "--agent", "llm:tiny", "--out", str(out), *claim]) == 2
    )
    assert "recorded from the LLM agents" in capsys.readouterr().err


def test_the_module_docstring_lists_every_command() -> None:
    import argparse

    from mallm_envs import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = {line.split()[1] for line in cli.__doc__.splitlines() if line.startswith("mallm ")}
    assert set(commands.choices) == listed
