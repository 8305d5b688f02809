"""Endpoint agents against a real OpenAI-compatible server: ``transformers serve`` with
SmolLM2-135M-Instruct, offline, on 127.0.0.1 (no mock of the client or the server).

One server is started for the module. The tests are kept short (2 episodes, a few tokens
per response) because every request runs a real model on the CPU. They skip, with the
reason, only where the server cannot start (no ``serve`` extra, no SmolLM2 package). The
last test stops the server in the middle of an episode.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import mallm_envs
from mallm_envs.cli import main

pytest.importorskip("openai", reason="the 'openai' extra (official client) is not installed")
STARTUP_LIMIT_S = 240
MAX_NEW_TOKENS = "8"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_command() -> list[str]:
    for module in ("fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            pytest.skip(f"`transformers serve` cannot start: {module} is missing (the serve extra)")
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.skip("`transformers serve` cannot start: no transformers command in this venv")
    from mallm_envs.data.models import NamedModelError, named_model_path

    try:
        folder = named_model_path("smollm2-135m")
    except NamedModelError as error:
        pytest.skip(f"`transformers serve` has no model to serve: {error}")
    return [executable, "serve", str(folder), "--host", "127.0.0.1", "--device", "cpu"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(base_url, model_name, process)`` of a running ``transformers serve``."""
    command = _server_command()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="2")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + STARTUP_LIMIT_S
    try:
        while True:
            if process.poll() is not None:
                pytest.skip(
                    f"`transformers serve` exited with {process.returncode} at start: "
                    f"{log_path.read_text(errors='replace')[-600:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.skip(f"`transformers serve` did not answer in {STARTUP_LIMIT_S} s")
                time.sleep(1)
        yield base_url, command[2], process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _load(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


def _verify_limited(path: Path, monkeypatch) -> None:
    """``mallm verify``'s checks on a ``--limit 2`` run, all but those that make it official
    (the whole suite played, no ``unofficial`` mark): env spec, data, replay of every
    action, summary, agent fields, usage."""
    from mallm_envs.leaderboard import verify
    from mallm_envs.leaderboard.suites import load_suite

    data = _load(path)
    assert data.pop("unofficial")["limit"] == 2
    copy = path.with_name("as-if-official.json.gz")
    copy.write_bytes(gzip.compress(json.dumps(data).encode()))
    # The official suite, unchecked (the run played only its first episodes).
    monkeypatch.setattr(
        verify, "check_suite", lambda submission, suite=None: load_suite(submission.env_id)
    )
    report = verify.verify_file(copy)
    assert report.summary["episodes"] == 2 and report.check == "replayed"


def test_endpoint_team_on_a_code_env_writes_a_submission_that_replays(
    server, tmp_path, monkeypatch, capsys
) -> None:
    base_url, model, _ = server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-recorded-8d1f")  # the server ignores it
    out = tmp_path / "endpoint.json.gz"
    argv = ["evaluate", "CoopCode-v0", "--agent", f"openai:{model}@{base_url}", "--limit", "2"]
    argv += ["--max-new-tokens", MAX_NEW_TOKENS, "--temperature", "0", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0, capsys.readouterr().err
    data = _load(out)
    agent = data["agent"]
    assert agent["spec"] == f"openai:{model}@{base_url}"
    assert agent["model"] == model
    assert agent["decoding"]["temperature"] == 0.0 and agent["decoding"]["max_new_tokens"] == 8
    for role in ("helper", "main"):
        described = agent["per_role"][role]
        assert (described["kind"], described["model"], described["endpoint"]) == (
            "openai",
            model,
            base_url,
        )
    # The server's usage figures: each role's response is at most 8 tokens.
    tokens = [item["tokens"] for item in data["usage"]]
    assert all(
        isinstance(t, int) and 0 < t <= 2 * 8 * e["turns"] for t, e in zip(tokens, data["episodes"])
    )
    assert "sk-test-never-recorded" not in gzip.decompress(out.read_bytes()).decode()
    _verify_limited(out, monkeypatch)


@pytest.mark.slow  # about 2 minutes on a busy 2-core machine: SmolLM2 also runs in-process
def test_mixed_team_on_a_writing_env(server, tmp_path, monkeypatch, capsys) -> None:
    """One role served by the endpoint, the other SmolLM2 in-process: each is recorded."""
    pytest.importorskip("torch", reason="the in-process role needs the llm extra")
    base_url, model, _ = server
    out = tmp_path / "mixed.json.gz"
    argv = ["evaluate", "SummaryPair-v1", "--agent", f"concise=openai:{model}@{base_url}"]
    argv += ["--agent", "detailed=llm:smollm2-135m", "--limit", "2", "--out", str(out)]
    argv += ["--max-new-tokens", MAX_NEW_TOKENS, "--temperature", "0", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    agent = _load(out)["agent"]
    assert agent["spec"] == f"concise=openai:{model}@{base_url},detailed=llm:smollm2-135m"
    assert agent["model"] == f"concise: {model}, detailed: smollm2-135m"
    assert agent["name"].startswith("concise: openai:")
    assert agent["per_role"]["concise"]["kind"] == "openai"
    assert agent["per_role"]["detailed"]["kind"] == "llm"
    assert set(agent["decoding"]) == {"concise", "detailed"}  # each role's own decoding
    assert all(d["max_new_tokens"] == 8 for d in agent["decoding"].values())
    _verify_limited(out, monkeypatch)


def test_typed_errors_for_a_wrong_model_and_a_dead_port(server, tmp_path, capsys) -> None:
    from mallm_envs.agents.endpoint import (
        EndpointConnectionError,
        EndpointModelError,
        EndpointSpecError,
    )
    from mallm_envs.agents.spec import LLMSettings, build_agents

    base_url, model, _ = server
    env = mallm_envs.make("CoopCode-v0")
    with pytest.raises(EndpointModelError, match="does not serve 'no-such-model'; it serves"):
        build_agents(f"openai:no-such-model@{base_url}", env)
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(EndpointConnectionError, match="cannot reach"):
        build_agents(f"openai:{model}@{dead}?retries=1", env)
    with pytest.raises(EndpointSpecError, match="no credentials in the URL"):
        build_agents(f"openai:{model}@http://user:secret@127.0.0.1:1/v1", env)
    short = LLMSettings(max_new_tokens=4)
    slow = build_agents(f"openai:{model}@{base_url}?timeout=0.05&retries=0", env, settings=short)
    with pytest.raises(EndpointConnectionError, match=r"did not answer within 0\.05 s"):
        slow["helper"].act({"text": "Write a long story."})
    out = tmp_path / "never.json.gz"
    argv = ["evaluate", "CoopCode-v0", "--agent", f"openai:{model}@{dead}?retries=0"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    assert "cannot reach" in capsys.readouterr().err and not out.exists()


def test_empty_and_cut_responses_are_actions_not_crashes(server) -> None:
    """An empty answer (here: a stop string at its start) is the empty action, which the env
    marks invalid in infos; answers cut at the token limit are counted as such. One agent is
    called from two threads at once."""
    from mallm_envs.agents.endpoint import EndpointAgent, EndpointSampling, parse_endpoint_spec
    from mallm_envs.core import run_episode

    base_url, model, _ = server
    endpoint = parse_endpoint_spec(f"openai:{model}@{base_url}")
    mute = EndpointAgent(endpoint, "main", EndpointSampling(0.0, 1.0, 8, stop=("`", "def")))
    cut = EndpointAgent(endpoint, "helper", EndpointSampling(0.0, 1.0, 3))
    env = mallm_envs.make("CoopCode-v0")
    episode = run_episode(env, {"helper": cut, "main": mute}, seed=0)
    assert mute.responses["empty"] >= 1
    assert cut.responses["length"] >= 1 and cut.tokens_used == 3 * sum(cut.responses.values())
    main_steps = [s for s in episode.steps if s.agent == "main" and s.action is not None]
    assert main_steps[0].action == ""
    assert "invalid_reason" in episode.final_infos["main"]
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cut.act({"text": "Say hello."})))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]  # greedy: the same answer


@pytest.mark.slow  # a minute or more on a busy 2-core machine
def test_prompting_baseline_on_an_endpoint_in_completion_mode(server) -> None:
    """``prompting:parallel:openai:...?mode=completion``: the paper's baseline with a served
    model, through /completions, replays, and records the endpoint."""
    pytest.importorskip("torch", reason="prompting teams need the llm extra")
    from mallm_envs import replay
    from mallm_envs.agents.spec import LLMSettings, build_agents
    from mallm_envs.core import first_difference, run_episode

    base_url, model, _ = server
    env = mallm_envs.make("CoopCode-v0")
    settings = LLMSettings(temperature=0.0, max_new_tokens=4)
    spec = f"prompting:parallel:openai:{model}@{base_url}?mode=completion"
    agents = build_agents(spec, env, settings=settings)
    episode = run_episode(env, agents, seed=0)
    described = episode.agent_descriptions["helper"]
    assert (described["kind"], described["model"], described["mode"]) == (
        "prompting",
        model,
        "completion",
    )
    assert 0 < agents["helper"].tokens_used <= 2 * 4 * episode.turns
    assert first_difference(episode, replay(episode)) is None


def test_server_stopped_mid_episode_is_a_typed_error(server) -> None:
    """Runs last: it stops the module's server."""
    from mallm_envs.agents.endpoint import EndpointConnectionError
    from mallm_envs.agents.spec import LLMSettings, build_agents

    base_url, model, process = server
    env = mallm_envs.make("CoopCode-v0")
    settings = LLMSettings(temperature=0.0, max_new_tokens=2)
    agents = build_agents(f"openai:{model}@{base_url}?retries=1", env, settings=settings)
    assert isinstance(agents["helper"].act({"text": "Say hello."}), str)  # it answers
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    from mallm_envs.core import run_episode

    with pytest.raises(EndpointConnectionError, match="cannot reach"):
        run_episode(env, agents, seed=0)
