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
``cross_play`` (only in cross-play runs)
    ``population_digest`` (the partner population's version, see
    :mod:`mallm_envs.leaderboard.population`) and ``games``: for each episode, in order, the
    ``partner`` that played it and the seat it took (``partner_role``); the evaluated agent
    took the other seats. ``mallm verify`` re-runs each partner and rejects an episode where
    its actions differ from the official partner's.
``unofficial`` (only in unofficial runs)
    why the run is not an official one: env keyword arguments other than the registered
    ones, a seed of its own, or only the first ``limit`` episodes of the suite. Such a file
    is for your own analysis; ``mallm verify`` refuses it and no board takes it.

Evaluation that survives and scales
-----------------------------------
:func:`evaluate` can write each finished episode into a folder as it ends (one file per
episode, written atomically) and, run again with the same folder, plays only the episodes
that are missing, so an interrupted run loses at most the episodes in flight. It can play
several episodes at once in threads (``concurrency``: for agents that wait on a server or
on env work) and several episodes side by side in one thread with their model calls
batched (``batch_episodes``: for in-process models). Whatever the schedule, the episodes
come out in suite order with their suite seeds, so the transcripts and the summary are
those of a sequential run.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mallm_envs.core.episode import (
    Episode,
    atomic_write_bytes,
    run_episode,
    run_episodes,
)
from mallm_envs.core.errors import MallmError, TranscriptError
from mallm_envs.leaderboard.suites import Suite, load_suite, split_board_id, suite_for_kwargs

SUBMISSION_FORMAT = "mallm-submission/1"
RUN_FORMAT = "mallm-evaluation-run/1"
"""Format of the ``run.json`` that identifies an evaluation's episode folder."""


class EvaluationError(MallmError, ValueError):
    """An evaluation that cannot start or resume as asked (the message says what to change)."""


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
    unofficial: dict[str, Any] | None = None
    """Why this run is not official (``None`` for an official run; see the module doc)."""
    cross_play: dict[str, Any] | None = None
    """The partners of a cross-play run (``None`` for self-play; see the module doc)."""

    @property
    def board_id(self) -> str:
        """The board this submission belongs to: the env id, or ``ID@variant`` when its env
        keyword arguments are those of an official variant (see
        :mod:`mallm_envs.leaderboard.suites`)."""
        from mallm_envs.registration import registry

        if self.env_id not in registry:
            return self.env_id
        kwargs = self.env_spec.get("kwargs") if isinstance(self.env_spec, dict) else None
        suite = suite_for_kwargs(self.env_id, kwargs if isinstance(kwargs, dict) else {})
        return self.env_id if suite is None else suite.board_id

    def to_dict(self) -> dict[str, Any]:
        data = {
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
        if self.unofficial is not None:  # official files keep exactly their old fields
            data["unofficial"] = self.unofficial
        if self.cross_play is not None:
            data["cross_play"] = self.cross_play
        return data

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
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int | None = None,
    episodes_dir: str | Path | None = None,
    run_config: Mapping[str, Any] | None = None,
    concurrency: int = 1,
    batch_episodes: int = 1,
    batch: bool = True,
    cross_play: bool = False,
) -> Submission:
    """Play the official suite of ``env_id`` and build a submission.

    Args:
        env_id: an env id (latest version when none is given), or ``ID@variant`` for an
            official variant (``Kitchen-v0@coordination_ring``).
        make_agents: env -> {role: agent}; called once per episode on a fresh env, always
            in the calling thread. It must build fresh agents for each episode (models may be
            shared: see ``concurrency``).
        agent_info: at least ``name``; also ``spec``, ``model``, ``revision``, ``decoding``,
            ``description`` where they apply.
        suite: the episodes to play (default: the frozen official suite).
        limit: play only the first ``limit`` episodes (for quick checks; the submission is
            marked unofficial).
        progress: show a progress bar (tqdm when installed).
        env_kwargs: env keyword arguments over the registered ones (an unofficial run).
        seed: play episode ``i`` of the suite with seed ``seed + i`` (same reset options)
            instead of the suite's seeds (an unofficial run).
        episodes_dir: a folder that receives each finished episode as it ends (atomically);
            run again with the same folder and the same settings, only the missing episodes
            are played. A folder from other settings is refused.
        run_config: settings that change what the agents do but are not in ``agent_info``
            (the command line gives its LLM settings): resuming needs the same.
        concurrency: episodes played at once, in threads (for agents that wait on a server;
            the episodes' env work overlaps too). Agents that share a model in this process
            are never called from two threads at once: they take the model's lock (see
            :mod:`mallm_envs.agents.base`), so a shared in-process model serialises its
            generation. ``make_agents`` returning an agent object that an episode in flight
            already uses is refused.
        batch_episodes: episodes played side by side in one thread, their model calls
            batched together (:func:`~mallm_envs.core.run_episodes`; for in-process models).
            The LLM agents generate batch-invariant (each request its own generator, each
            row the same bits in any batch on the CPU: see
            :meth:`~mallm_envs.agents.llm.MultiAgentLM.generate`), so the transcripts are the
            sequential ones, sampled or greedy. (Before, a lone row ran another matrix kernel
            than a batched one, and a sampled tiny-model Kitchen episode drifted at step 58.)
            One limit: LoRA policies (``checkpoint:`` agents) with several torch threads, where
            the matrix library may split an adapter's rows between threads; with one thread
            they are exact too. GPU kernels make no such promise.
        batch: batch the agents of a simultaneous turn (see :func:`~mallm_envs.core.run_episode`).
        cross_play: play the cross-play games instead (see
            :mod:`mallm_envs.leaderboard.population`): for each partner of the env's
            population, each seat it takes and the suite's first episodes, the partner in
            that seat and ``make_agents``'s agents in the others.

    Whatever ``concurrency`` and ``batch_episodes`` are, episodes are recorded in suite order
    with their own seeds, so the submission is the one a sequential run gives.
    """
    from mallm_envs.registration import make, spec

    for name, value in (("concurrency", concurrency), ("batch_episodes", batch_episodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EvaluationError(f"{name} must be an int >= 1, got {value!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise EvaluationError(f"seed must be an int, got {seed!r}")
    base_id, variant = split_board_id(env_id)
    full_id = spec(base_id).id
    kwargs = dict(env_kwargs or {})
    if suite is None and variant is None and kwargs:
        official = suite_for_kwargs(full_id, kwargs)
        if official is not None:  # the arguments of an official variant: an official run
            suite, kwargs = official, {}
    board_id = full_id if variant is None else f"{full_id}@{variant}"
    suite = suite or load_suite(board_id)
    games = None
    population_digest = None
    if cross_play:
        from mallm_envs.leaderboard.population import load_population

        population = load_population(suite.board_id)
        games = population.games(suite)
        population_digest = population.digest
        all_items = [(game.seed, json.loads(game.options)) for game in games]
    else:
        all_items = suite.items()
    items = all_items[: limit if limit is not None else None]
    if seed is not None:
        items = [(seed + index, options) for index, (_seed, options) in enumerate(items)]
    unofficial = _unofficial(kwargs, seed, limit, len(items), len(all_items))
    kwargs = {**suite.kwargs(), **kwargs}  # a variant's official arguments, then the user's
    make(full_id, **kwargs).close()  # bad kwargs fail here, before anything is written
    identity = {
        "format": RUN_FORMAT,
        "env_id": full_id,
        "suite_digest": suite.digest,
        "env_kwargs": kwargs,
        "seed": seed,
        "agent": dict(agent_info),
        "config": dict(run_config or {}),
    }
    if suite.variant is not None:
        identity["variant"] = suite.variant
    if population_digest is not None:
        identity["cross_play"] = population_digest
    folder = None if episodes_dir is None else Path(episodes_dir)
    done = _load_finished(folder, identity, items) if folder is not None else {}
    results: dict[int, tuple[Episode, dict[str, Any]]] = dict(done)

    def finished(index: int, episode: Episode, usage: dict[str, Any]) -> None:
        results[index] = (episode, usage)
        if folder is not None:
            record = {"index": index, "usage": usage, "episode": episode.to_dict()}
            text = json.dumps(record, sort_keys=True, ensure_ascii=True, allow_nan=False)
            atomic_write_bytes(folder / f"episode-{index:06d}.json", text.encode("ascii"))
        bar.update(1)

    todo = [index for index in range(len(items)) if index not in done]
    units = [todo[i : i + batch_episodes] for i in range(0, len(todo), batch_episodes)]

    def prepare(unit: list[int]) -> list[tuple[int, Any, dict[str, Any]]]:
        prepared = []
        for index in unit:
            env = make(full_id, **kwargs)
            agents = make_agents(env)
            if games is not None:
                game = games[index]
                partner = population.partner(game.partner)
                agents = {**agents, game.partner_role: partner.build(env, game.partner_role)}
            prepared.append((index, env, agents))
            _refuse_shared_agents(prepared[-1:], [prepared[:-1]])
        return prepared

    def play(prepared: list[tuple[int, Any, dict[str, Any]]]) -> list[tuple[int, Episode, Any]]:
        before = [_usage_of(agents) for _, _, agents in prepared]
        start = time.perf_counter()
        try:
            if len(prepared) == 1:
                index, env, agents = prepared[0]
                seed_i, options = items[index]
                episodes = [run_episode(env, agents, seed=seed_i, options=options, batch=batch)]
            else:
                jobs = [(env, agents, *items[index]) for index, env, agents in prepared]
                episodes = run_episodes(jobs, batch=batch)
        finally:
            for _, env, _ in prepared:
                env.close()
        wall = (time.perf_counter() - start) / len(prepared)
        out = []
        for (index, _env, agents), episode, used in zip(prepared, episodes, before):
            after = _usage_of(agents)
            tokens = None if after is None else after - (used or 0)
            out.append((index, episode, {"wall_time_s": round(wall, 6), "tokens": tokens}))
        return out

    bar = _Progress(len(items), len(done), f"evaluate {full_id}", progress)
    try:
        if concurrency == 1:
            for unit in units:
                for index, episode, usage in play(prepare(unit)):
                    finished(index, episode, usage)
        else:
            _play_in_threads(units, prepare, play, finished, concurrency)
    finally:
        bar.close()
    ordered = [results[index] for index in range(len(items))]
    episodes = [episode for episode, _ in ordered]
    usage = [record for _, record in ordered]
    info = dict(agent_info)
    if games is None:
        info.setdefault("per_role", episodes[-1].agent_descriptions if episodes else {})
    else:  # each role as the evaluated agent played it (never a partner's description)
        own: dict[str, Any] = {}
        for game, episode in zip(games, episodes):
            for role, description in episode.agent_descriptions.items():
                if role != game.partner_role:
                    own.setdefault(role, description)
        info.setdefault("per_role", own)
    submission = Submission(
        env_id=full_id,
        env_spec=episodes[0].env_spec if episodes else {},
        data_hash=episodes[0].data_hash if episodes else None,
        suite_digest=suite.digest,
        agent=info,
        episodes=episodes,
        usage=usage,
        mallm_envs_version=episodes[0].mallm_envs_version if episodes else "",
        unofficial=unofficial,
    )
    if games is not None:
        submission.cross_play = {
            "population_digest": population_digest,
            "games": [game.to_dict() for game in games[: len(episodes)]],
        }
    submission.summary = summarize(episodes, usage)
    return submission


def _unofficial(
    kwargs: Mapping[str, Any], seed: int | None, limit: int | None, played: int, total: int
) -> dict[str, Any] | None:
    reasons: dict[str, Any] = {}
    if kwargs:
        reasons["env_kwargs"] = dict(kwargs)
    if seed is not None:
        reasons["seed"] = seed
    if limit is not None and played < total:
        reasons["limit"] = played
    if not reasons:
        return None
    return {
        "note": "an unofficial run (not the official env settings and suite): not for boards",
        **reasons,
    }


def _load_finished(
    folder: Path, identity: dict[str, Any], items: list[tuple[int, dict[str, Any]]]
) -> dict[int, tuple[Episode, dict[str, Any]]]:
    """The episodes an earlier run of the same evaluation wrote into ``folder``."""
    header = folder / "run.json"
    canonical = json.dumps(identity, sort_keys=True, ensure_ascii=True)
    if not header.exists():
        if folder.exists() and any(folder.glob("episode-*.json")):
            raise EvaluationError(f"{folder} holds episodes but no run.json; remove the folder")
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(header, (canonical + "\n").encode("ascii"))
        return {}
    try:
        recorded = json.loads(header.read_text())
    except (OSError, ValueError) as error:
        raise EvaluationError(f"{header} cannot be read ({error}); remove {folder}") from None
    if json.dumps(recorded, sort_keys=True, ensure_ascii=True) != canonical:
        changed = sorted(k for k in identity if recorded.get(k) != identity[k]) or ["format"]
        raise EvaluationError(
            f"{folder} holds episodes of another evaluation (it differs in: "
            f"{', '.join(changed)}); use another output file or remove {folder} to start over"
        )
    done: dict[int, tuple[Episode, dict[str, Any]]] = {}
    for path in sorted(folder.glob("episode-*.json")):
        try:
            record = json.loads(path.read_text())
            index = int(record["index"])
            episode = Episode.from_dict(record["episode"])
            usage = dict(record["usage"])
        except (OSError, ValueError, KeyError, TypeError, TranscriptError) as error:
            raise EvaluationError(
                f"{path} is not a finished episode ({error}); delete it to play it again"
            ) from None
        if index >= len(items):
            continue  # a longer run's episode (a smaller --limit now): kept, not used
        expected_seed, expected_options = items[index]
        if episode.seed != expected_seed or episode.options != expected_options:
            raise EvaluationError(
                f"{path} holds seed {episode.seed} {episode.options}, but episode {index} is "
                f"seed {expected_seed} {expected_options}; remove {folder} to start over"
            )
        done[index] = (episode, usage)
    return done


def _play_in_threads(
    units: list[list[int]],
    prepare: Callable[[list[int]], list[tuple[int, Any, dict[str, Any]]]],
    play: Callable[[list[tuple[int, Any, dict[str, Any]]]], list[tuple[int, Episode, Any]]],
    finished: Callable[[int, Episode, dict[str, Any]], None],
    concurrency: int,
) -> None:
    """Play units in up to ``concurrency`` threads; agents are built here, in this thread."""
    in_flight: dict[concurrent.futures.Future[Any], list[Any]] = {}
    queue = list(units)
    error: BaseException | None = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        try:
            while queue or in_flight:
                while queue and len(in_flight) < concurrency and error is None:
                    prepared = prepare(queue.pop(0))
                    _refuse_shared_agents(prepared, in_flight.values())
                    in_flight[pool.submit(play, prepared)] = prepared
                if not in_flight:
                    break
                ready, _ = concurrent.futures.wait(
                    in_flight, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in ready:
                    del in_flight[future]
                    try:
                        results = future.result()
                    except BaseException as failure:  # keep the others' episodes, then raise
                        error = error or failure
                        continue
                    for index, episode, usage in results:
                        finished(index, episode, usage)
        except BaseException as failure:
            error = error or failure
            for future in in_flight:
                future.cancel()
            for future in concurrent.futures.as_completed(list(in_flight)):
                if not future.cancelled() and future.exception() is None:
                    for index, episode, usage in future.result():
                        finished(index, episode, usage)
    if error is not None:
        raise error


def _refuse_shared_agents(prepared: list[Any], running: Any) -> None:
    """Refuse agent objects that an episode played at the same time already uses."""
    busy = {id(agent) for unit in running for _, _, agents in unit for agent in agents.values()}
    for _index, _env, agents in prepared:
        for role, agent in agents.items():
            if id(agent) in busy:
                raise EvaluationError(
                    f"make_agents gave the {role!r} agent object of an episode still being "
                    "played at the same time; with concurrency or batch_episodes above 1 it "
                    "must build fresh agents for every episode (or play one at a time)"
                )


class _Progress:
    """A tqdm bar over the suite (finished episodes, resumed ones counted at the start)."""

    def __init__(self, total: int, initial: int, description: str, enabled: bool) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(
                total=total, initial=initial, desc=description, unit="episode", leave=False
            )

    def update(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
