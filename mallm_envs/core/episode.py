"""One episode loop and one transcript format, used by everything.

:func:`run_episode` plays an AEC env with one agent per role and returns an :class:`Episode`:
every observation, action, reward, termination, truncation and info, in order, plus the
seed, the reset options and the env spec. Rewards are a deterministic function of (env spec,
seed, options, actions), so :func:`replay` can rebuild the env, feed it the recorded actions
and check that every recorded value comes out again.

Transcripts are JSON (format ``mallm-episode/1``); :func:`save_episodes` writes them
atomically (temp file, fsync, rename), so a crash never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mallm_envs.core.errors import TranscriptError

FORMAT = "mallm-episode/1"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mallm-envs")
    except Exception:  # not installed (running from a checkout without pip install)
        return "0+unknown"


@dataclass
class Step:
    """One AEC step: what ``agent`` saw (via ``last()``) and what it did."""

    agent: str
    observation: dict[str, Any] | None
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    action: str | int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "observation": self.observation,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "info": self.info,
            "action": self.action,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        try:
            return cls(
                agent=str(data["agent"]),
                observation=data["observation"],
                reward=float(data["reward"]),
                terminated=bool(data["terminated"]),
                truncated=bool(data["truncated"]),
                info=dict(data["info"]),
                action=data["action"],
            )
        except (KeyError, TypeError, ValueError) as err:
            raise TranscriptError(f"malformed step record: {err}") from None


@dataclass
class Episode:
    """The full record of one episode.

    ``team_return`` is the sum of the team reward over the episode (every agent gets the
    same reward, so it is any one agent's return). ``final_infos`` holds each agent's last
    info (reward components of the last turn, success flags and so on).
    """

    env_id: str
    env_spec: dict[str, Any]
    seed: int | None
    options: dict[str, Any]
    agents: list[str]
    steps: list[Step] = field(default_factory=list)
    team_return: float = 0.0
    turns: int = 0
    final_infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_hash: str | None = None
    agent_descriptions: dict[str, Any] = field(default_factory=dict)
    mallm_envs_version: str = field(default_factory=_version)
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "mallm_envs_version": self.mallm_envs_version,
            "env_id": self.env_id,
            "env_spec": self.env_spec,
            "data_hash": self.data_hash,
            "seed": self.seed,
            "options": self.options,
            "agents": self.agents,
            "agent_descriptions": self.agent_descriptions,
            "team_return": self.team_return,
            "turns": self.turns,
            "final_infos": self.final_infos,
            "steps": [s.to_dict() for s in self.steps],
        }

    def to_json(self) -> str:
        """Canonical JSON: same episode, same bytes (keys sorted, ASCII-escaped)."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Episode:
        if not isinstance(data, Mapping):
            raise TranscriptError(f"an episode must be a JSON object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != FORMAT:
            raise TranscriptError(
                f"unknown transcript format {fmt!r}; this version reads {FORMAT!r}"
            )
        try:
            steps = data["steps"]
            if not isinstance(steps, list):
                raise TypeError("steps must be a list")
            return cls(
                env_id=str(data["env_id"]),
                env_spec=dict(data["env_spec"]),
                seed=None if data["seed"] is None else int(data["seed"]),
                options=dict(data.get("options") or {}),
                agents=[str(a) for a in data["agents"]],
                steps=[Step.from_dict(s) for s in steps],
                team_return=float(data["team_return"]),
                turns=int(data["turns"]),
                final_infos=dict(data.get("final_infos") or {}),
                data_hash=data.get("data_hash"),
                agent_descriptions=dict(data.get("agent_descriptions") or {}),
                mallm_envs_version=str(data.get("mallm_envs_version", "")),
                format=fmt,
            )
        except TranscriptError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            raise TranscriptError(f"malformed episode: {err!r}") from None

    @classmethod
    def from_json(cls, text: str) -> Episode:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise TranscriptError(f"not valid JSON: {err}") from None
        return cls.from_dict(data)

    def actions(self) -> list[tuple[str, str | int | None]]:
        """The (agent, action) sequence that reproduces this episode."""
        return [(s.agent, s.action) for s in self.steps]


def _describe(agent: Any) -> Any:
    describe = getattr(agent, "describe", None)
    if callable(describe):
        return describe()
    return {"class": type(agent).__qualname__}


def _spec_dict(env: Any) -> tuple[str, dict[str, Any]]:
    spec = getattr(env.unwrapped, "spec", None) or getattr(env, "spec", None)
    if spec is None:
        name = str(env.unwrapped)
        return name, {"id": name}
    return spec.id, spec.to_dict()


@dataclass
class ActionRequest:
    """An agent asked for its action: ``role`` in the env, the agent object, what it sees."""

    role: str
    agent: Any
    observation: Any
    info: Any


def _batch_key(agent: Any) -> Any:
    """What an agent may share a batch with (see :mod:`mallm_envs.agents.base`), or ``None``."""
    act_group = getattr(type(agent), "act_group", None)
    key = getattr(agent, "batch_key", None) if callable(act_group) else None
    return None if key is None else (type(agent), key)


def answer_requests(requests: Sequence[ActionRequest]) -> list[Any]:
    """Each request's action; requests whose agents share a batch key get one ``act_group``.

    Requests without a key are answered one by one with ``act``, in order.
    """
    actions: list[Any] = [None] * len(requests)
    groups: dict[Any, list[int]] = {}
    for position, request in enumerate(requests):
        key = _batch_key(request.agent)
        groups.setdefault(("alone", position) if key is None else key, []).append(position)
    for positions in groups.values():
        if len(positions) == 1:
            request = requests[positions[0]]
            actions[positions[0]] = request.agent.act(request.observation, request.info)
            continue
        members = [requests[p] for p in positions]
        answers = type(members[0].agent).act_group(
            [m.agent for m in members], [m.observation for m in members], [m.info for m in members]
        )
        if len(answers) != len(members):
            raise RuntimeError(
                f"{type(members[0].agent).__qualname__}.act_group gave {len(answers)} actions "
                f"for {len(members)} agents"
            )
        for position, answer in zip(positions, answers):
            actions[position] = answer
    return actions


def _turn_roles(env: Any, agent: str, agents: Mapping[str, Any]) -> list[str]:
    """The roles whose actions can be asked for together now, ``agent`` first (or none).

    Only at the start of a turn of a :class:`~mallm_envs.core.env.CoopTextEnv` with the
    simultaneous schedule, where nobody sees a partner's action of this turn, so every
    role's observation and info stay the same until the turn is resolved; and only roles
    whose agents have a batch key.
    """
    from mallm_envs.core.env import CoopTextEnv

    base = env.unwrapped
    if not isinstance(base, CoopTextEnv) or base.schedule != "simultaneous":
        return []
    if base._order_index != 0 or agent != base._order[0]:
        return []
    roles = [
        role
        for role in base._order
        if role in base.agents
        and not (base.terminations.get(role) or base.truncations.get(role))
        and _batch_key(agents[role]) is not None
    ]
    return roles if agent in roles else []


def play_episode(
    env: Any,
    agents: Mapping[str, Any],
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    max_steps: int = 1_000_000,
    batch: bool = True,
) -> Generator[list[ActionRequest], list[Any], Episode]:
    """The episode loop as a generator: it yields the action requests it cannot answer alone.

    Agents without a batch key are asked inline, at their turn. Agents with one are yielded
    as a list of :class:`ActionRequest` (with ``batch``, all such roles of a simultaneous turn
    at once); the caller answers them (:func:`answer_requests`) and sends the actions back in
    the same order. The generator returns the :class:`Episode`. :func:`run_episode` drives one
    such generator, :func:`run_episodes` several side by side (their requests batched
    together).
    """
    missing = [a for a in env.possible_agents if a not in agents]
    if missing:
        raise ValueError(f"run_episode needs an agent for every role; missing {missing}")
    options = dict(options or {})
    for index, name in enumerate(env.possible_agents):
        reset = getattr(agents[name], "reset", None)
        if callable(reset):
            reset(seed=None if seed is None else seed * 1000 + index)
    env.reset(seed=seed, options=options or None)
    env_id, spec = _spec_dict(env)
    episode = Episode(
        env_id=env_id,
        env_spec=spec,
        seed=seed,
        options=options,
        agents=list(env.possible_agents),
        data_hash=getattr(env.unwrapped, "data_hash", None),
        agent_descriptions={name: _describe(agents[name]) for name in env.possible_agents},
    )
    team_return = 0.0
    turns = 0
    asked: dict[str, tuple[Any, Any, Any]] = {}  # role -> (observation, info, action) asked early
    for count, agent in enumerate(env.agent_iter()):
        if count >= max_steps:
            raise RuntimeError(f"episode exceeded max_steps={max_steps}")
        observation, reward, terminated, truncated, info = env.last()
        recorded_observation, recorded_info = _jsonable(observation), _jsonable(info)
        if terminated or truncated:
            action = None
        elif agent in asked:
            seen, seen_info, action = asked.pop(agent)
            if seen != recorded_observation or seen_info != recorded_info:
                raise RuntimeError(
                    f"{env_id}: {agent!r}'s observation changed between the start of its "
                    "simultaneous turn and its own step; this env cannot be batched "
                    "(run it with batch=False)"
                )
        else:
            roles = _turn_roles(env, agent, agents) if batch else []
            if not roles and _batch_key(agents[agent]) is not None:
                roles = [agent]
            if roles:
                requests = [ActionRequest(agent, agents[agent], observation, info)]
                for role in roles[1:]:
                    requests.append(
                        ActionRequest(
                            role, agents[role], env.observe(role), env.unwrapped.infos[role]
                        )
                    )
                actions = yield requests
                action = actions[0]
                for request, answer in zip(requests[1:], actions[1:]):
                    asked[request.role] = (
                        _jsonable(request.observation),
                        _jsonable(request.info),
                        answer,
                    )
            else:
                action = agents[agent].act(observation, info)
        episode.steps.append(
            Step(
                agent=agent,
                observation=recorded_observation,
                reward=float(reward),
                terminated=bool(terminated),
                truncated=bool(truncated),
                info=recorded_info,
                action=_jsonable(action),
            )
        )
        if terminated or truncated:
            episode.final_infos[agent] = recorded_info
        env.step(action)
        if agent == env.possible_agents[0]:
            team_return += float(reward)
            turns += action is not None  # every agent acts once per turn
    # The first agent's rewards arrive through last(); what is left after the final step is
    # already included because every agent passes through last() once more when done.
    episode.team_return = team_return
    episode.turns = turns
    return episode


def run_episode(
    env: Any,
    agents: Mapping[str, Any],
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    max_steps: int = 1_000_000,
    batch: bool = True,
) -> Episode:
    """Play one episode of the AEC ``env`` and record it.

    Args:
        env: an AEC env (``mallm_envs.make(...)``).
        agents: agent name -> an object with ``act(observation, info) -> str``. Each agent's
            ``reset(seed=...)`` is called first when it has one, with a seed derived from
            ``seed`` so that seeded stochastic agents replay too.
        seed: the reset seed (recorded; ``None`` means unseeded, which cannot be replayed
            exactly).
        options: reset options (for example ``{"task_id": ...}``), recorded too.
        max_steps: a safety cap on AEC steps.
        batch: in a simultaneous turn, ask the agents that can share a batch (same
            ``batch_key``, see :mod:`mallm_envs.agents.base`: LLM agents on one model) for
            their actions in one call. Each agent still gets the observation it sees at its
            own step (checked) and its own random draws, so the transcript is the one of
            ``batch=False``, where every agent is asked alone at its turn. (The LLM agents
            generate batch-invariant: each request samples from its own generator, each
            prompt is encoded alone, attention runs row by row on a row's own tokens, and
            every decoding step has enough rows for the CPU matrix kernels to sum each row
            one way, so a row gets the same bits in any batch; see
            :meth:`~mallm_envs.agents.llm.MultiAgentLM.generate`. The tests check sampled
            transcripts on code, writing and Kitchen episodes.)
    """
    loop = play_episode(env, agents, seed, options, max_steps=max_steps, batch=batch)
    try:
        requests = next(loop)
        while True:
            requests = loop.send(answer_requests(requests))
    except StopIteration as finished:
        episode: Episode = finished.value
        return episode


def run_episodes(
    jobs: Sequence[tuple[Any, Mapping[str, Any], int | None, Mapping[str, Any] | None]],
    *,
    max_steps: int = 1_000_000,
    batch: bool = True,
) -> list[Episode]:
    """Play several episodes side by side; each request round is batched across them.

    ``jobs`` holds ``(env, agents, seed, options)`` per episode (each with its own env and
    agents). Every episode advances until it needs an action from an agent with a batch key;
    then the pending requests of all episodes are answered together (:func:`answer_requests`),
    so an in-process model generates for several episodes in one batch. Each episode's
    transcript is the one :func:`run_episode` gives (every request has its own draws, and
    the LLM agents' numbers do not depend on their batch).
    """
    loops = [
        play_episode(env, agents, seed, options, max_steps=max_steps, batch=batch)
        for env, agents, seed, options in jobs
    ]
    results: list[Episode | None] = [None] * len(loops)
    pending: dict[int, list[ActionRequest]] = {}
    for index, loop in enumerate(loops):
        try:
            pending[index] = next(loop)
        except StopIteration as finished:
            results[index] = finished.value
    while pending:
        order = list(pending)
        flat = [request for index in order for request in pending[index]]
        answers = answer_requests(flat)
        position = 0
        for index in order:
            count = len(pending[index])
            mine, position = answers[position : position + count], position + count
            try:
                pending[index] = loops[index].send(mine)
            except StopIteration as finished:
                results[index] = finished.value
                del pending[index]
    return [episode for episode in results if episode is not None]


def _jsonable(value: Any) -> Any:
    """A JSON-compatible copy of ``value`` (numpy scalars and arrays become Python data)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _jsonable(tolist())
    raise TypeError(f"cannot record a value of type {type(value).__name__} in a transcript")


class _RecordedActions:
    """Plays back one agent's recorded actions, in order."""

    def __init__(self, name: str, actions: list[str | int]) -> None:
        self.name = name
        self.actions = list(actions)
        self.position = 0

    def act(self, observation: Any, info: Any) -> str | int:
        if self.position >= len(self.actions):
            raise TranscriptError(
                f"the replayed episode asks {self.name!r} for action {self.position + 1}, "
                f"but the transcript records only {len(self.actions)}"
            )
        action = self.actions[self.position]
        if isinstance(action, bool) or not isinstance(action, (str, int)):
            raise TranscriptError(
                f"recorded action of {self.name!r} is neither text nor an int: {type(action).__name__}"
            )
        self.position += 1
        return action


def replay(episode: Episode, make_env: Callable[[], Any]) -> Episode:
    """Build a fresh env with ``make_env``, replay the recorded actions, return the result.

    The returned episode should equal ``episode`` field for field; :func:`first_difference`
    compares them and says where they differ. ``make_env`` is a zero-argument factory of the
    AEC env the episode was recorded on: the core knows no registry, so
    :func:`mallm_envs.replay` is the convenience that builds it from the recorded id and
    kwargs. A transcript whose actions cannot be replayed (a step by an agent the env does
    not have, an action that is neither text nor an int, more or fewer actions than the env
    asks for) raises :class:`TranscriptError`.
    """
    env = make_env()
    try:
        queues: dict[str, list[str | int]] = {name: [] for name in env.possible_agents}
        for step in episode.steps:
            if step.action is not None:
                if step.agent not in queues:
                    raise TranscriptError(f"a step by unknown agent {step.agent[:40]!r}")
                queues[step.agent].append(step.action)
        players = {name: _RecordedActions(name, queue) for name, queue in queues.items()}
        replayed = run_episode(env, players, seed=episode.seed, options=episode.options)
    finally:
        env.close()
    replayed.agent_descriptions = episode.agent_descriptions
    replayed.mallm_envs_version = episode.mallm_envs_version
    return replayed


def first_difference(recorded: Episode, replayed: Episode) -> str | None:
    """Where two episodes differ (a short human-readable path), or ``None`` if they do not."""
    a, b = recorded.to_dict(), replayed.to_dict()
    for key in ("env_id", "env_spec", "data_hash", "seed", "options", "agents"):
        if a[key] != b[key]:
            return f"{key}: recorded {a[key]!r}, replay gives {b[key]!r}"
    if len(a["steps"]) != len(b["steps"]):
        return f"number of steps: recorded {len(a['steps'])}, replay gives {len(b['steps'])}"
    for index, (x, y) in enumerate(zip(a["steps"], b["steps"])):
        for key in ("agent", "observation", "reward", "terminated", "truncated", "info", "action"):
            if x[key] != y[key]:
                return f"step {index} ({x['agent']}) {key}: recorded {_short(x[key])}, replay gives {_short(y[key])}"
    for key in ("team_return", "turns", "final_infos"):
        if a[key] != b[key]:
            return f"{key}: recorded {_short(a[key])}, replay gives {_short(b[key])}"
    return None


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` atomically when the block ends.

    Writes go to a temporary file in the same folder, which is flushed, fsynced and renamed
    over ``path`` (then the folder is fsynced); if the block raises, ``path`` is untouched and
    the temporary file is removed. Readers see the old file or the new one, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as handle:
        handle.write(data)


def save_episodes(path: str | os.PathLike[str], episodes: Iterable[Episode]) -> None:
    """Write episodes as JSON Lines (gzip-compressed when the name ends in ``.gz``), atomically."""
    body = "".join(e.to_json() + "\n" for e in episodes).encode("ascii")
    if str(path).endswith(".gz"):
        body = gzip.compress(body, mtime=0)
    atomic_write_bytes(path, body)


def load_episodes(
    path: str | os.PathLike[str], *, max_bytes: int = 512 * 1024 * 1024
) -> list[Episode]:
    """Read episodes written by :func:`save_episodes`."""
    raw = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        try:
            with gzip.GzipFile(fileobj=__import__("io").BytesIO(raw)) as handle:
                raw = handle.read(max_bytes + 1)
        except (OSError, EOFError) as err:
            raise TranscriptError(f"{path}: not a valid gzip file ({err})") from None
    if len(raw) > max_bytes:
        raise TranscriptError(f"{path}: larger than the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TranscriptError(f"{path}: not UTF-8 ({err})") from None
    episodes = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            episodes.append(Episode.from_json(line))
        except TranscriptError as err:
            raise TranscriptError(f"{path}, line {number}: {err}") from None
    return episodes
