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
from collections.abc import Iterable, Iterator, Mapping
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

    def actions(self) -> list[tuple[str, str | None]]:
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


def run_episode(
    env: Any,
    agents: Mapping[str, Any],
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    max_steps: int = 1_000_000,
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
    for count, agent in enumerate(env.agent_iter()):
        if count >= max_steps:
            raise RuntimeError(f"episode exceeded max_steps={max_steps}")
        observation, reward, terminated, truncated, info = env.last()
        if terminated or truncated:
            action = None
        else:
            action = agents[agent].act(observation, info)
        episode.steps.append(
            Step(
                agent=agent,
                observation=_jsonable(observation),
                reward=float(reward),
                terminated=bool(terminated),
                truncated=bool(truncated),
                info=_jsonable(info),
                action=_jsonable(action),
            )
        )
        if terminated or truncated:
            episode.final_infos[agent] = _jsonable(info)
        env.step(action)
        if agent == env.possible_agents[0]:
            team_return += float(reward)
            turns += action is not None  # every agent acts once per turn
    # The first agent's rewards arrive through last(); what is left after the final step is
    # already included because every agent passes through last() once more when done.
    episode.team_return = team_return
    episode.turns = turns
    return episode


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


def replay(episode: Episode, make_env: Any = None) -> Episode:
    """Rebuild the env from the recorded spec, replay the recorded actions, return the result.

    The returned episode should equal ``episode`` field for field; :func:`first_difference`
    compares them and says where they differ. ``make_env`` (a zero-argument factory)
    overrides how the env is built. A transcript whose actions cannot be replayed (a step by
    an agent the env does not have, an action that is neither text nor an int, more or fewer
    actions than the env asks for) raises :class:`TranscriptError`.
    """
    if make_env is None:
        from mallm_envs.registration import make

        kwargs = dict(episode.env_spec.get("kwargs") or {})
        env = make(episode.env_id, **kwargs)
    else:
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
