"""``mallm verify``: re-check a submission by replaying every action.

Nothing in a submission is trusted. The verifier

1. reads the file within limits (compressed and decompressed size, number of JSON values
   and containers, digits per number; no NaN or Infinity), refuses unknown top-level
   fields, and checks every field's type and size (agent names are short printable text
   with no path separators, since they end up in file names and web pages; no agent text
   holds control, format or bidi characters; usage figures are finite and not negative);
2. checks the env: the id must be registered, the recorded spec must be the official one
   (same kwargs), the data hash must match the installed task data, and the episodes must
   be exactly the official suite (no missing, duplicated or extra seeds);
3. replays every episode: rebuilds the env, feeds it the recorded actions, and compares every
   observation, reward, info and the final return with the record;
4. recomputes the summary and compares it with the recorded one.

Each failure raises :class:`VerificationError` whose ``code`` names the kind of problem and
whose message says exactly where it is.

Timing-dependent grades
-----------------------
Some outcomes depend on the machine's speed (a unit test close to its time limit). An env
that has such outcomes is registered with ``timing_sensitive=True``, names the keyword
argument that scales its time limits (``time_limit_scale_kwarg``) and lists each test's
status in ``infos[agent]["test_statuses"]``. When an episode of such an env does not replay
exactly, it is first replayed again under the normal limits (up to :data:`STRICT_RETRIES`
times), since the verifier's own load can push a test past its limit once; a replay that
reproduces the record exactly settles it. Otherwise it is accepted only when timing explains
the difference: either a replay with every time limit multiplied by
:data:`LENIENT_TIME_SCALE` reproduces the record exactly, or every test whose status
differs between the record and the normal replay timed out on one side, and nothing else
differs before that test's turn or in any turn without such a test. The report says which
tests. Whatever was accepted, the figures the verifier reports (and the board shows) are
those of its normal (strict) replay; the lenient replay only decides acceptance, so
editing a record cannot buy more generous limits. Envs not registered as timing-sensitive
must replay exactly.

What replay proves, and what it does not
----------------------------------------
Replay proves that the figures follow from the recorded actions under the official env:
the score was *earned by these actions*. It cannot prove *who* produced them: the oracle's
actions relabelled "my tiny LM" replay as well as the oracle's own file. The stronger tier,
:func:`reproduce` (``mallm verify --reproduce``), rebuilds the declared agent from its spec
and checks that it produces the recorded actions; that is possible for the built-in
deterministic agents (``scripted``, ``random``, ``fixed:``) and for ``llm:``, ``prompting:``
and ``checkpoint:`` agents that decode greedily with their model available locally.
Agents given as ``package.module:factory`` are user code, which the verifier never runs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mallm_envs.core.episode import Episode, first_difference, replay, run_episode
from mallm_envs.core.errors import MallmError, TranscriptError
from mallm_envs.leaderboard.submission import SUBMISSION_FORMAT, Submission, summarize
from mallm_envs.leaderboard.suites import Suite, SuiteError, load_suite, official_variants

MAX_COMPRESSED_BYTES = 64 * 1024 * 1024
MAX_JSON_BYTES = 64 * 1024 * 1024
"""Decompressed size limit; the largest official submission (KitchenNumeric, 10 episodes of
400 steps) is about 25 MB."""
MAX_JSON_VALUES = 16_000_000
"""JSON values (numbers, strings, objects, arrays ...) in one file. The largest official
submissions are the numeric kitchen's on its larger layouts (a 10-episode suite of
asymmetric advantages holds about 9.5 million, counter circuit 8.6 million, cramped room
4.7 million); most values there are small integers of the observation arrays. Parsed, 16
million numbers cost at most about 0.5 GB (a float and its list slot)."""
MAX_JSON_CONTAINERS = 2_000_000
"""JSON objects and arrays in one file (each costs about 60-100 bytes of memory once parsed);
the largest official submission holds about 1 million."""
MAX_INT_DIGITS = 20
MAX_NAME_CHARS = 80
MAX_TEXT_CHARS = 4_000
MAX_WALL_TIME_S = 1e7
MAX_TOKENS = 10**12
LENIENT_TIME_SCALE = 4.0
STRICT_RETRIES = 2
"""Fresh strict replays of a timing-sensitive episode that did not reproduce, before the
timing explanations are tried: a test pushed past its limit by the verifier's own load
reproduces on a retry, so the figures do not depend on how busy the machine is."""
TOP_LEVEL_FIELDS = frozenset(
    {
        "format",
        "mallm_envs_version",
        "env_id",
        "env_spec",
        "data_hash",
        "suite_digest",
        "agent",
        "summary",
        "usage",
        "episodes",
        "cross_play",
    }
)
USAGE_FIELDS = frozenset({"wall_time_s", "tokens"})
SINGLE_LINE_AGENT_FIELDS = frozenset(
    f"submission.agent.{key}" for key in ("name", "model", "revision", "spec")
)
"""Agent fields that the boards show or that name things: no newline or tab either."""
PRIMARY_MEASURES = ("success_rate", "team_return")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+()@&,:-]*$")
# A JSON string, or an unterminated one up to the end: one linear pass, whatever the input.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)


class VerificationError(MallmError, ValueError):
    """A submission failed verification; ``code`` says which check."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code


@dataclass
class VerifyReport:
    """What verification found: the submission and the figures recomputed by replay.

    ``summary`` holds the verifier's own figures (its strict replay). ``timing_adjusted``
    lists the episodes accepted because timing explains their difference, and
    ``timing_notes`` says how. ``primary_measure`` is the env's declared ranking measure.
    ``actions_hash`` identifies the recorded actions (the same actions give the same hash,
    whatever the name). ``check`` is ``"replayed"``, or ``"reproduced"`` once
    :func:`reproduce` rebuilt the declared agent and it produced the recorded actions;
    ``reproduce_note`` says why it was not reproduced.
    """

    submission: Submission
    summary: dict[str, Any]
    timing_adjusted: list[int] = field(default_factory=list)
    timing_notes: list[str] = field(default_factory=list)
    primary_measure: str = "team_return"
    actions_hash: str = ""
    check: str = "replayed"
    reproduce_note: str = ""
    board_id: str = ""
    """The board the submission belongs to: its env id, or ``ID@variant`` (an official
    variant's arguments, such as a kitchen layout)."""

    @property
    def ok(self) -> bool:
        return True


# --------------------------------------------------------------------------- reading


def _refuse_constant(name: str) -> Any:
    raise VerificationError("json", f"the JSON holds {name}; numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise VerificationError("json", f"the JSON number {text[:40]} is not finite as a float")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise VerificationError(
            "json",
            f"the JSON holds an integer of {digits} digits ({text[:20]}...); "
            f"the limit is {MAX_INT_DIGITS}",
        )
    return int(text)


def _check_json_budget(raw: bytes, name: str) -> None:
    """Count values and containers outside strings before anything is parsed."""
    skeleton = _JSON_STRING.sub(b'""', raw)
    containers = skeleton.count(b"{") + skeleton.count(b"[")
    values = containers + skeleton.count(b",") + 1
    if containers > MAX_JSON_CONTAINERS:
        raise VerificationError(
            "size",
            f"{name} holds {containers} JSON objects and arrays; the limit is {MAX_JSON_CONTAINERS}",
        )
    if values > MAX_JSON_VALUES:
        raise VerificationError(
            "size", f"{name} holds about {values} JSON values; the limit is {MAX_JSON_VALUES}"
        )


def read_submission_bytes(raw: bytes, name: str = "submission") -> dict[str, Any]:
    """Decompress (if gzip) and parse within the size, value-count and number limits."""
    if len(raw) > MAX_COMPRESSED_BYTES:
        raise VerificationError(
            "size", f"{name} is {len(raw)} bytes; the limit is {MAX_COMPRESSED_BYTES}"
        )
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
                raw = handle.read(MAX_JSON_BYTES + 1)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise VerificationError("format", f"{name} is not a valid gzip file: {err}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise VerificationError("size", f"{name} decompresses to more than {MAX_JSON_BYTES} bytes")
    _check_json_budget(raw, name)
    try:
        data = json.loads(
            raw.decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except UnicodeDecodeError as err:
        raise VerificationError("json", f"{name} is not UTF-8 text: {err}") from None
    except json.JSONDecodeError as err:
        raise VerificationError("json", f"{name} is not valid JSON: {err}") from None
    except RecursionError:
        raise VerificationError("json", f"{name} nests JSON too deeply") from None
    except VerificationError as err:
        raise VerificationError(err.code, f"{name}: {str(err).split('] ', 1)[1]}") from None
    except ValueError as err:  # anything else json.loads refuses
        raise VerificationError("json", f"{name} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise VerificationError(
            "format", f"{name} must hold a JSON object, not {type(data).__name__}"
        )
    return data


def _require(
    data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "submission"
) -> Any:
    if key not in data:
        raise VerificationError("field", f"{where} has no {key!r} field")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise VerificationError(
            "field", f"{where}.{key} must be {expected}, got {type(value).__name__}"
        )
    return value


def unsafe_character(text: str, allow_newlines: bool = False) -> str | None:
    """The first character of ``text`` that must not reach a table or a web page, or ``None``.

    Refused: control characters (C0, C1, DEL; newline and tab only where ``allow_newlines``),
    format characters (bidi overrides and isolates, zero-width characters), line and
    paragraph separators, surrogates and unassigned code points.
    """
    for char in text:
        if allow_newlines and char in "\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return char
    return None


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{where} (a key)", key
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def check_agent_info(agent: Any) -> dict[str, Any]:
    if not isinstance(agent, dict):
        raise VerificationError("field", "submission.agent must be an object")
    name = _require(agent, "name", str, "submission.agent")
    if not name or len(name) > MAX_NAME_CHARS or not _NAME_OK.match(name) or ".." in name:
        raise VerificationError(
            "agent-name",
            f"agent name {name[:100]!r} is not allowed: use 1-{MAX_NAME_CHARS} characters of letters, digits, "
            "spaces and . _ + ( ) @ & , : - (no slashes, no '..', no control characters)",
        )
    text = json.dumps(agent)
    if len(text) > 20 * MAX_TEXT_CHARS:
        raise VerificationError(
            "size",
            f"submission.agent is {len(text)} characters of JSON; the limit is {20 * MAX_TEXT_CHARS}",
        )
    for key, value in agent.items():
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise VerificationError(
                "size",
                f"submission.agent.{key} is {len(value)} characters; the limit is {MAX_TEXT_CHARS}",
            )
    for where, value in _strings(agent, "submission.agent"):
        bad = unsafe_character(value, allow_newlines=where not in SINGLE_LINE_AGENT_FIELDS)
        if bad is not None:
            raise VerificationError(
                "agent-text",
                f"{where} holds the character U+{ord(bad):04X} "
                f"({unicodedata.name(bad, unicodedata.category(bad))}): control, format and bidi "
                "characters are not allowed in what the boards show",
            )
    return agent


def check_usage(usage: Any, n_episodes: int) -> list[dict[str, Any]]:
    """``usage``: empty, or one object per episode with finite, non-negative figures."""
    if usage is None:
        return []
    if not isinstance(usage, list):
        raise VerificationError(
            "usage", f"submission.usage must be a list, got {type(usage).__name__}"
        )
    if usage and len(usage) != n_episodes:
        raise VerificationError(
            "usage", f"submission.usage has {len(usage)} entries for {n_episodes} episodes"
        )
    limits = {"wall_time_s": MAX_WALL_TIME_S, "tokens": MAX_TOKENS}
    for index, item in enumerate(usage):
        where = f"submission.usage[{index}]"
        if not isinstance(item, dict):
            raise VerificationError(
                "usage", f"{where} must be an object, got {type(item).__name__}"
            )
        unknown = sorted(set(item) - USAGE_FIELDS)
        if unknown:
            raise VerificationError(
                "usage", f"{where} has unknown field(s) {unknown}; known: {sorted(USAGE_FIELDS)}"
            )
        for key, limit in limits.items():
            value = item.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise VerificationError(
                    "usage", f"{where}.{key} must be a number or null, got {type(value).__name__}"
                )
            if key == "tokens" and not isinstance(value, int):
                raise VerificationError(
                    "usage", f"{where}.tokens must be a whole number, got {value!r}"
                )
            if not math.isfinite(value) or value < 0 or value > limit:
                raise VerificationError(
                    "usage", f"{where}.{key} is {value!r}; it must be between 0 and {limit:g}"
                )
    return usage


def parse_submission(data: dict[str, Any]) -> Submission:
    fmt = data.get("format")
    if fmt != SUBMISSION_FORMAT:
        raise VerificationError(
            "format", f"unknown submission format {fmt!r}; expected {SUBMISSION_FORMAT!r}"
        )
    if "unofficial" in data:  # written by evaluate for runs off the official settings
        raise VerificationError(
            "unofficial",
            "this submission is marked unofficial (evaluated with "
            f"{_short(data['unofficial'])}); only runs of the official env settings and "
            "suite verify: run `mallm evaluate` without --env-kwargs, --seed and --limit",
        )
    unknown = sorted(set(data) - TOP_LEVEL_FIELDS)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise VerificationError(
            "field",
            f"submission has {len(unknown)} unknown top-level field(s): {shown}; "
            f"the format {SUBMISSION_FORMAT} has {', '.join(sorted(TOP_LEVEL_FIELDS))}",
        )
    env_id = _require(data, "env_id", str)
    env_spec = _require(data, "env_spec", dict)
    data_hash = data.get("data_hash")
    if data_hash is not None and not isinstance(data_hash, str):
        raise VerificationError("field", "submission.data_hash must be a string or null")
    suite_digest = _require(data, "suite_digest", str)
    agent = check_agent_info(data.get("agent"))
    raw_episodes = _require(data, "episodes", list)
    usage = check_usage(data.get("usage"), len(raw_episodes))
    summary = _require(data, "summary", dict)
    cross_play = check_cross_play_field(data.get("cross_play"), len(raw_episodes))
    version = data.get("mallm_envs_version", "")
    if not isinstance(version, str) or len(version) > MAX_NAME_CHARS:
        raise VerificationError("field", "submission.mallm_envs_version must be a short string")
    episodes = []
    for index, item in enumerate(raw_episodes):
        try:
            episodes.append(Episode.from_dict(item))
        except TranscriptError as err:
            raise VerificationError("episode-format", f"episode {index}: {err}") from None
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as err:
            raise VerificationError(
                "episode-format", f"episode {index}: malformed ({type(err).__name__}: {err})"
            ) from None
    return Submission(
        env_id=env_id,
        env_spec=env_spec,
        data_hash=data_hash,
        suite_digest=suite_digest,
        agent=agent,
        episodes=episodes,
        usage=usage,
        summary=summary,
        mallm_envs_version=version,
        cross_play=cross_play,
    )


def check_cross_play_field(value: Any, n_episodes: int) -> dict[str, Any] | None:
    """``cross_play``: absent, or the population digest and one game per episode."""
    if value is None:
        return None
    where = "submission.cross_play"
    if not isinstance(value, dict):
        raise VerificationError("cross-play", f"{where} must be an object")
    unknown = sorted(set(value) - {"population_digest", "games"})
    if unknown:
        raise VerificationError("cross-play", f"{where} has unknown field(s) {unknown[:5]}")
    digest = _require(value, "population_digest", str, where)
    games = _require(value, "games", list, where)
    if len(games) != n_episodes:
        raise VerificationError(
            "cross-play", f"{where}.games has {len(games)} entries for {n_episodes} episodes"
        )
    for index, game in enumerate(games):
        if not isinstance(game, dict) or set(game) != {"partner", "partner_role"}:
            raise VerificationError(
                "cross-play", f"{where}.games[{index}] must be {{partner, partner_role}}"
            )
        for key in ("partner", "partner_role"):
            if not isinstance(game[key], str) or len(game[key]) > MAX_NAME_CHARS:
                raise VerificationError(
                    "cross-play", f"{where}.games[{index}].{key} must be a short string"
                )
    return {"population_digest": digest, "games": games}


# --------------------------------------------------------------------------- checking


def _variants_of(env_id: str) -> list[Suite]:
    try:
        return official_variants(env_id)
    except SuiteError:
        return []


def _official_env(
    env_id: str, variant_kwargs: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    from mallm_envs.core.errors import RegistryError
    from mallm_envs.registration import make, parse_env_id, registry

    try:
        name, version = parse_env_id(env_id)
    except RegistryError as err:
        raise VerificationError("env", str(err)) from None
    if version is None or env_id not in registry:
        versions = registry.versions(name)
        known = ", ".join(f"{name}-v{v}" for v in versions) or "none"
        raise VerificationError(
            "env-version", f"{env_id!r} is not a registered env version (registered: {known})"
        )
    env = make(env_id, **(variant_kwargs or {}))
    return env, env.spec.to_dict()


def primary_measure_of(env: Any) -> str:
    """The env's declared ranking measure: its ``primary_measure`` attribute.

    ``"success_rate"`` (share of episodes solved) or ``"team_return"`` (mean episode return,
    the default for envs that declare none).
    """
    measure = getattr(env.unwrapped, "primary_measure", "team_return")
    if measure not in PRIMARY_MEASURES:
        raise VerificationError(
            "env",
            f"{env.spec.id} declares primary_measure {measure!r}; use one of {PRIMARY_MEASURES}",
        )
    return measure


def _official_suite(submission: Submission, registered: dict[str, Any]) -> Suite | None:
    """The official suite whose env arguments the submission records (the plain suite for
    the registered ones, else a variant's), or ``None`` when none matches."""
    recorded = submission.env_spec.get("kwargs")
    if recorded == registered:
        return None  # the plain suite, loaded by check_suite
    if not isinstance(recorded, dict):
        return None
    try:
        variants = official_variants(submission.env_id)
    except SuiteError:
        return None
    for suite in variants:
        if {**registered, **suite.kwargs()} == recorded:
            return suite
    return None


def check_suite(submission: Submission, suite: Suite | None = None) -> Suite:
    """The episodes are exactly the official suite's (``suite``: a variant's; default the
    env id's plain suite). Returns the suite."""
    if suite is None:
        try:
            suite = load_suite(submission.env_id)
        except SuiteError as err:
            raise VerificationError("suite", str(err)) from None
    if submission.cross_play is not None:
        check_cross_play_games(submission, suite)
        return suite
    if submission.suite_digest != suite.digest:
        raise VerificationError(
            "suite",
            f"suite digest {submission.suite_digest!r} is not the official {suite.digest!r} for {submission.env_id}",
        )
    expected = Counter(suite.episodes)
    played = Counter((e.seed, json.dumps(e.options, sort_keys=True)) for e in submission.episodes)
    duplicated = sorted(k for k, n in played.items() if n > 1)
    if duplicated:
        seed, options = duplicated[0]
        raise VerificationError(
            "suite", f"episode seed={seed} options={options} appears {played[duplicated[0]]} times"
        )
    missing = sorted(set(expected) - set(played), key=lambda k: (k[0] is None, k))
    if missing:
        seed, options = missing[0]
        raise VerificationError(
            "suite",
            f"{len(missing)} official episode(s) missing, first: seed={seed} options={options}",
        )
    extra = sorted(set(played) - set(expected), key=lambda k: (k[0] is None, k))
    if extra:
        seed, options = extra[0]
        raise VerificationError(
            "suite", f"episode seed={seed} options={options} is not in the official suite"
        )
    return suite


def check_cross_play_games(submission: Submission, suite: Suite) -> None:
    """A cross-play submission holds exactly the games of the official population."""
    from mallm_envs.leaderboard.population import load_population

    if submission.suite_digest != suite.digest:
        raise VerificationError(
            "suite",
            f"suite digest {submission.suite_digest!r} is not the official {suite.digest!r} "
            f"for {suite.board_id}",
        )
    try:
        population = load_population(suite.board_id)
    except SuiteError as err:
        raise VerificationError("cross-play", str(err)) from None
    cross_play = submission.cross_play or {}
    if cross_play.get("population_digest") != population.digest:
        raise VerificationError(
            "population",
            f"the submission was played with partner population "
            f"{cross_play.get('population_digest')!r}; the official population of "
            f"{suite.board_id} is {population.digest!r} (partners "
            f"{', '.join(p.name for p in population.partners)}): evaluate again with "
            "`mallm evaluate --cross-play`",
        )
    games = population.games(suite)
    recorded = cross_play.get("games") or []
    if len(recorded) != len(games):
        raise VerificationError(
            "cross-play",
            f"{len(recorded)} cross-play episodes; the official population of "
            f"{suite.board_id} plays {len(games)}",
        )
    for index, (game, record, episode) in enumerate(zip(games, recorded, submission.episodes)):
        played = (record["partner"], record["partner_role"], episode.seed)
        played_options = json.dumps(episode.options, sort_keys=True)
        if played != (game.partner, game.partner_role, game.seed) or (
            played_options != game.options
        ):
            raise VerificationError(
                "cross-play",
                f"episode {index} is partner {record['partner']!r} as {record['partner_role']!r} "
                f"on seed {episode.seed} {episode.options}; the official game {index} is "
                f"partner {game.partner!r} as {game.partner_role!r} on seed {game.seed} "
                f"{json.loads(game.options)}",
            )


def _where(index: int, episode: Episode) -> str:
    return f"episode {index} (seed {episode.seed}, options {episode.options})"


def _replay(episode: Episode, env_id: str, kwargs: dict[str, Any], index: int) -> Episode:
    from mallm_envs.registration import make

    where = _where(index, episode)
    try:
        return replay(episode, make_env=lambda: make(env_id, **kwargs))
    except TranscriptError as err:
        raise VerificationError("replay", f"{where}: {err}") from None
    except MallmError as err:
        raise VerificationError(
            "replay", f"{where}: the env refused the recorded episode: {err}"
        ) from None


def actions_hash(episodes: list[Episode]) -> str:
    """A hash of every recorded action, episode by episode in (seed, options) order."""
    ordered = sorted(
        episodes, key=lambda e: (e.seed is None, e.seed or 0, json.dumps(e.options, sort_keys=True))
    )
    digest = hashlib.sha256()
    for episode in ordered:
        record = [episode.seed, episode.options, [[s.agent, s.action] for s in episode.steps]]
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _turn_grades(episode: Episode) -> dict[int, tuple[list[Any], float]]:
    """Per graded turn: the test statuses and the team reward, from the steps' infos."""
    grades: dict[int, tuple[list[Any], float]] = {}
    for step in episode.steps:
        info = step.info or {}
        turn = info.get("turn")
        statuses = info.get("test_statuses")
        if isinstance(turn, int) and turn > 0 and isinstance(statuses, list) and turn not in grades:
            grades[turn] = (statuses, step.reward)
    return grades


def _first_differing_turn(recorded: Episode, replayed: Episode) -> int | None:
    for x, y in zip(recorded.steps, replayed.steps):
        if x.to_dict() != y.to_dict():
            turn = (x.info or {}).get("turn")
            return turn if isinstance(turn, int) else None
    return None


def _self_consistent(episode: Episode) -> bool:
    """The record's totals follow from its own steps (as :func:`run_episode` computes them)."""
    if not episode.agents:
        return False
    first = episode.agents[0]
    rewards = [s.reward for s in episode.steps if s.agent == first]
    turns = sum(1 for s in episode.steps if s.agent == first and s.action is not None)
    finals = {s.agent: s.info for s in episode.steps if s.terminated or s.truncated}
    return (
        abs(math.fsum(rewards) - episode.team_return) <= 1e-9
        and turns == episode.turns
        and finals == episode.final_infos
    )


def timing_explanation(recorded: Episode, replayed: Episode) -> str | None:
    """How test time limits explain why ``replayed`` differs from ``recorded``, or ``None``.

    Explained means: a record whose totals follow from its steps; the same number of
    steps; some graded turn whose test statuses differ
    only where one side timed out; nothing differs before the first such turn; and every
    turn whose statuses agree has the same reward on both sides.
    """
    if len(recorded.steps) != len(replayed.steps) or not _self_consistent(recorded):
        return None
    a, b = recorded.to_dict(), replayed.to_dict()
    if any(a[key] != b[key] for key in ("env_id", "data_hash", "seed", "options", "agents")):
        return None
    mine, theirs = _turn_grades(recorded), _turn_grades(replayed)
    if set(mine) != set(theirs):
        return None
    changed: list[str] = []
    for turn in sorted(mine):
        (grades_a, reward_a), (grades_b, reward_b) = mine[turn], theirs[turn]
        if grades_a == grades_b:
            if reward_a != reward_b:
                return None
            continue
        if len(grades_a) != len(grades_b):
            return None
        for test, (x, y) in enumerate(zip(grades_a, grades_b)):
            if x == y:
                continue
            if "timeout" not in (x, y):
                return None
            changed.append(f"turn {turn} test {test + 1}: recorded {x}, replay {y}")
    if not changed:
        return None
    first_turn = _first_differing_turn(recorded, replayed)
    first_timing_turn = int(changed[0].split()[1])
    if first_turn is None or first_turn < first_timing_turn:
        return None
    return "; ".join(changed)


def verify_submission(submission: Submission) -> VerifyReport:
    """Run every check; return the recomputed figures or raise :class:`VerificationError`."""
    env, official_spec = _official_env(submission.env_id)
    variant = _official_suite(submission, dict(official_spec["kwargs"]))
    if variant is not None:  # an official variant: its arguments are the official ones
        env.close()
        env, official_spec = _official_env(submission.env_id, variant.kwargs())
    timing_sensitive = env.spec.timing_sensitive
    official_hash = getattr(env.unwrapped, "data_hash", None)
    measure = primary_measure_of(env)
    env.close()
    if submission.env_spec != official_spec:
        variants = ", ".join(s.board_id for s in _variants_of(submission.env_id))
        raise VerificationError(
            "env-spec",
            f"the recorded env spec differs from the official {submission.env_id}: "
            f"recorded kwargs {submission.env_spec.get('kwargs')}, official {official_spec['kwargs']}"
            + (f" (or those of an official variant: {variants})" if variants else ""),
        )
    if submission.data_hash != official_hash:
        raise VerificationError(
            "data-hash",
            f"data hash {submission.data_hash!r} does not match the installed task data ({official_hash!r}); "
            "the submission was made with different data or a different release",
        )
    suite = check_suite(submission, variant)
    kwargs = dict(official_spec["kwargs"])
    replayed_episodes: list[Episode] = []
    adjusted: list[int] = []
    notes: list[str] = []
    for index, episode in enumerate(submission.episodes):
        if episode.env_id != submission.env_id or episode.env_spec != official_spec:
            raise VerificationError(
                "env-spec",
                f"episode {index} was recorded on {episode.env_id} with a different spec",
            )
        if episode.data_hash != official_hash:
            raise VerificationError(
                "data-hash", f"episode {index} records data hash {episode.data_hash!r}"
            )
        if not timing_sensitive:
            if submission.cross_play is not None:  # one pass: the official partner re-run
                replayed = check_partners(submission, suite, kwargs, {index})[index]
            else:
                replayed = _replay(episode, submission.env_id, kwargs, index)
            where = first_difference(episode, replayed)
            if where is not None:
                raise VerificationError(
                    "replay", f"{_where(index, episode)} does not replay: {where}"
                )
            replayed_episodes.append(replayed)
            continue
        shown, note = _check_timing_sensitive(episode, submission.env_id, kwargs, index)
        replayed_episodes.append(shown)
        if note is not None:
            adjusted.append(index)
            notes.append(f"episode {index}: {note}")
    recomputed = summarize(replayed_episodes, submission.usage)
    if not adjusted:
        _compare_summary(submission.summary, recomputed)
    if submission.cross_play is not None and timing_sensitive:
        check_partners(submission, suite, kwargs)
    return VerifyReport(
        submission=submission,
        summary=recomputed,
        timing_adjusted=adjusted,
        timing_notes=notes,
        primary_measure=measure,
        actions_hash=actions_hash(submission.episodes),
        board_id=suite.board_id,
    )


class _Playback:
    """One seat's recorded actions, in order (the evaluated agent's, while partners re-run)."""

    def __init__(self, actions: list[Any]) -> None:
        self.actions = actions
        self.position = 0

    def act(self, observation: Any, info: Any) -> Any:
        if self.position >= len(self.actions):
            raise VerificationError("replay", "the env asks for more actions than recorded")
        action = self.actions[self.position]
        if isinstance(action, bool) or not isinstance(action, (str, int)):
            raise VerificationError(
                "replay", f"a recorded action is neither text nor an int: {type(action).__name__}"
            )
        self.position += 1
        return action


class _PartnerMismatch(Exception):
    def __init__(self, position: int, produced: Any, recorded: Any) -> None:
        self.position, self.produced, self.recorded = position, produced, recorded


class _WatchedPartner:
    """The official partner, re-run: each action it takes must be the recorded one."""

    def __init__(self, partner: Any, recorded: list[Any]) -> None:
        self.partner = partner
        self.recorded = recorded
        self.position = 0

    def reset(self, seed: int | None = None) -> None:
        reset = getattr(self.partner, "reset", None)
        if callable(reset):
            reset(seed=seed)

    def act(self, observation: Any, info: Any) -> Any:
        action = self.partner.act(observation, info)
        action = action.item() if hasattr(action, "item") else action
        expected = self.recorded[self.position] if self.position < len(self.recorded) else None
        if action != expected:
            raise _PartnerMismatch(self.position, action, expected)
        self.position += 1
        return action


def check_partners(
    submission: Submission, suite: Suite, kwargs: dict[str, Any], indices: Any = None
) -> dict[int, Episode]:
    """Re-run the official partner of every cross-play episode (those in ``indices``; all by
    default) against the recorded actions of the other seats; its actions and description
    must be the recorded ones. Returns each episode as played (a replay of the record when
    the partner matches)."""
    from mallm_envs.leaderboard.population import load_population
    from mallm_envs.registration import make

    population = load_population(suite.board_id)
    games = (submission.cross_play or {}).get("games") or []
    played: dict[int, Episode] = {}
    for index, (game, episode) in enumerate(zip(games, submission.episodes)):
        if indices is not None and index not in indices:
            continue
        role, name = game["partner_role"], game["partner"]
        partner = population.partner(name)
        queues: dict[str, list[Any]] = {}
        for step in episode.steps:
            if step.action is not None:
                queues.setdefault(step.agent, []).append(step.action)
        env = make(submission.env_id, **kwargs)
        try:
            official = partner.build(env, role)
            described = json.loads(json.dumps(getattr(official, "describe", dict)()))
            if episode.agent_descriptions.get(role) != described:
                raise VerificationError(
                    "partner",
                    f"{_where(index, episode)}: the {role!r} seat records the partner "
                    f"description {_short(episode.agent_descriptions.get(role), 120)}; the "
                    f"official partner {name!r} describes itself as {_short(described, 120)}",
                )
            players: dict[str, Any] = {
                agent: _Playback(queues.get(agent, [])) for agent in env.possible_agents
            }
            players[role] = _WatchedPartner(official, queues.get(role, []))
            try:
                result = run_episode(env, players, seed=episode.seed, options=episode.options)
            except _PartnerMismatch as mismatch:
                raise VerificationError(
                    "partner",
                    f"{_where(index, episode)}: the official partner {name!r} in the {role!r} "
                    f"seat acts {_short(mismatch.produced, 80)} at its action "
                    f"{mismatch.position + 1}, the record has {_short(mismatch.recorded, 80)}: "
                    "this episode was not played with the official partner",
                ) from None
            except TranscriptError as err:
                raise VerificationError("replay", f"{_where(index, episode)}: {err}") from None
            except MallmError as err:
                raise VerificationError(
                    "replay",
                    f"{_where(index, episode)}: the env refused the recorded episode: {err}",
                ) from None
        finally:
            env.close()
        result.agent_descriptions = episode.agent_descriptions
        result.mallm_envs_version = episode.mallm_envs_version
        played[index] = result
    return played


def _check_timing_sensitive(
    episode: Episode, env_id: str, kwargs: dict[str, Any], index: int
) -> tuple[Episode, str | None]:
    """(the episode whose figures count, how timing explains a difference or ``None``)."""
    where = _where(index, episode)
    try:
        strict: Episode | None = _replay(episode, env_id, kwargs, index)
        strict_error = ""
    except VerificationError as err:  # e.g. a test timed out, so the env wants another turn
        strict, strict_error = None, str(err)
    difference = None if strict is None else first_difference(episode, strict)
    if strict is not None and difference is None:
        return strict, None
    for _ in range(STRICT_RETRIES):
        # A busy machine (another job on the cores) can push a test past its limit once;
        # a fresh strict replay that reproduces the record exactly is the record's own
        # outcome, and keeps the board's figures independent of the verifier's load.
        try:
            again: Episode | None = _replay(episode, env_id, kwargs, index)
        except VerificationError:
            again = None
        if again is not None and first_difference(episode, again) is None:
            return again, None
    from mallm_envs.registration import spec as registered_spec

    scale_kwarg = registered_spec(env_id).time_limit_scale_kwarg
    # EnvSpec refuses a timing-sensitive registration without this keyword.
    assert scale_kwarg is not None, f"{env_id} is timing-sensitive but names no scale keyword"
    lenient = _replay(episode, env_id, {**kwargs, scale_kwarg: LENIENT_TIME_SCALE}, index)
    lenient.env_spec = episode.env_spec  # it differs by the scale alone, which is the point
    if first_difference(episode, lenient) is None:
        if strict is None:
            # The strict replay cannot run to the end; the lenient one is the record itself.
            return lenient, (
                f"reproduced exactly with time limits x{LENIENT_TIME_SCALE:g}; the normal "
                f"limits need actions the record does not hold ({strict_error})"
            )
        explained = timing_explanation(episode, strict) or "outcomes differ"
        return (
            strict,
            f"reproduced exactly with time limits x{LENIENT_TIME_SCALE:g}; normal limits: {explained}",
        )
    if strict is not None:
        confined = timing_explanation(episode, strict)
        if confined is not None:
            return strict, f"tests at their time limit: {confined}"
    detail = difference if strict is not None else strict_error
    raise VerificationError(
        "replay",
        f"{where} does not replay: {detail}; timing does not explain it (no replay with "
        f"normal or x{LENIENT_TIME_SCALE:g} time limits reproduces the record, and the "
        "difference is not confined to tests that timed out)",
    )


def _compare_summary(recorded: dict[str, Any], recomputed: dict[str, Any]) -> None:
    for key, value in recomputed.items():
        if key == "reported":
            continue
        if recorded.get(key) != value:
            raise VerificationError(
                "summary",
                f"summary.{key} is recorded as {_short(recorded.get(key))} but the episodes give {value!r}",
            )


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def verify_file(
    path: str | Path, *, reproduce_agent: bool = False, batch_episodes: int = 1
) -> VerifyReport:
    """Verify the submission at ``path`` (``.json`` or ``.json.gz``).

    With ``reproduce_agent``, also :func:`reproduce` it (``batch_episodes`` at a time).
    Every failure, including one this module did not foresee, is a
    :class:`VerificationError`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_COMPRESSED_BYTES:
            raise VerificationError(
                "size", f"{path.name} is {size} bytes; the limit is {MAX_COMPRESSED_BYTES}"
            )
        data = read_submission_bytes(path.read_bytes(), path.name)
        report = verify_submission(parse_submission(data))
        if reproduce_agent:
            return reproduce(report, batch_episodes=batch_episodes)
        return report
    except VerificationError:
        raise
    except OSError as err:
        raise VerificationError("io", f"cannot read {path}: {err.strerror or err}") from None
    except RecursionError:
        raise VerificationError("json", f"{path.name} nests values too deeply") from None
    except Exception as err:  # a hostile file must never escape as a traceback
        raise VerificationError(
            "unexpected", f"{path.name}: {type(err).__name__}: {_short(str(err))}"
        ) from None


# --------------------------------------------------------------------------- reproduction

_DETERMINISTIC_SPECS = ("random", "scripted")
_MODEL_SPECS = ("llm", "prompting", "checkpoint")


def _sampling_of(agent: Any) -> Any:
    sampling = getattr(agent, "sampling", None)
    if sampling is None:
        sampling = getattr(getattr(agent, "team", None), "sampling", None)
    return sampling


def _reproducible_kind(spec: Any) -> tuple[bool, str]:
    """(whether the verifier can rebuild this agent spec, why not)."""
    if not isinstance(spec, str) or not spec.strip():
        return False, "the submission declares no agent spec"
    kind = spec.split(":", 1)[0].strip()
    if kind in _MODEL_SPECS:
        return True, ""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    for part in parts:
        if part in _DETERMINISTIC_SPECS or part.startswith("fixed:"):
            continue
        if _listed_agent_factory(part.split("=", 1)[-1].strip()):
            continue
        inner = part.split("=", 1)[-1].strip()
        if inner.startswith("openai:") or (inner.startswith("prompting:") and ":openai:" in inner):
            what = "a model behind an endpoint (openai:), which the verifier cannot re-run"
        elif inner != part:
            what = "one role of a mixed team (ROLE=SPEC); the verifier re-runs one-spec teams"
        else:
            what = "user code (package.module:factory), which the verifier does not run"
        return False, f"the agent spec {_short(part, 100)} is {what}"
    return True, ""


_FAMILY_PARTNERS = re.compile(r"^mallm_envs\.envs\.([a-z_]+)\.partners:([A-Za-z_][A-Za-z0-9_]*)$")


def _listed_agent_factory(spec: str) -> bool:
    """Whether ``spec`` names a class a family's partners module lists in its
    ``AGENT_FACTORIES`` (the kitchen's frozen policies): package code, deterministic, so the
    verifier may rebuild it (other ``module:factory`` specs are user code, never run)."""
    import importlib

    match = _FAMILY_PARTNERS.match(spec)
    if match is None:
        return False
    try:
        module = importlib.import_module(f"mallm_envs.envs.{match.group(1)}.partners")
    except ImportError:
        return False
    return match.group(2) in getattr(module, "AGENT_FACTORIES", ())


def _declares_greedy(decoding: dict[str, Any]) -> bool:
    temperature = decoding.get("temperature")
    return (
        decoding.get("do_sample") is False
        or temperature == 0
        or (temperature is None and "do_sample" not in decoding)
    )


def _unsafe_checkpoint(location: str) -> str:
    """Why the policies a ``checkpoint:`` spec names must not be loaded here ('' when they
    load safely).

    A ``checkpoint.pt`` is loaded weights-only first, so a planted pickle cannot run code
    even if the agent's own loader unpickled in full. An export folder (``policy.json`` and
    safetensors weights, used when the run folder has no ``checkpoint.pt``) cannot hold
    code; its policy record must parse and every weight file must open as safetensors.
    """
    try:
        import torch

        from mallm_envs.agents.checkpoint import (
            CheckpointError,
            PolicyFormatError,
            check_export,
            locate_policy,
        )
    except ImportError as err:
        return f"checkpoints need the 'llm' extra: {err}"
    try:
        kind, path = locate_policy(location)
    except CheckpointError:
        return f"the checkpoint {location[:120]!r} is not available here"
    if kind == "export":
        try:
            check_export(path)
        except (CheckpointError, PolicyFormatError) as err:
            return f"the export {str(path)[:120]!r} cannot be read safely: {_short(str(err), 200)}"
        return ""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler's errors have no common type
        return (
            f"the checkpoint {str(path)[:120]!r} does not load weights-only: {type(err).__name__}"
        )
    return ""


def _llm_settings(agent: dict[str, Any]) -> tuple[Any, str]:
    """The LLM settings a submission recorded (decoding, dtype), on this machine's CPU."""
    try:
        from mallm_envs.agents.spec import LLMSettings
    except ImportError as err:  # pragma: no cover - part of the package
        return None, f"LLM settings are unavailable: {err}"
    decoding = agent.get("decoding")
    if decoding is None:
        decoding = {}
    if not isinstance(decoding, dict) or any(isinstance(v, dict) for v in decoding.values()):
        return None, "the roles decode differently; reproduction takes one setting for all"
    dtypes = {
        d.get("dtype")
        for d in (agent.get("per_role") or {}).values()
        if isinstance(d, dict) and isinstance(d.get("dtype"), str)
    }
    try:
        return LLMSettings(
            temperature=decoding.get("temperature"),
            top_p=decoding.get("top_p"),
            max_new_tokens=decoding.get("max_new_tokens"),
            dtype=dtypes.pop() if len(dtypes) == 1 else None,
        ), ""
    except MallmError as err:
        return None, f"the recorded decoding cannot be set here: {err}"


def reproduce(report: VerifyReport, *, batch_episodes: int = 1) -> VerifyReport:
    """Rebuild the declared agent and check that it produces every recorded action.

    Sets ``report.check`` to ``"reproduced"`` on success. When the agent cannot be rebuilt
    here (user code, a model that samples, a model that is not available locally, the
    ``llm`` extra missing) the report stays ``"replayed"`` and ``reproduce_note`` says why.
    When it was rebuilt and acts differently, raises :class:`VerificationError` (code
    ``reproduce``): the submission does not describe the agent that played it.

    ``batch_episodes`` plays that many episodes side by side with their model calls batched
    (:func:`~mallm_envs.core.run_episodes`). The in-process LLM agents decode
    batch-invariant, so every episode's actions are the ones it gets alone; a batch only
    makes a language-model entry faster to check (a decoding step reads the weights once
    for all its rows).
    """
    from mallm_envs.agents.spec import build_agents
    from mallm_envs.core.episode import run_episodes
    from mallm_envs.registration import make

    if (
        isinstance(batch_episodes, bool)
        or not isinstance(batch_episodes, int)
        or batch_episodes < 1
    ):
        raise ValueError(f"batch_episodes must be a positive int, got {batch_episodes!r}")
    submission = report.submission
    spec = submission.agent.get("spec")
    possible, why = _reproducible_kind(spec)
    if not possible or not isinstance(spec, str):  # _reproducible_kind refuses a non-str
        report.reproduce_note = why
        return report
    declared = submission.agent.get("decoding")
    model_spec = spec.split(":", 1)[0].strip() in _MODEL_SPECS
    if model_spec and isinstance(declared, dict) and not _declares_greedy(declared):
        report.reproduce_note = (
            f"the submission declares sampled decoding ({_short(declared, 80)}); "
            "only greedy decoding reproduces"
        )
        return report
    if spec.startswith("checkpoint:"):
        unsafe = _unsafe_checkpoint(spec[len("checkpoint:") :])
        if unsafe:
            report.reproduce_note = unsafe
            return report
    settings = None
    if model_spec:
        settings, why = _llm_settings(submission.agent)
        if settings is None:
            report.reproduce_note = why
            return report
    kwargs = dict(submission.env_spec.get("kwargs") or {})
    population = None
    if submission.cross_play is not None:
        from mallm_envs.leaderboard.population import load_population

        population = load_population(report.board_id or submission.board_id)
    indices = list(range(len(submission.episodes)))
    for start in range(0, len(indices), batch_episodes):
        chunk = indices[start : start + batch_episodes]
        jobs: list[tuple[Any, dict[str, Any], int | None, Any]] = []
        try:
            for index in chunk:
                episode = submission.episodes[index]
                env = make(submission.env_id, **kwargs)
                jobs.append((env, {}, episode.seed, episode.options))
                try:
                    agents = build_agents(spec, env, seed=0, settings=settings)
                except Exception as err:  # a model that cannot load here, a missing extra, ...
                    report.reproduce_note = (
                        f"the agent {spec!r} cannot be built here: {type(err).__name__}: "
                        f"{_short(str(err), 160)}"
                    )
                    return report
                for role, agent in agents.items():
                    sampling = _sampling_of(agent)
                    if model_spec and sampling is None:
                        report.reproduce_note = f"cannot tell how the agent of {role!r} decodes"
                        return report
                    if sampling is not None and not getattr(sampling, "greedy", False):
                        report.reproduce_note = (
                            f"the agent of {role!r} samples (temperature "
                            f"{getattr(sampling, 'temperature', '?')}); only greedy decoding "
                            "reproduces"
                        )
                        return report
                if population is not None:  # the official partner takes its recorded seat
                    game = (submission.cross_play or {})["games"][index]
                    partner = population.partner(game["partner"])
                    seat = game["partner_role"]
                    agents = {**agents, seat: partner.build(env, seat)}
                jobs[-1] = (env, agents, episode.seed, episode.options)
            try:
                if len(jobs) == 1:
                    env, agents, seed, options = jobs[0]
                    played_all = [run_episode(env, agents, seed=seed, options=options)]
                else:
                    played_all = run_episodes(jobs)
            except Exception as err:  # the declared agent crashed while playing
                where = (
                    _where(chunk[0], submission.episodes[chunk[0]])
                    if len(chunk) == 1
                    else f"episodes {chunk[0]}-{chunk[-1]} (played together)"
                )
                raise VerificationError(
                    "reproduce",
                    f"{where}: the declared agent failed: "
                    f"{type(err).__name__}: {_short(str(err), 200)}",
                ) from None
        finally:
            for env, *_ in jobs:
                env.close()
        for index, played in zip(chunk, played_all):
            _compare_actions(spec, index, submission.episodes[index], played)
    report.check = "reproduced"
    report.reproduce_note = ""
    return report


def _compare_actions(spec: str, index: int, episode: Episode, played: Episode) -> None:
    """Raise ``reproduce`` when ``played`` does not act as the recorded ``episode``."""
    recorded = [(s.agent, s.action) for s in episode.steps if s.action is not None]
    produced = [(s.agent, s.action) for s in played.steps if s.action is not None]
    for position, (want, got) in enumerate(zip(recorded, produced)):
        if want != got:
            raise VerificationError(
                "reproduce",
                f"{_where(index, episode)}: the declared agent {spec!r} acts "
                f"{_short(got[1], 80)} as {got[0]!r} at action {position + 1}, the record "
                f"has {_short(want[1], 80)} as {want[0]!r}",
            )
    if len(recorded) != len(produced):
        raise VerificationError(
            "reproduce",
            f"{_where(index, episode)}: the declared agent {spec!r} plays "
            f"{len(produced)} actions, the record {len(recorded)}",
        )
