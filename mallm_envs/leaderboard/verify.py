"""``mallm verify``: re-check a submission by replaying every action.

Nothing in a submission is trusted. The verifier

1. reads the file within size limits (compressed and decompressed: no gzip bombs), parses
   it, and checks every field's type and size (agent names are short printable text with no
   path separators, since they end up in file names and web pages);
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
that has such outcomes declares ``timing_sensitive = True`` and takes a
``time_limit_scale`` keyword argument. When an episode of such an env does not replay
exactly, the verifier replays it again with every time limit multiplied by
:data:`LENIENT_TIME_SCALE`. The episode is accepted when the recorded team return is not
higher than the best of the two replays (a slower or faster machine cannot forge a higher
score, and an honest submission recorded on a slow machine is not rejected), and the
board then shows the verifier's own replayed figures for that submission, flagged
``timing_adjusted``. Envs without ``timing_sensitive`` must replay exactly.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mallm_envs.core.episode import Episode, first_difference, replay
from mallm_envs.core.errors import MallmError, TranscriptError
from mallm_envs.leaderboard.submission import SUBMISSION_FORMAT, Submission, summarize
from mallm_envs.leaderboard.suites import SuiteError, load_suite

MAX_COMPRESSED_BYTES = 64 * 1024 * 1024
MAX_JSON_BYTES = 256 * 1024 * 1024
MAX_NAME_CHARS = 80
MAX_TEXT_CHARS = 4_000
LENIENT_TIME_SCALE = 4.0
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+()@&,:-]*$")


class VerificationError(MallmError, ValueError):
    """A submission failed verification; ``code`` says which check."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code


@dataclass
class VerifyReport:
    """What verification found: the submission and the figures recomputed by replay."""

    submission: Submission
    summary: dict[str, Any]
    timing_adjusted: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return True


# --------------------------------------------------------------------------- reading


def read_submission_bytes(raw: bytes, name: str = "submission") -> dict[str, Any]:
    """Decompress (if gzip) and parse within the size limits."""
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
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise VerificationError("json", f"{name} is not UTF-8 text: {err}") from None
    except json.JSONDecodeError as err:
        raise VerificationError("json", f"{name} is not valid JSON: {err}") from None
    except RecursionError:
        raise VerificationError("json", f"{name} nests JSON too deeply") from None
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
    return agent


def parse_submission(data: dict[str, Any]) -> Submission:
    fmt = data.get("format")
    if fmt != SUBMISSION_FORMAT:
        raise VerificationError(
            "format", f"unknown submission format {fmt!r}; expected {SUBMISSION_FORMAT!r}"
        )
    env_id = _require(data, "env_id", str)
    env_spec = _require(data, "env_spec", dict)
    data_hash = data.get("data_hash")
    if data_hash is not None and not isinstance(data_hash, str):
        raise VerificationError("field", "submission.data_hash must be a string or null")
    suite_digest = _require(data, "suite_digest", str)
    agent = check_agent_info(data.get("agent"))
    raw_episodes = _require(data, "episodes", list)
    usage = data.get("usage") or []
    if not isinstance(usage, list) or not all(isinstance(u, dict) for u in usage):
        raise VerificationError("field", "submission.usage must be a list of objects")
    summary = _require(data, "summary", dict)
    episodes = []
    for index, item in enumerate(raw_episodes):
        try:
            episodes.append(Episode.from_dict(item))
        except TranscriptError as err:
            raise VerificationError("episode-format", f"episode {index}: {err}") from None
    return Submission(
        env_id=env_id,
        env_spec=env_spec,
        data_hash=data_hash,
        suite_digest=suite_digest,
        agent=agent,
        episodes=episodes,
        usage=usage,
        summary=summary,
        mallm_envs_version=str(data.get("mallm_envs_version", "")),
    )


# --------------------------------------------------------------------------- checking


def _official_env(env_id: str) -> tuple[Any, dict[str, Any]]:
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
    env = make(env_id)
    return env, env.spec.to_dict()


def check_suite(submission: Submission) -> None:
    try:
        suite = load_suite(submission.env_id)
    except SuiteError as err:
        raise VerificationError("suite", str(err)) from None
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


def _replay(episode: Episode, env_id: str, kwargs: dict[str, Any], index: int) -> Episode:
    from mallm_envs.registration import make

    where = f"episode {index} (seed {episode.seed}, options {episode.options})"
    try:
        return replay(episode, make_env=lambda: make(env_id, **kwargs))
    except TranscriptError as err:
        raise VerificationError("replay", f"{where}: {err}") from None
    except MallmError as err:
        raise VerificationError(
            "replay", f"{where}: the env refused the recorded episode: {err}"
        ) from None


def verify_submission(submission: Submission) -> VerifyReport:
    """Run every check; return the recomputed figures or raise :class:`VerificationError`."""
    env, official_spec = _official_env(submission.env_id)
    timing_sensitive = bool(getattr(env.unwrapped, "timing_sensitive", False))
    official_hash = getattr(env.unwrapped, "data_hash", None)
    env.close()
    if submission.env_spec != official_spec:
        raise VerificationError(
            "env-spec",
            f"the recorded env spec differs from the official {submission.env_id}: "
            f"recorded kwargs {submission.env_spec.get('kwargs')}, official {official_spec['kwargs']}",
        )
    if submission.data_hash != official_hash:
        raise VerificationError(
            "data-hash",
            f"data hash {submission.data_hash!r} does not match the installed task data ({official_hash!r}); "
            "the submission was made with different data or a different release",
        )
    check_suite(submission)
    kwargs = dict(official_spec["kwargs"])
    replayed_episodes: list[Episode] = []
    adjusted: list[int] = []
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
        replayed = _replay(episode, submission.env_id, kwargs, index)
        where = first_difference(episode, replayed)
        if where is None:
            replayed_episodes.append(replayed)
            continue
        if timing_sensitive:
            lenient = _replay(
                episode,
                submission.env_id,
                {**kwargs, "time_limit_scale": LENIENT_TIME_SCALE},
                index,
            )
            best = max(replayed.team_return, lenient.team_return)
            if episode.team_return <= best + 1e-9:
                adjusted.append(index)
                replayed_episodes.append(
                    replayed if replayed.team_return >= lenient.team_return else lenient
                )
                continue
        raise VerificationError(
            "replay",
            f"episode {index} (seed {episode.seed}, options {episode.options}) does not replay: {where}",
        )
    recomputed = summarize(replayed_episodes, submission.usage)
    if not adjusted:
        _compare_summary(submission.summary, recomputed)
    return VerifyReport(submission=submission, summary=recomputed, timing_adjusted=adjusted)


def _compare_summary(recorded: dict[str, Any], recomputed: dict[str, Any]) -> None:
    for key, value in recomputed.items():
        if key == "reported":
            continue
        if recorded.get(key) != value:
            raise VerificationError(
                "summary",
                f"summary.{key} is recorded as {recorded.get(key)!r} but the episodes give {value!r}",
            )


def verify_file(path: str | Path) -> VerifyReport:
    """Verify the submission at ``path`` (``.json`` or ``.json.gz``)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise VerificationError("io", f"cannot read {path}: {err.strerror}") from None
    if size > MAX_COMPRESSED_BYTES:
        raise VerificationError(
            "size", f"{path.name} is {size} bytes; the limit is {MAX_COMPRESSED_BYTES}"
        )
    data = read_submission_bytes(path.read_bytes(), path.name)
    return verify_submission(parse_submission(data))
