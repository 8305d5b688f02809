"""Endpoint specs without a server: parsing, settings, the missing extra, a dead port.

The round trips against a real server are in ``test_endpoint_server.py``.
"""

from __future__ import annotations

import sys

import pytest

import mallm_envs
from mallm_envs.agents.endpoint import (
    EndpointConnectionError,
    EndpointSpecError,
    parse_endpoint_spec,
    sampling_from_settings,
)
from mallm_envs.agents.spec import AgentSpecError, LLMSettings, build_agents, role_specs
from mallm_envs.cli import main


def _dead_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens once the probe is closed


def test_spec_parsing() -> None:
    endpoint = parse_endpoint_spec(
        "openai:org/model:q4@https://api.example.org/v1/?mode=completion&key_env=MY_KEY"
        "&timeout=5&retries=0&max_concurrency=2"
    )
    assert endpoint.model == "org/model:q4"
    assert endpoint.base_url == "https://api.example.org/v1"
    assert (endpoint.mode, endpoint.key_env, endpoint.timeout_s) == ("completion", "MY_KEY", 5.0)
    assert (endpoint.retries, endpoint.max_concurrency) == (0, 2)
    bad = {
        "openai:m@ftp://host/v1": "must start with http",
        "openai:m@http://user:key@host/v1": "no credentials in the URL",
        "openai:m@http://host/v1?token=abc": "unknown option",
        "openai:m@http://host/v1?mode=stream": "mode must be one of",
        "openai:m@http://host/v1?retries=-1": "retries >= 0",
        "openai:m@http://host/v1?timeout=x": "bad option value",
        "openai:@http://host/v1": "names no model",
        "openai:": "reads openai:MODEL@URL",
    }
    for spec, message in bad.items():
        with pytest.raises(EndpointSpecError, match=message):
            parse_endpoint_spec(spec)
    assert issubclass(EndpointSpecError, AgentSpecError)


def test_url_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(EndpointSpecError, match="OPENAI_BASE_URL is not set"):
        parse_endpoint_spec("openai:m")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    assert parse_endpoint_spec("openai:m?retries=0").base_url == "http://127.0.0.1:9/v1"


def test_decoding_defaults_match_the_in_process_agents() -> None:
    from mallm_envs.agents import spec

    default = sampling_from_settings(LLMSettings())
    assert (default.temperature, default.top_p, default.max_new_tokens) == (
        spec.DEFAULT_TEMPERATURE,
        spec.DEFAULT_TOP_P,
        spec.DEFAULT_MAX_NEW_TOKENS,
    )
    chosen = sampling_from_settings(LLMSettings(temperature=0.0, top_p=0.5, max_new_tokens=7))
    assert (chosen.temperature, chosen.top_p, chosen.max_new_tokens, chosen.greedy) == (
        0.0,
        0.5,
        7,
        True,
    )


def test_missing_extra_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # as if the extra were not installed
    env = mallm_envs.make("CoopCode-v0")
    with pytest.raises(EndpointSpecError, match=r"needs? the 'openai' extra"):
        build_agents("openai:m@http://127.0.0.1:9/v1", env)


def test_dead_port_is_a_typed_error_not_a_traceback(tmp_path, capsys) -> None:
    pytest.importorskip("openai", reason="the 'openai' extra is not installed")
    env = mallm_envs.make("CoopCode-v0")
    with pytest.raises(EndpointConnectionError, match="cannot reach"):
        build_agents(f"openai:m@{_dead_url()}?retries=0", env)
    out = tmp_path / "never.json.gz"
    argv = ["evaluate", "CoopCode-v0", "--agent", f"helper=openai:m@{_dead_url()}?retries=0"]
    argv += ["--agent", "main=scripted", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("mallm: error: cannot reach") and "Traceback" not in error
    assert not out.exists()


def test_endpoint_roles_in_mixed_teams_parse() -> None:
    by_role = role_specs(
        ["helper=openai:a/b@http://127.0.0.1:8000/v1?mode=completion", "main=llm:smollm2-135m"],
        ["helper", "main"],
    )
    assert by_role["helper"].endswith("?mode=completion")
    # In the comma form an endpoint spec is one item too.
    assert role_specs("openai:m@http://h:1/v1,scripted", ["helper", "main"]) == {
        "helper": "openai:m@http://h:1/v1",
        "main": "scripted",
    }


def test_verify_names_served_models_and_mixed_teams_for_what_they_are() -> None:
    """`mallm verify --reproduce` cannot re-run a served model; it says so instead of
    calling the spec "user code"."""
    from mallm_envs.leaderboard.verify import _reproducible_kind

    url = "http://127.0.0.1:8000/v1"
    ok, why = _reproducible_kind(f"openai:some/model@{url}")
    assert not ok and "endpoint" in why and "user code" not in why
    ok, why = _reproducible_kind(f"helper=openai:some/model@{url},main=llm:smollm2-135m")
    assert not ok and "endpoint" in why and "user code" not in why
    ok, why = _reproducible_kind("helper=scripted,main=llm:tiny")
    assert not ok and "mixed team" in why and "user code" not in why
    ok, why = _reproducible_kind("my_agents:make")
    assert not ok and "user code" in why
    # A served model inside a mixed prompting team is named as served, and a long spec is
    # shortened visibly (a silent cut once showed ?timeout=1200 as ?timeout=120).
    long_url = f"{url}?timeout=1200"
    spec = f"helper=prompting:parallel:openai:smollm2-q4@{long_url},main=prompting:parallel:tiny"
    ok, why = _reproducible_kind(spec)
    assert not ok and "endpoint" in why and "mixed team" not in why
    ok, why = _reproducible_kind(
        f"helper=prompting:parallel:openai:{'m' * 120}@{url},main=scripted"
    )
    assert not ok and "..." in why


def test_the_board_shows_each_role_of_a_mixed_team_with_its_decoding() -> None:
    from mallm_envs.leaderboard.board import model_cell

    url = "http://127.0.0.1:8000/v1"
    mixed = {
        "spec": f"helper=openai:served-smollm2@{url},main=llm:smollm2-135m",
        "model": "helper: served-smollm2, main: smollm2-135m",
        "decoding": {
            "helper": {"temperature": 0.0, "top_p": 0.9, "max_new_tokens": 256},
            "main": {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 64, "do_sample": True},
        },
    }
    assert model_cell(mixed) == (
        "helper: served-smollm2, main: smollm2-135m (helper: greedy, 256 new tokens; "
        "main: temperature 0.7, top-p 0.9, 64 new tokens)"
    )
    mixed["decoding"] = {"temperature": 0.0, "top_p": 0.9, "max_new_tokens": 256}
    assert model_cell(mixed).endswith("(every role: greedy, 256 new tokens)")
    one_spec = {"spec": "llm:smollm2-135m", "model": "smollm2-135m", "decoding": {}}
    assert model_cell(one_spec) == "smollm2-135m"  # other boards' rows are unchanged
