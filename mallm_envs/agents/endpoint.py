"""Agents behind an OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp, Ollama, ``transformers
serve``, hosted APIs), through the official ``openai`` client (the ``openai`` extra).

Spec: ``openai:MODEL@URL``, for example ``openai:Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1``.
``URL`` is the server's base URL (with its ``/v1``); without ``@URL`` the ``OPENAI_BASE_URL``
environment variable is used. Options follow the URL as a query string:

==================  ===========================================================================
option              meaning
==================  ===========================================================================
``mode``            ``chat`` (default: ``/chat/completions``, the server applies the model's chat
                    template) or ``completion`` (``/completions`` with the plain prompt layout the
                    in-process agent uses for models without a chat template)
``key_env``         the environment variable holding the API key (default ``OPENAI_API_KEY``;
                    local servers need none). The key is never recorded in a submission or a log.
``timeout``         seconds per request (default 120)
``retries``         retries on 408/409/429/5xx and dropped connections, with the client's
                    exponential backoff (default 4)
``max_concurrency`` requests in flight to this URL from this process, all agents together
                    (default 8)
==================  ===========================================================================

Decoding (temperature, top-p, max new tokens) comes from the same
:class:`~mallm_envs.agents.spec.LLMSettings` as the in-process ``llm:`` agents, with the same
defaults, and the prompt is built the same way (the observation as the user message, an
optional system message). Each request carries a ``seed`` derived from the agent's seed and
the number of requests it made since its episode began, which servers that honour ``seed``
use to make sampling repeatable.

What can go wrong, and what happens:

* wrong URL / no server: :class:`EndpointConnectionError` when the agent is built;
* wrong model name: :class:`EndpointModelError`, listing the models the server has;
* wrong or missing key: :class:`EndpointAuthError`, naming the environment variable;
* a rate limit, a 5xx or a dropped connection: retried with backoff; when retries run out,
  :class:`EndpointConnectionError` (the evaluation stops with that message, no traceback);
* a response cut at the token limit is used as it is (the env judges it, often an invalid
  action); an empty response is the empty action; a prompt the server refuses as too long is
  the empty action too. Each is counted in :attr:`EndpointAgent.responses`.

Token usage reported by the server (``usage.completion_tokens``) is added to
:attr:`EndpointAgent.tokens_used`, which ``mallm evaluate`` records per episode.

Thread safety: one agent may be called from several threads at once (its counters are
locked, each request is independent); every agent has its own state, so episodes played in
parallel need one agent each (``build_agents`` builds new agents for every episode).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from mallm_envs.agents.spec import AgentSpecError
from mallm_envs.core.errors import MallmError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_RETRIES = 4
DEFAULT_MAX_CONCURRENCY = 8
MODES = ("chat", "completion")
MAX_SERVER_STOPS = 4
"""The OpenAI API takes at most 4 stop strings; further ones are applied to the text here."""


class EndpointError(MallmError, RuntimeError):
    """Base class of the errors of endpoint agents."""


class EndpointSpecError(EndpointError, AgentSpecError):
    """An ``openai:`` spec that cannot be read (or the ``openai`` extra is missing)."""


class EndpointConnectionError(EndpointError):
    """No server answers at the URL (or it stopped answering and retries ran out)."""


class EndpointAuthError(EndpointError):
    """The server refused the API key (401/403)."""


class EndpointModelError(EndpointError):
    """The server does not serve the model the spec names."""


class EndpointRequestError(EndpointError):
    """The server refused a request for another reason (its message is included)."""


@dataclass(frozen=True)
class EndpointSpec:
    """What an ``openai:`` spec says. ``base_url`` holds no options and no credentials."""

    model: str
    base_url: str
    mode: str = "chat"
    key_env: str = DEFAULT_KEY_ENV
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY


def parse_endpoint_spec(spec: str) -> EndpointSpec:
    """Read ``openai:MODEL[@URL][?options]``.

    >>> parse_endpoint_spec("openai:my/model@http://127.0.0.1:8000/v1?mode=completion")
    EndpointSpec(model='my/model', base_url='http://127.0.0.1:8000/v1', mode='completion', key_env='OPENAI_API_KEY', timeout_s=120.0, retries=4, max_concurrency=8)
    """
    kind, _, rest = spec.strip().partition(":")
    if kind != "openai" or not rest:
        raise EndpointSpecError(f"an endpoint spec reads openai:MODEL@URL, got {spec!r}")
    model, at, url = rest.rpartition("@")
    if "://" in model:
        raise EndpointSpecError(
            "put no credentials in the URL (they would be recorded); set the API key in an "
            "environment variable and name it with ?key_env=NAME"
        )
    if not at or "://" not in url:
        model, url = rest, ""
        if "?" in model:
            model, _, query = model.partition("?")
            url = "?" + query
    parts = urlsplit(url)
    if url and not url.startswith("?"):
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EndpointSpecError(
                f"the URL of {spec!r} must start with http:// or https:// (e.g. "
                "openai:MODEL@http://127.0.0.1:8000/v1)"
            )
        if parts.username is not None or parts.password is not None:
            raise EndpointSpecError(
                "put no credentials in the URL (they would be recorded); set the API key in an "
                "environment variable and name it with ?key_env=NAME"
            )
        base_url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    else:
        base_url = os.environ.get("OPENAI_BASE_URL", "").rstrip("/")
        if not base_url:
            raise EndpointSpecError(
                f"{spec!r} gives no URL and OPENAI_BASE_URL is not set; write openai:MODEL@URL"
            )
    model = model.strip()
    if not model:
        raise EndpointSpecError(f"{spec!r} names no model; write openai:MODEL@URL")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    known = {"mode", "key_env", "timeout", "retries", "max_concurrency"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise EndpointSpecError(f"unknown option(s) {unknown} in {spec!r}; known: {sorted(known)}")
    mode = options.get("mode", "chat")
    if mode not in MODES:
        raise EndpointSpecError(f"mode must be one of {MODES}, got {mode!r}")
    key_env = options.get("key_env", DEFAULT_KEY_ENV)
    if not key_env.replace("_", "").isalnum():
        raise EndpointSpecError(f"key_env must name an environment variable, got {key_env!r}")
    try:
        timeout_s = float(options.get("timeout", DEFAULT_TIMEOUT_S))
        retries = int(options.get("retries", DEFAULT_RETRIES))
        max_concurrency = int(options.get("max_concurrency", DEFAULT_MAX_CONCURRENCY))
    except ValueError as err:
        raise EndpointSpecError(f"bad option value in {spec!r}: {err}") from None
    if not timeout_s > 0 or retries < 0 or max_concurrency < 1:
        raise EndpointSpecError(
            f"{spec!r}: timeout must be > 0, retries >= 0 and max_concurrency >= 1"
        )
    return EndpointSpec(model, base_url, mode, key_env, timeout_s, retries, max_concurrency)


def _openai() -> Any:
    try:
        import openai
    except ImportError as err:
        raise EndpointSpecError(
            f"endpoint agents need the 'openai' extra (pip install 'mallm-envs[openai]'): {err}"
        ) from None
    return openai


# Shared per process: one client (connection pool) and one concurrency limit per endpoint,
# and the models already checked. The client and the semaphore are thread-safe.
_CLIENTS: dict[tuple[Any, ...], tuple[Any, threading.BoundedSemaphore]] = {}
_CHECKED: set[tuple[str, str, str]] = set()
_SHARED_LOCK = threading.Lock()


def _client(endpoint: EndpointSpec) -> tuple[Any, threading.BoundedSemaphore, str]:
    openai = _openai()
    key = os.environ.get(endpoint.key_env) or "EMPTY"  # local servers take any key
    cache_key = (
        endpoint.base_url,
        endpoint.key_env,
        hashlib.sha256(key.encode()).hexdigest(),
        endpoint.timeout_s,
        endpoint.retries,
        endpoint.max_concurrency,
    )
    with _SHARED_LOCK:
        if cache_key not in _CLIENTS:
            client = openai.OpenAI(
                base_url=endpoint.base_url,
                api_key=key,
                timeout=endpoint.timeout_s,
                max_retries=endpoint.retries,
            )
            _CLIENTS[cache_key] = (client, threading.BoundedSemaphore(endpoint.max_concurrency))
        client, limit = _CLIENTS[cache_key]
    return client, limit, key


def _scrub(text: str, key: str) -> str:
    """``text`` with the API key blanked out (servers sometimes echo it)."""
    return text.replace(key, "***") if key and key != "EMPTY" else text


def _translate(error: Exception, endpoint: EndpointSpec, key: str) -> EndpointError:
    """The typed error for an exception of the ``openai`` client."""
    openai = _openai()
    message = _scrub(str(error), key)[:500]
    where = f"{endpoint.base_url} (model {endpoint.model!r})"
    if isinstance(error, openai.APITimeoutError):
        return EndpointConnectionError(
            f"{where} did not answer within {endpoint.timeout_s:g} s after {endpoint.retries} "
            "retries; raise ?timeout= or check the server"
        )
    if isinstance(error, openai.APIConnectionError):
        return EndpointConnectionError(
            f"cannot reach {endpoint.base_url} (after {endpoint.retries} retries): {message}; "
            "is the server running, and does the URL end in /v1?"
        )
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return EndpointAuthError(
            f"{where} refused the API key from ${endpoint.key_env} "
            f"({'set' if os.environ.get(endpoint.key_env) else 'not set'}): {message}"
        )
    if isinstance(error, openai.NotFoundError):
        return EndpointModelError(f"{where}: not found: {message}")
    if isinstance(error, openai.APIStatusError):
        if error.status_code >= 500 or error.status_code == 429:
            return EndpointConnectionError(
                f"{where} kept failing (HTTP {error.status_code}) after {endpoint.retries} "
                f"retries: {message}"
            )
        return EndpointRequestError(f"{where} refused the request: {message}")
    return EndpointError(f"{where}: {type(error).__name__}: {message}")


def check_endpoint(endpoint: EndpointSpec) -> None:
    """Ask the server which models it serves; typed errors for a wrong URL, key or model.

    Servers without ``/models`` are not refused (the first request will tell).
    """
    client, _, key = _client(endpoint)
    check_key = (endpoint.base_url, endpoint.model, endpoint.key_env)
    with _SHARED_LOCK:
        if check_key in _CHECKED:
            return
    openai = _openai()
    try:
        served = [model.id for model in client.models.list()]
    except openai.NotFoundError:
        served = None
    except openai.OpenAIError as error:
        raise _translate(error, endpoint, key) from None
    if served is not None and endpoint.model not in served:
        shown = ", ".join(repr(m) for m in served[:10]) or "none"
        raise EndpointModelError(
            f"{endpoint.base_url} does not serve {endpoint.model!r}; it serves: {shown}"
        )
    with _SHARED_LOCK:
        _CHECKED.add(check_key)


@dataclass(frozen=True)
class EndpointSampling:
    """Decoding settings, recorded under ``sampling`` as the in-process agents record theirs."""

    temperature: float
    top_p: float
    max_new_tokens: int
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def sampling_from_settings(settings: Any) -> EndpointSampling:
    """The endpoint decoding an :class:`~mallm_envs.agents.spec.LLMSettings` gives (same
    defaults as ``llm:`` agents)."""
    from mallm_envs.agents.spec import (
        DEFAULT_MAX_NEW_TOKENS,
        DEFAULT_TEMPERATURE,
        DEFAULT_TOP_P,
    )

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return EndpointSampling(
        temperature=float(pick(settings.temperature, DEFAULT_TEMPERATURE)),
        top_p=float(pick(settings.top_p, DEFAULT_TOP_P)),
        max_new_tokens=int(pick(settings.max_new_tokens, DEFAULT_MAX_NEW_TOKENS)),
    )


class EndpointAgent:
    """One role played by a model behind an OpenAI-compatible endpoint (the Agent protocol).

    Args:
        endpoint: the parsed spec (:func:`parse_endpoint_spec`).
        agent_id: the role's name (recorded).
        sampling: decoding settings.
        system_prompt: optional system message before every observation.
        seed: base of the per-request seeds; :meth:`reset` sets it.
        check: ask the server for its models first (typed errors for a wrong URL/model/key).
    """

    def __init__(
        self,
        endpoint: EndpointSpec,
        agent_id: str = "agent",
        sampling: EndpointSampling | None = None,
        system_prompt: str | None = None,
        seed: int = 0,
        check: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.agent_id = agent_id
        self.sampling = sampling or EndpointSampling(0.7, 0.9, 256)
        self.system_prompt = system_prompt
        self.seed = int(seed)
        self._client, self._limit, self._key = _client(endpoint)
        if check:
            check_endpoint(endpoint)
        self._lock = threading.Lock()
        self._requests = 0  # since the episode began: part of each request's seed
        self.tokens_used: int | None = 0
        """Completion tokens the server reported (``None`` once a response lacks usage)."""
        self.prompt_tokens = 0
        self.responses: Counter[str] = Counter()
        """How responses ended: ``stop``, ``length`` (cut at the token limit), ``empty``,
        ``refused`` (the server refused the prompt, e.g. too long: the empty action)."""

    def reset(self, seed: int | None = None) -> None:
        with self._lock:
            if seed is not None:
                self.seed = int(seed)
            self._requests = 0

    def _request_seed(self) -> int:
        with self._lock:
            index = self._requests
            self._requests += 1
        digest = hashlib.sha256(f"{self.seed}:{index}".encode()).digest()
        return int.from_bytes(digest[:4], "big") >> 1  # 31 bits: every server takes it

    def _messages(self, text: str) -> list[dict[str, str]]:
        messages = [{"role": "user", "content": text}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def _plain_prompt(self, text: str) -> str:
        header = f"{self.system_prompt}\n\n" if self.system_prompt else ""
        return f"{header}{text}\n"

    def complete(self, text: str) -> tuple[str, str, int | None]:
        """One response to the user message ``text``: ``(text, finish_reason, tokens)``."""
        text = _clean(text)
        if self.endpoint.mode == "chat":
            prompt = json.dumps(self._messages(text))
        else:
            prompt = self._plain_prompt(text)
        return self.request(prompt, self.sampling, self._request_seed())

    def request(
        self, prompt: str, sampling: EndpointSampling, seed: int
    ) -> tuple[str, str, int | None]:
        """One request: ``prompt`` is the message list as JSON (chat) or the prompt text."""
        openai = _openai()
        prompt = _clean(prompt)
        arguments: dict[str, Any] = {
            "model": self.endpoint.model,
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": seed,
        }
        if sampling.stop:
            arguments["stop"] = list(sampling.stop[:MAX_SERVER_STOPS])
        try:
            with self._limit:
                if self.endpoint.mode == "chat":
                    response = self._client.chat.completions.create(
                        messages=json.loads(prompt), **arguments
                    )
                else:
                    response = self._client.completions.create(prompt=prompt, **arguments)
        except openai.BadRequestError as error:
            message = str(error).lower()
            if any(word in message for word in ("context", "too long", "maximum", "max_model")):
                self._count("refused", None, 0)
                return "", "refused", None
            raise _translate(error, self.endpoint, self._key) from None
        except openai.OpenAIError as error:
            raise _translate(error, self.endpoint, self._key) from None
        choice = response.choices[0] if response.choices else None
        if choice is None:
            content, finish = "", "empty"
        elif self.endpoint.mode == "chat":
            content = (choice.message.content if choice.message is not None else None) or ""
            finish = choice.finish_reason or "stop"
        else:
            content, finish = choice.text or "", choice.finish_reason or "stop"
        for stop in sampling.stop:
            if stop in content:
                content, finish = content[: content.index(stop)], "stop"
        if not content and finish != "length":
            finish = "empty"
        usage = getattr(response, "usage", None)
        tokens = getattr(usage, "completion_tokens", None) if usage is not None else None
        prompt = getattr(usage, "prompt_tokens", None) if usage is not None else None
        self._count(finish, tokens, prompt or 0)
        return content, finish, tokens

    def _count(self, finish: str, tokens: int | None, prompt_tokens: int) -> None:
        with self._lock:
            self.responses[finish] += 1
            self.prompt_tokens += prompt_tokens
            if self.tokens_used is not None:
                self.tokens_used = None if tokens is None else self.tokens_used + int(tokens)

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> str:
        text = observation.get("text", "") if isinstance(observation, Mapping) else observation
        if not isinstance(text, str):
            raise EndpointRequestError(
                f"observation text must be a str, got {type(text).__name__} (a numeric env "
                "needs a numeric agent)"
            )
        return self.complete(text)[0]

    def act_batch(
        self,
        observations: Sequence[Mapping[str, Any]],
        infos: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Answers to several observations, requested at once (the endpoint's limit holds)."""
        if len(observations) <= 1:
            return [self.act(o) for o in observations]
        with ThreadPoolExecutor(min(len(observations), self.endpoint.max_concurrency)) as pool:
            return list(pool.map(self.act, observations))

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Agents on one endpoint are asked together (see :mod:`mallm_envs.agents.base`): their
        requests go out at once. Each answer is the one its agent gets alone (its own seed
        counter, no shared random state), so transcripts do not change."""
        return ("openai", self.endpoint.base_url, self.endpoint.model, self.endpoint.mode)

    @staticmethod
    def act_group(
        agents: Sequence[EndpointAgent],
        observations: Sequence[Mapping[str, Any]],
        infos: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Several agents' actions, requested concurrently (the endpoint's limit holds)."""
        if len(agents) <= 1:
            return [agent.act(o) for agent, o in zip(agents, observations)]
        workers = min(len(agents), agents[0].endpoint.max_concurrency)
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda pair: pair[0].act(pair[1]), zip(agents, observations)))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "openai",
            "agent_id": self.agent_id,
            "model": self.endpoint.model,
            "endpoint": self.endpoint.base_url,
            "mode": self.endpoint.mode,
            "sampling": {
                "temperature": self.sampling.temperature,
                "top_p": self.sampling.top_p,
                "max_new_tokens": self.sampling.max_new_tokens,
                "stop": list(self.sampling.stop),
            },
            "system_prompt": self.system_prompt,
            "seed": self.seed,
            "timeout_s": self.endpoint.timeout_s,
            "retries": self.endpoint.retries,
        }


def endpoint_agent(spec: str, role: str, *, settings: Any, seed: int = 0) -> EndpointAgent:
    """The agent of ``role`` for the spec ``openai:MODEL@URL`` (used by ``build_agents``)."""
    return EndpointAgent(
        parse_endpoint_spec(spec),
        agent_id=role,
        sampling=sampling_from_settings(settings),
        seed=seed,
    )


@dataclass
class EndpointGeneration:
    """One response of :meth:`EndpointLM.generate` (the fields prompting teams read)."""

    agent: str
    text: str
    finish_reason: str
    num_tokens: int


class EndpointLM:
    """An endpoint model in the place of an in-process
    :class:`~mallm_envs.agents.llm.MultiAgentLM`, for the prompting baselines
    (``prompting:STRATEGY:openai:MODEL@URL``).

    It offers what a prompting team uses: ``agents``, ``policy_name``, ``format_prompt``,
    ``generate`` and ``describe``. A formatted prompt is the message list as JSON in chat
    mode (the server applies the chat template) and the plain layout in completion mode.
    Each request's seed is drawn from the team's torch generator, so a team's draws are as
    reproducible as with an in-process model.
    """

    device = "cpu"  # where the prompting team's torch generators live

    def __init__(self, agents: Sequence[str], endpoint: EndpointSpec, check: bool = True) -> None:
        self.agents = tuple(agents)
        self.endpoint = endpoint
        self._agents = {
            agent: EndpointAgent(endpoint, agent, check=check and index == 0)
            for index, agent in enumerate(self.agents)
        }

    def policy_name(self, agent: str) -> str:
        if agent not in self._agents:
            raise EndpointRequestError(f"unknown agent {agent!r}; agents are {self.agents}")
        return agent

    def format_prompt(self, text: str, system: str | None = None) -> str:
        text = _clean(text)
        if self.endpoint.mode == "completion":
            return f"{system}\n\n{text}\n" if system else f"{text}\n"
        messages = [{"role": "user", "content": text}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        return json.dumps(messages)

    def generate(
        self,
        prompts: Mapping[str, Sequence[str]],
        *,
        num_samples: int = 1,
        sampling: Any = None,
        generator: Any = None,
        formatted: bool = False,
        batch_invariant: bool = False,
    ) -> dict[str, list[list[EndpointGeneration]]]:
        """``num_samples`` responses per prompt, requested concurrently; seeds from ``generator``
        (a torch generator, or one per prompt in order). Requests are independent, so
        ``batch_invariant`` (what in-process models are asked for) holds already."""
        rows: list[tuple[str, int, str, int]] = []
        per_prompt = None if generator is None or not isinstance(generator, list) else generator
        position = 0
        for agent, agent_prompts in prompts.items():
            self.policy_name(agent)
            for index, prompt in enumerate(agent_prompts):
                text = prompt if formatted else self.format_prompt(prompt)
                source = per_prompt[position] if per_prompt is not None else generator
                position += 1
                for _ in range(num_samples):
                    rows.append((agent, index, text, _draw_seed(source)))
        settings = _endpoint_sampling(sampling)

        def request(row: tuple[str, int, str, int]) -> EndpointGeneration:
            agent, _, text, seed = row
            answer, finish, tokens = self._agents[agent].request(text, settings, seed)
            return EndpointGeneration(agent, answer, finish, int(tokens or 0))

        workers = max(1, min(len(rows), self.endpoint.max_concurrency))
        with ThreadPoolExecutor(workers) as pool:
            answers = list(pool.map(request, rows))
        results: dict[str, list[list[EndpointGeneration]]] = {
            agent: [[] for _ in agent_prompts] for agent, agent_prompts in prompts.items()
        }
        for (agent, index, _text, _seed), answer in zip(rows, answers):
            results[agent][index].append(answer)
        return results

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.endpoint.model,
            "endpoint": self.endpoint.base_url,
            "mode": self.endpoint.mode,
            "timeout_s": self.endpoint.timeout_s,
            "retries": self.endpoint.retries,
        }


def _clean(text: str) -> str:
    """Lone surrogates cannot be sent as JSON: they become "?" (as the tokenizer does)."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _draw_seed(generator: Any) -> int:
    if generator is None:
        return 0
    import torch

    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())


def _endpoint_sampling(sampling: Any) -> EndpointSampling:
    if sampling is None:
        return EndpointSampling(0.7, 0.9, 256)
    greedy = getattr(sampling, "greedy", False)
    return EndpointSampling(
        temperature=0.0 if greedy else float(sampling.temperature),
        top_p=float(sampling.top_p),
        max_new_tokens=int(sampling.max_new_tokens),
        stop=tuple(getattr(sampling, "stop", ()) or ()),
    )
