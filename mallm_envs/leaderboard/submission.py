"""Submissions: an agent's transcripts on an official suite, plus what describes them.

A submission is one gzip-compressed JSON document (``*.json.gz``, format
``mallm-submission/1``):

``env_id``, ``env_spec``, ``data_hash``, ``suite_digest``
    what was played: the exact env (id, kwargs), its task data and the official suite.
``mallm_envs_version``
    the library that produced it.
``agent``
    ``name`` (shown on the board), ``spec`` (how it was built), ``model``, ``revision``,
    ``decoding`` (temperature, ...), ``description`` (free text), ``per_role`` descriptions.
``episodes``
    every episode's full transcript (:class:`~mallm_envs.core.Episode`).
``usage``
    per episode ``wall_time_s`` and ``tokens`` as measured by the submitter. These cannot be
    recomputed by replay, so the board labels them "reported".
``summary``
    statistics with 95% confidence intervals. The replayable ones (team return, success
    rate, invalid-action rate, characters per action) are recomputed by ``mallm verify``;
    a summary that disagrees with its episodes is rejected.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mallm_envs.core.episode import Episode, atomic_write_bytes, run_episode
from mallm_envs.leaderboard.suites import Suite, load_suite

SUBMISSION_FORMAT = "mallm-submission/1"


# --------------------------------------------------------------------------- statistics


def mean_ci(values: Sequence[float], z: float = 1.96) -> dict[str, float]:
    """Mean with a normal-approximation 95% confidence interval.

    >>> mean_ci([1.0, 1.0, 1.0])
    {'mean': 1.0, 'low': 1.0, 'high': 1.0, 'n': 3}
    """
    n = len(values)
    if n == 0:
        return {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 0}
    mean = math.fsum(values) / n
    if n == 1:
        return {"mean": mean, "low": mean, "high": mean, "n": 1}
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def wilson_ci(successes: int, n: int, z: float = 1.96) -> dict[str, float]:
    """A proportion with its Wilson score interval (well-behaved at 0% and 100%).

    >>> wilson_ci(0, 10)["low"]
    0.0
    """
    if n == 0:
        return {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 0}
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"mean": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half), "n": n}


def _round(stats: dict[str, float]) -> dict[str, float]:
    return {k: (round(v, 9) if isinstance(v, float) else v) for k, v in stats.items()}


def episode_success(episode: Episode) -> bool:
    return any(bool(info.get("success")) for info in episode.final_infos.values())


def action_counts(episode: Episode) -> tuple[int, int, int]:
    """(actions, unusable actions, characters) of one episode.

    An action is unusable when the info its agent sees after the turn gives an
    ``invalid_reason``.
    """
    actions = invalid = chars = 0
    waiting: set[str] = set()
    for step in episode.steps:
        info = step.info or {}
        if step.agent in waiting and info.get("turn", 0) > 0:
            waiting.discard(step.agent)
            if info.get("invalid_reason"):
                invalid += 1
        if step.action is not None:
            actions += 1
            chars += len(step.action) if isinstance(step.action, str) else 0
            waiting.add(step.agent)
    return actions, invalid, chars


def summarize(
    episodes: Sequence[Episode], usage: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The submission summary; every replayable figure comes from the transcripts alone."""
    returns = [e.team_return for e in episodes]
    successes = sum(episode_success(e) for e in episodes)
    has_success = any("success" in info for e in episodes for info in e.final_infos.values())
    totals = [action_counts(e) for e in episodes]
    n_actions = sum(t[0] for t in totals)
    n_invalid = sum(t[1] for t in totals)
    summary: dict[str, Any] = {
        "episodes": len(episodes),
        "team_return": _round(mean_ci(returns)),
        "success_rate": _round(wilson_ci(successes, len(episodes))) if has_success else None,
        "invalid_action_rate": _round(wilson_ci(n_invalid, n_actions)),
        "chars_per_action": round(sum(t[2] for t in totals) / n_actions, 6) if n_actions else 0.0,
        "turns": _round(mean_ci([float(e.turns) for e in episodes])),
    }
    reported: dict[str, Any] = {}
    walls = [float(u["wall_time_s"]) for u in usage if u.get("wall_time_s") is not None]
    tokens = [float(u["tokens"]) for u in usage if u.get("tokens") is not None]
    for name, values in (("wall_time_s", walls), ("tokens", tokens)):
        if values:
            stats = mean_ci(values)
            stats["low"] = max(0.0, stats["low"])  # neither can be negative
            reported[name] = _round(stats)
    summary["reported"] = reported
    return summary


# --------------------------------------------------------------------------- submission


@dataclass
class Submission:
    env_id: str
    env_spec: dict[str, Any]
    data_hash: str | None
    suite_digest: str
    agent: dict[str, Any]
    episodes: list[Episode]
    usage: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    mallm_envs_version: str = ""
    format: str = SUBMISSION_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "mallm_envs_version": self.mallm_envs_version,
            "env_id": self.env_id,
            "env_spec": self.env_spec,
            "data_hash": self.data_hash,
            "suite_digest": self.suite_digest,
            "agent": self.agent,
            "summary": self.summary,
            "usage": self.usage,
            "episodes": [e.to_dict() for e in self.episodes],
        }

    def to_bytes(self) -> bytes:
        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True, allow_nan=False)
        return gzip.compress(text.encode("ascii"), mtime=0)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_bytes(path, self.to_bytes())
        return path


def _usage_of(agents: Mapping[str, Any]) -> int | None:
    total = 0
    seen = False
    for agent in agents.values():
        tokens = getattr(agent, "tokens_used", None)
        if isinstance(tokens, int):
            total += tokens
            seen = True
    return total if seen else None


def evaluate(
    env_id: str,
    make_agents: Callable[[Any], dict[str, Any]],
    *,
    agent_info: Mapping[str, Any],
    suite: Suite | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> Submission:
    """Play the official suite of ``env_id`` and build a submission.

    Args:
        env_id: an env id (latest version when none is given).
        make_agents: env -> {role: agent}; called once per episode on a fresh env.
        agent_info: at least ``name``; also ``spec``, ``model``, ``revision``, ``decoding``,
            ``description`` where they apply.
        suite: the episodes to play (default: the frozen official suite).
        limit: play only the first ``limit`` episodes (for quick checks; such a
            submission does not verify as official).
        progress: show a progress bar (tqdm when installed).
    """
    from mallm_envs.registration import make, spec

    full_id = spec(env_id).id
    suite = suite or load_suite(full_id)
    items = suite.items()[: limit if limit is not None else None]
    episodes: list[Episode] = []
    usage: list[dict[str, Any]] = []
    env_spec: dict[str, Any] = {}
    data_hash = None
    per_role: dict[str, Any] = {}
    for seed, options in _progress(items, f"evaluate {full_id}", progress):
        env = make(full_id)
        agents = make_agents(env)
        before = _usage_of(agents)
        start = time.perf_counter()
        episode = run_episode(env, agents, seed=seed, options=options)
        wall = time.perf_counter() - start
        after = _usage_of(agents)
        episodes.append(episode)
        usage.append(
            {
                "wall_time_s": round(wall, 6),
                "tokens": None if after is None else after - (before or 0),
            }
        )
        env_spec, data_hash, per_role = (
            episode.env_spec,
            episode.data_hash,
            episode.agent_descriptions,
        )
        env.close()
    info = dict(agent_info)
    info.setdefault("per_role", per_role)
    submission = Submission(
        env_id=full_id,
        env_spec=env_spec,
        data_hash=data_hash,
        suite_digest=suite.digest,
        agent=info,
        episodes=episodes,
        usage=usage,
        mallm_envs_version=episodes[0].mallm_envs_version if episodes else "",
    )
    submission.summary = summarize(episodes, usage)
    return submission


def _progress(items: list[Any], description: str, enabled: bool) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=description, unit="episode", leave=False)
