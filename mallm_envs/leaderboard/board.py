"""Build the boards: verify every submission, then write markdown tables and a static site.

Layout of a boards folder (``leaderboards/`` in the repository)::

    leaderboards/
      <EnvId-vN>/<agent-name>.json.gz     accepted submissions (one file each)
      <EnvId-vN>/README.md                generated table for that board
      <EnvId-vN>/cross-play/*.json.gz     cross-play submissions (``mallm evaluate --cross-play``)
      <EnvId-vN>/cross-play/README.md     generated cross-play table
      <EnvId-vN@variant>/...              an official variant's board (a kitchen layout)
      BOARDS.md                           generated: every board's table
      site/index.html                     generated: the same, with a chart per board

Every output is a pure function of the verified submissions (no timestamps), so running
the build twice gives the same bytes, and CI can check that the committed tables are the
generated ones.

Ranking: each board ranks by its env's declared primary measure (the env class's
``primary_measure``: ``success_rate`` for the code envs, ``team_return`` where an env
declares none), ties broken by team return; the other measures are shown beside it.
The ``check`` column says *replayed* (the figures follow from the recorded actions) or
*reproduced* (the declared agent was also rebuilt and produced those actions; see
:func:`mallm_envs.leaderboard.verify.reproduce`). A file that fails verification is
reported and left out; the other rows and boards are still built. One row per agent name
and per set of actions: a copy of another entry's transcripts under a new name is refused.
Text from a submission is shown only after control, format and bidi characters are
replaced.

Cross-play tables
-----------------
A cross-play entry played the env's held-out partners (see
:mod:`mallm_envs.leaderboard.population`). Its score is the mean over partners of the
team return with that partner (each partner weighted equally, whatever seats it takes),
with a 95% interval for a fixed population (the partners' episode variances, pooled); the
table also gives each partner's mean, the worst partner, and, for an agent whose name also
has a self-play row on the board, the self-play return and the gap (self-play minus
cross-play). Rows rank by the cross-play mean.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mallm_envs.core.episode import atomic_write_bytes
from mallm_envs.leaderboard.verify import (
    VerificationError,
    VerifyReport,
    unsafe_character,
    verify_file,
)
from mallm_envs.leaderboard.verify import (
    reproduce as reproduce_agent,
)

SUBMISSION_GLOB = "*.json.gz"
MEASURE_LABELS = {"success_rate": "success", "team_return": "team return"}
CROSS_PLAY_FOLDER = "cross-play"
CROSS_PLAY_SUFFIX = f"/{CROSS_PLAY_FOLDER}"
"""A cross-play board's key in the boards mapping: ``<board id>/cross-play``."""


def cross_play_stats(episodes: Sequence[Any], games: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Cross-play figures from the episodes and their games (partner and seat).

    ``team_return``: the mean over partners of each partner's mean return, with a 95%
    normal interval whose variance is ``sum(s_p^2 / n_p) / P^2`` (a fixed population: the
    spread comes from the episodes); ``partners``: each partner's mean and episode count;
    ``worst``: the partner with the lowest mean; ``seats``: the mean return by the seat the
    evaluated agent left to the partner.

    >>> class E:
    ...     def __init__(self, r): self.team_return = r
    >>> games = [{"partner": "a", "partner_role": "x"}] * 2 + [{"partner": "b", "partner_role": "x"}] * 2
    >>> stats = cross_play_stats([E(1.0), E(3.0), E(0.0), E(0.0)], games)
    >>> stats["team_return"]["mean"], stats["worst"]
    (1.0, 'b')
    """
    by_partner: dict[str, list[float]] = {}
    by_seat: dict[str, list[float]] = {}
    for episode, game in zip(episodes, games):
        by_partner.setdefault(game["partner"], []).append(float(episode.team_return))
        by_seat.setdefault(game["partner_role"], []).append(float(episode.team_return))
    partners: dict[str, dict[str, float]] = {}
    variance = 0.0
    for name, values in by_partner.items():
        mean = math.fsum(values) / len(values)
        partners[name] = {"mean": mean, "n": len(values)}
        if len(values) > 1:
            spread = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
            variance += spread / len(values)
    count = len(partners)
    overall = math.fsum(p["mean"] for p in partners.values()) / count if count else 0.0
    half = 1.96 * math.sqrt(variance) / count if count else 0.0
    worst = min(partners, key=lambda n: (partners[n]["mean"], n)) if partners else ""
    return {
        "team_return": {
            "mean": round(overall, 9),
            "low": round(overall - half, 9),
            "high": round(overall + half, 9),
            "n": len(episodes),
        },
        "partners": partners,
        "worst": worst,
        "seats": {seat: math.fsum(v) / len(v) for seat, v in sorted(by_seat.items())},
    }


@dataclass
class Entry:
    env_id: str
    file: str
    report: VerifyReport
    cross: dict[str, Any] | None = field(default=None)
    """Cross-play figures (:func:`cross_play_stats`) for a cross-play entry."""

    @property
    def name(self) -> str:
        return str(self.report.submission.agent["name"])

    @property
    def summary(self) -> dict[str, Any]:
        return self.report.summary

    @property
    def measure(self) -> str:
        return self.report.primary_measure

    def sort_key(self) -> tuple[float, float, str]:
        if self.cross is not None:
            mean = self.cross["team_return"]["mean"]
            return (-mean, -mean, self.name)
        s = self.summary
        primary = s.get(self.measure) or s["team_return"]
        return (-primary["mean"], -s["team_return"]["mean"], self.name)


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


_MODEL_SPEC = re.compile(r"(?:^|[,=])\s*(?:llm|prompting|checkpoint|openai):")
"""A spec (or one role of a team spec) that runs a language model."""


def runs_a_model(spec: object) -> bool:
    """Whether an agent spec runs a language model (slow to reproduce on a CPU)."""
    return isinstance(spec, str) and _MODEL_SPEC.search(spec) is not None


def collect(
    root: Path,
    *,
    reproduce: bool = True,
    reproduce_models: bool = False,
    batch_episodes: int = 1,
) -> tuple[dict[str, list[Entry]], list[str]]:
    """Verify every submission under ``root``; return the boards and the failures.

    With ``reproduce`` (the default), each submission's declared agent is also rebuilt
    where that is possible (see :func:`~mallm_envs.leaderboard.verify.reproduce`); its row
    then says "reproduced", else "replayed". Agents that run a language model are rebuilt
    only with ``reproduce_models`` (an SmolLM2 suite takes about an hour on two CPU cores);
    ``mallm verify --reproduce FILE`` checks one such entry. A board keeps one row per agent name and one
    per set of actions: a later file (reproduced rows first, then by file name) with the
    name or the very actions of a kept row is rejected. ``batch_episodes`` episodes are
    reproduced side by side (see :func:`~mallm_envs.leaderboard.verify.reproduce`).
    Cross-play submissions (in a board's
    ``cross-play/`` folder) make the board ``<board id>/cross-play``.
    """
    boards: dict[str, list[Entry]] = {}
    failures: list[str] = []
    for board_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "site"):
        _collect_folder(
            board_dir,
            board_dir.name,
            False,
            boards,
            failures,
            reproduce,
            reproduce_models,
            batch_episodes,
        )
        cross_dir = board_dir / CROSS_PLAY_FOLDER
        if cross_dir.is_dir() and not cross_dir.is_symlink():
            key = board_dir.name + CROSS_PLAY_SUFFIX
            _collect_folder(
                cross_dir,
                key,
                True,
                boards,
                failures,
                reproduce,
                reproduce_models,
                batch_episodes,
            )
    for entries in boards.values():
        entries.sort(key=Entry.sort_key)
    return boards, failures


def _collect_folder(
    folder: Path,
    key: str,
    cross_play: bool,
    boards: dict[str, list[Entry]],
    failures: list[str],
    reproduce: bool,
    reproduce_models: bool,
    batch_episodes: int = 1,
) -> None:
    board_id = key.removesuffix(CROSS_PLAY_SUFFIX)
    candidates: list[Entry] = []
    for path in sorted(folder.glob(SUBMISSION_GLOB)):
        if path.is_symlink():
            failures.append(f"{path}: symbolic links are not accepted")
            continue
        try:
            report = verify_file(path)
        except VerificationError as err:
            failures.append(f"{path}: {err}")
            continue
        if reproduce and not reproduce_models and runs_a_model(report.submission.agent.get("spec")):
            report.reproduce_note = (
                "a language-model agent: reproduced only on request "
                "(mallm board --reproduce-models, or mallm verify --reproduce FILE)"
            )
        elif reproduce:
            try:
                reproduce_agent(report, batch_episodes=batch_episodes)
            except VerificationError as err:  # the row stays "replayed"; the build says why
                report.reproduce_note = f"reproduction failed: {err}"
        found = report.board_id or report.submission.env_id
        if found != board_id:
            failures.append(f"{path}: a {found} submission in the {board_id} board")
            continue
        is_cross = report.submission.cross_play is not None
        if is_cross != cross_play:
            where = f"{board_id}/{CROSS_PLAY_FOLDER}/" if is_cross else f"{board_id}/"
            kind = "cross-play" if is_cross else "self-play"
            failures.append(f"{path}: a {kind} submission belongs in {where}")
            continue
        entry = Entry(key, path.name, report)
        if report.submission.cross_play is not None:  # is_cross
            entry.cross = cross_play_stats(
                report.submission.episodes, report.submission.cross_play["games"]
            )
        candidates.append(entry)
    candidates.sort(key=lambda e: (e.report.check != "reproduced", e.file))
    names: dict[str, Entry] = {}
    actions: dict[str, Entry] = {}
    for entry in candidates:
        path = folder / entry.file
        same_name = names.get(_name_key(entry.name))
        if same_name is not None:
            failures.append(
                f"{path}: the agent name {entry.name!r} is already on the board "
                f"({same_name.file}); one row per name"
            )
            continue
        same_actions = actions.get(entry.report.actions_hash)
        if same_actions is not None:
            failures.append(
                f"{path}: its transcripts hold exactly the actions of {same_actions.file} "
                f"({same_actions.name!r}, actions hash {entry.report.actions_hash}); "
                "a copy is not a new entry"
            )
            continue
        names[_name_key(entry.name)] = entry
        actions[entry.report.actions_hash] = entry
        boards.setdefault(key, []).append(entry)


def _fmt_ci(stats: dict[str, float], digits: int = 3, percent: bool = False) -> str:
    scale = 100.0 if percent else 1.0
    unit = "%" if percent else ""
    mean, low, high = stats["mean"] * scale, stats["low"] * scale, stats["high"] * scale
    return f"{mean:.{digits}f}{unit} [{low:.{digits}f}, {high:.{digits}f}]"


def _measure_order(measure: str) -> list[str]:
    return [measure] + [m for m in MEASURE_LABELS if m != measure]


def header(measure: str) -> list[str]:
    """The columns of a board ranked by ``measure`` (its column first, marked)."""
    columns = []
    for m in _measure_order(measure):
        label = f"{MEASURE_LABELS[m]} [95% CI]"
        columns.append(f"{label} (ranked)" if m == measure else label)
    return [
        "#",
        "agent",
        "model",
        *columns,
        "invalid actions",
        "episodes",
        "check",
        "tokens/ep (reported)",
        "s/ep (reported)",
    ]


def _measure_cell(summary: dict[str, Any], measure: str) -> str:
    stats = summary.get(measure)
    if stats is None:
        return "-"
    if measure == "success_rate":
        return _fmt_ci(stats, 1, percent=True)
    return _fmt_ci(stats)


_ROLE_SPEC = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*=")


def agent_model(agent: dict[str, Any]) -> str:
    """The model an entry declares; when it declares none (a ``checkpoint:`` spec names no
    model), the models its agents recorded in ``per_role``: one name, or ``role: name``
    items when the roles differ. ``-`` when neither says."""
    if agent.get("model"):
        return str(agent["model"])
    per_role = agent.get("per_role")
    if not isinstance(per_role, dict):
        return "-"
    models = {
        role: str(d["model"])
        for role, d in per_role.items()
        if isinstance(d, dict) and isinstance(d.get("model"), str) and d["model"]
    }
    if not models:
        return "-"
    values = list(models.values())
    if len(models) == len(per_role) and all(value == values[0] for value in values):
        return values[0]
    return ", ".join(f"{role}: {model}" for role, model in models.items())


def model_cell(agent: dict[str, Any]) -> str:
    """The model column: the agent's model; for a mixed team (``ROLE=SPEC`` roles) also each
    role's decoding, since its roles may decode differently."""
    model = agent_model(agent)
    decoding = agent.get("decoding")
    if not _ROLE_SPEC.match(str(agent.get("spec") or "")) or not isinstance(decoding, dict):
        return model
    if decoding and all(isinstance(value, dict) for value in decoding.values()):
        roles = "; ".join(f"{role}: {_decoding_text(value)}" for role, value in decoding.items())
    else:
        roles = f"every role: {_decoding_text(decoding)}"
    return f"{model} ({roles})"


def _decoding_text(decoding: dict[str, Any]) -> str:
    temperature = decoding.get("temperature")
    if temperature == 0 or decoding.get("do_sample") is False:
        text = "greedy"
    else:
        text = f"temperature {temperature}, top-p {decoding.get('top_p')}"
    tokens = decoding.get("max_new_tokens")
    return f"{text}, {tokens} new tokens" if tokens else text


def _row(rank: int, entry: Entry) -> list[str]:
    s = entry.summary
    agent = entry.report.submission.agent
    model = model_cell(agent)
    reported = s.get("reported", {})
    wall = reported.get("wall_time_s")
    tokens = reported.get("tokens")
    flag = " (timing-adjusted)" if entry.report.timing_adjusted else ""
    return [
        str(rank),
        entry.name + flag,
        model,
        *(_measure_cell(s, m) for m in _measure_order(entry.measure)),
        _fmt_ci(s["invalid_action_rate"], 1, percent=True),
        str(s["episodes"]),
        entry.report.check,
        "-" if tokens is None else f"{tokens['mean']:.0f}",
        "-" if wall is None else f"{wall['mean']:.3f}",
    ]


def clean_text(text: str) -> str:
    """``text`` with every control, format (bidi, zero-width) and separator character
    replaced by a space: what a table cell or a web page may show."""
    return "".join(" " if unsafe_character(c) is not None else c for c in text)


def _md_cell(text: str) -> str:
    return clean_text(text).replace("|", "\\|")


def _board_measure(entries: list[Entry]) -> str:
    return entries[0].measure if entries else "team_return"


def _ranking_note(measure: str) -> str:
    if measure == "success_rate":
        return (
            "Ranked by success rate (the env's primary measure), then team return. "
            "Check: *replayed* means the figures follow from the recorded actions; "
            "*reproduced* means the declared agent was also rebuilt and produced them.\n\n"
        )
    return (
        "Ranked by mean team return (the env's primary measure). "
        "Check: *replayed* means the figures follow from the recorded actions; "
        "*reproduced* means the declared agent was also rebuilt and produced them.\n\n"
    )


def markdown_table(entries: list[Entry]) -> str:
    columns = header(_board_measure(entries))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for rank, entry in enumerate(entries, start=1):
        lines.append("| " + " | ".join(_md_cell(c) for c in _row(rank, entry)) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- cross-play

CROSS_PLAY_NOTE = (
    "Cross-play: each agent played with every held-out partner of the env's population, "
    "in each seat the partner takes (`mallm partners ID` lists them). Ranked by the mean "
    "over partners of the team return with that partner (95% interval for this fixed "
    "population); *gap* is self-play minus cross-play, for agents that also have a "
    "self-play row of the same name.\n\n"
)


def _partner_names(entries: list[Entry]) -> list[str]:
    names: list[str] = []
    for entry in entries:
        for name in (entry.cross or {}).get("partners", {}):
            if name not in names:
                names.append(name)
    return names


def cross_header(partners: list[str]) -> list[str]:
    return [
        "#",
        "agent",
        "model",
        "cross-play team return [95% CI] (ranked)",
        "worst partner",
        "self-play team return",
        "gap (self - cross)",
        *(f"with {name}" for name in partners),
        "episodes",
        "check",
    ]


def _self_play_of(entry: Entry, self_play: list[Entry]) -> Entry | None:
    key = _name_key(entry.name)
    return next((e for e in self_play if _name_key(e.name) == key), None)


def cross_row(rank: int, entry: Entry, partners: list[str], self_play: Entry | None) -> list[str]:
    stats = entry.cross or {}
    cross = stats["team_return"]
    worst = stats["worst"]
    own = self_play.summary["team_return"]["mean"] if self_play is not None else None
    if own is None:
        self_cell = gap_cell = "-"
    else:
        gap = own - cross["mean"]
        share = f" ({100 * gap / own:+.0f}%)" if own else ""
        self_cell = f"{own:.3f}"
        gap_cell = f"{gap:+.3f}{share}"
    per_partner = stats["partners"]
    return [
        str(rank),
        entry.name,
        agent_model(entry.report.submission.agent),
        _fmt_ci(cross),
        f"{worst} ({per_partner[worst]['mean']:.3f})" if worst else "-",
        self_cell,
        gap_cell,
        *(f"{per_partner[n]['mean']:.3f}" if n in per_partner else "-" for n in partners),
        str(cross["n"]),
        entry.report.check,
    ]


def cross_markdown_table(entries: list[Entry], self_play: list[Entry]) -> str:
    partners = _partner_names(entries)
    columns = cross_header(partners)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for rank, entry in enumerate(entries, start=1):
        row = cross_row(rank, entry, partners, _self_play_of(entry, self_play))
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def board_markdown(env_id: str, entries: list[Entry], self_play: list[Entry] | None = None) -> str:
    if env_id.endswith(CROSS_PLAY_SUFFIX):
        return (
            f"# {env_id.removesuffix(CROSS_PLAY_SUFFIX)}: cross-play\n\n"
            "Generated by `mallm board` from the verified submissions in this folder; "
            "do not edit.\n\n" + CROSS_PLAY_NOTE + cross_markdown_table(entries, self_play or [])
        )
    return (
        f"# {env_id}\n\n"
        "Generated by `mallm board` from the verified submissions in this folder; do not edit.\n\n"
        + _ranking_note(_board_measure(entries))
        + markdown_table(entries)
    )


def all_boards_markdown(boards: dict[str, list[Entry]]) -> str:
    parts = [
        "# Leaderboards\n\n",
        "Generated by `mallm board`; every row was verified by replaying its transcripts "
        "(*replayed*), and where its declared agent could be rebuilt, by reproducing them "
        "(*reproduced*). Do not edit.\n",
    ]
    for env_id, entries in sorted(boards.items()):
        if env_id.endswith(CROSS_PLAY_SUFFIX):
            board_id = env_id.removesuffix(CROSS_PLAY_SUFFIX)
            parts.append(f"\n## {board_id}: cross-play\n\n")
            parts.append(CROSS_PLAY_NOTE)
            parts.append(cross_markdown_table(entries, boards.get(board_id, [])))
            continue
        parts.append(f"\n## {env_id}\n\n")
        parts.append(_ranking_note(_board_measure(entries)))
        parts.append(markdown_table(entries))
    return "".join(parts)


def _svg_cross_chart(entries: list[Entry], self_play: list[Entry]) -> str:
    """Per entry: a self-play bar (grey, where the agent has a self-play row) above a
    cross-play bar (blue, with its 95% interval)."""
    if not entries:
        return ""
    rows: list[tuple[Entry, dict[str, Any], float | None]] = []
    for entry in entries:
        if entry.cross is None:  # only cross-play entries reach this chart
            continue
        mine = _self_play_of(entry, self_play)
        rows.append((entry, entry.cross, mine.summary["team_return"]["mean"] if mine else None))
    values = [
        v
        for _, cross, own in rows
        for v in (cross["team_return"]["low"], cross["team_return"]["high"], own)
        if v is not None
    ]
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0
    label_w, bar_w, row_h = 220, 460, 40
    height = row_h * len(rows) + 30

    def x(value: float) -> float:
        return float(label_w + (value - low) / span * bar_w)

    zero = x(0.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" '
        f'height="{height}" role="img" aria-label="self-play and cross-play team return by agent">',
        f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height - 20}" stroke="#999"/>',
    ]
    for i, (entry, stats, own) in enumerate(rows):
        y = i * row_h + 4
        cross = stats["team_return"]
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 20}" text-anchor="end" font-size="13">'
            f"{html.escape(clean_text(entry.name))}</text>"
        )
        if own is not None:
            left, right = sorted((zero, x(own)))
            parts.append(
                f'<rect x="{left:.1f}" y="{y}" width="{max(right - left, 1):.1f}" height="14" '
                'fill="#bbbbbb"><title>self-play</title></rect>'
            )
            parts.append(
                f'<text x="{max(x(own), zero) + 6:.1f}" y="{y + 11}" font-size="11">'
                f"self {own:.3f}</text>"
            )
        left, right = sorted((zero, x(cross["mean"])))
        parts.append(
            f'<rect x="{left:.1f}" y="{y + 16}" width="{max(right - left, 1):.1f}" height="14" '
            'fill="#4c78a8"><title>cross-play</title></rect>'
        )
        parts.append(
            f'<line x1="{x(cross["low"]):.1f}" y1="{y + 23}" x2="{x(cross["high"]):.1f}" '
            f'y2="{y + 23}" stroke="#222" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{max(x(cross["high"]), zero) + 6:.1f}" y="{y + 27}" font-size="11">'
            f"cross {cross['mean']:.3f}</text>"
        )
    parts.append(f'<text x="{label_w}" y="{height - 4}" font-size="11">{low:.2f}</text>')
    parts.append(
        f'<text x="{label_w + bar_w}" y="{height - 4}" font-size="11" text-anchor="end">'
        f"{high:.2f}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _svg_chart(entries: list[Entry]) -> str:
    """Horizontal bars of the board's ranking measure with 95% CI whiskers."""
    if not entries:
        return ""
    measure = _board_measure(entries)
    values = [e.summary.get(measure) or e.summary["team_return"] for e in entries]
    low = min(0.0, *(v["low"] for v in values))
    high = max(0.0, *(v["high"] for v in values))
    span = (high - low) or 1.0
    label_w, bar_w, row_h = 220, 460, 26
    height = row_h * len(entries) + 30

    def x(value: float) -> float:
        return float(label_w + (value - low) / span * bar_w)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" height="{height}" role="img" '
        f'aria-label="{MEASURE_LABELS[measure]} by agent">'
    ]
    zero = x(0.0)
    parts.append(f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height - 20}" stroke="#999"/>')
    for i, (entry, v) in enumerate(zip(entries, values)):
        y = i * row_h + 4
        left, right = sorted((zero, x(v["mean"])))
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="13">{html.escape(entry.name)}</text>'
        )
        parts.append(
            f'<rect x="{left:.1f}" y="{y}" width="{max(right - left, 1):.1f}" height="18" fill="#4c78a8"/>'
        )
        parts.append(
            f'<line x1="{x(v["low"]):.1f}" y1="{y + 9}" x2="{x(v["high"]):.1f}" y2="{y + 9}" stroke="#222" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{max(x(v["high"]), zero) + 6:.1f}" y="{y + 14}" font-size="12">{v["mean"]:.3f}</text>'
        )
    parts.append(f'<text x="{label_w}" y="{height - 4}" font-size="11">{low:.2f}</text>')
    parts.append(
        f'<text x="{label_w + bar_w}" y="{height - 4}" font-size="11" text-anchor="end">{high:.2f}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _caption(measure: str) -> str:
    what = "Success rate" if measure == "success_rate" else "Mean team return"
    return f"{what} (the ranking measure) with 95% confidence interval."


def site_html(boards: dict[str, list[Entry]]) -> str:
    sections = []
    for env_id, entries in sorted(boards.items()):
        if env_id.endswith(CROSS_PLAY_SUFFIX):
            sections.append(_cross_section(env_id, entries, boards))
            continue
        rows = []
        for rank, entry in enumerate(entries, start=1):
            cells = "".join(f"<td>{html.escape(clean_text(c))}</td>" for c in _row(rank, entry))
            rows.append(f"<tr>{cells}</tr>")
        measure = _board_measure(entries)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header(measure))
        sections.append(
            f'<section id="{html.escape(env_id)}"><h2>{html.escape(env_id)}</h2>'
            f"<figure>{_svg_chart(entries)}<figcaption>{html.escape(_caption(measure))}</figcaption></figure>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
        )
    nav = " · ".join(
        f'<a href="#{html.escape(_anchor(k))}">{html.escape(k)}</a>' for k in sorted(boards)
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>mallm-envs leaderboards</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}"
        "th{background:#f3f3f3}figure{margin:0}figcaption{font-size:12px;color:#555}</style></head><body>"
        "<h1>mallm-envs leaderboards</h1>"
        "<p>Every row was verified by replaying its transcripts through the environment "
        "(<em>replayed</em>: the figures follow from the recorded actions); rows marked "
        "<em>reproduced</em> were also played again by their declared agent, which produced "
        "the same actions. "
        "Tokens and seconds are reported by the submitter and cannot be replayed.</p>"
        f"<nav>{nav}</nav>{''.join(sections)}</body></html>\n"
    )


def _anchor(key: str) -> str:
    """A board's anchor on the page: its key, with ``/cross-play`` as ``-cross-play``."""
    return key.replace("/", "-")


def _cross_section(key: str, entries: list[Entry], boards: dict[str, list[Entry]]) -> str:
    board_id = key.removesuffix(CROSS_PLAY_SUFFIX)
    self_play = boards.get(board_id, [])
    partners = _partner_names(entries)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in cross_header(partners))
    rows = []
    for rank, entry in enumerate(entries, start=1):
        cells = cross_row(rank, entry, partners, _self_play_of(entry, self_play))
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(clean_text(c))}</td>" for c in cells) + "</tr>"
        )
    anchor = html.escape(_anchor(key))
    caption = (
        "Team return in self-play (grey) and cross-play (blue: mean over the held-out "
        "partners, with 95% interval)."
    )
    return (
        f'<section id="{anchor}"><h2>{html.escape(board_id)}: cross-play</h2>'
        f"<p>{html.escape(CROSS_PLAY_NOTE.strip().replace('`', '').replace('*', ''))}</p>"
        f"<figure>{_svg_cross_chart(entries, self_play)}<figcaption>{caption}</figcaption></figure>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def build(
    root: str | Path,
    *,
    reproduce: bool = True,
    reproduce_models: bool = False,
    batch_episodes: int = 1,
) -> tuple[dict[str, list[Entry]], list[str], list[Path]]:
    """Verify and regenerate every board under ``root``; return boards, failures, written files.

    A file that fails is reported in ``failures`` and left out; the other boards are built.
    """
    root = Path(root)
    if not root.is_dir():
        raise VerificationError(
            "io",
            f"no boards folder at {root}: run `mallm board` in a checkout of the repository, "
            "or give the folder (`mallm board PATH`)",
        )
    boards, failures = collect(
        root,
        reproduce=reproduce,
        reproduce_models=reproduce_models,
        batch_episodes=batch_episodes,
    )
    written = []
    for env_id, entries in boards.items():
        path = root / env_id / "README.md"
        self_play = boards.get(env_id.removesuffix(CROSS_PLAY_SUFFIX), [])
        atomic_write_bytes(path, board_markdown(env_id, entries, self_play).encode())
        written.append(path)
    path = root / "BOARDS.md"
    atomic_write_bytes(path, all_boards_markdown(boards).encode())
    written.append(path)
    path = root / "site" / "index.html"
    atomic_write_bytes(path, site_html(boards).encode())
    written.append(path)
    return boards, failures, written
