"""Build the boards: verify every submission, then write markdown tables and a static site.

Layout of a boards folder (``leaderboards/`` in the repository)::

    leaderboards/
      <EnvId-vN>/<agent-name>.json.gz     accepted submissions (one file each)
      <EnvId-vN>/README.md                generated table for that board
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
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
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


@dataclass
class Entry:
    env_id: str
    file: str
    report: VerifyReport

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
    root: Path, *, reproduce: bool = True, reproduce_models: bool = False
) -> tuple[dict[str, list[Entry]], list[str]]:
    """Verify every submission under ``root``; return the boards and the failures.

    With ``reproduce`` (the default), each submission's declared agent is also rebuilt
    where that is possible (see :func:`~mallm_envs.leaderboard.verify.reproduce`); its row
    then says "reproduced", else "replayed". Agents that run a language model are rebuilt
    only with ``reproduce_models`` (an SmolLM2 suite takes about an hour on two CPU cores);
    ``mallm verify --reproduce FILE`` checks one such entry. A board keeps one row per agent name and one
    per set of actions: a later file (reproduced rows first, then by file name) with the
    name or the very actions of a kept row is rejected.
    """
    boards: dict[str, list[Entry]] = {}
    failures: list[str] = []
    for board_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "site"):
        candidates: list[Entry] = []
        for path in sorted(board_dir.glob(SUBMISSION_GLOB)):
            if path.is_symlink():
                failures.append(f"{path}: symbolic links are not accepted")
                continue
            try:
                report = verify_file(path)
            except VerificationError as err:
                failures.append(f"{path}: {err}")
                continue
            if (
                reproduce
                and not reproduce_models
                and runs_a_model(report.submission.agent.get("spec"))
            ):
                report.reproduce_note = (
                    "a language-model agent: reproduced only on request "
                    "(mallm board --reproduce-models, or mallm verify --reproduce FILE)"
                )
            elif reproduce:
                try:
                    reproduce_agent(report)
                except VerificationError as err:  # the row stays "replayed"; the build says why
                    report.reproduce_note = f"reproduction failed: {err}"
            if report.submission.env_id != board_dir.name:
                failures.append(
                    f"{path}: a {report.submission.env_id} submission in the {board_dir.name} board"
                )
                continue
            candidates.append(Entry(board_dir.name, path.name, report))
        candidates.sort(key=lambda e: (e.report.check != "reproduced", e.file))
        names: dict[str, Entry] = {}
        actions: dict[str, Entry] = {}
        for entry in candidates:
            path = board_dir / entry.file
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
            boards.setdefault(board_dir.name, []).append(entry)
    for entries in boards.values():
        entries.sort(key=Entry.sort_key)
    return boards, failures


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


def _row(rank: int, entry: Entry) -> list[str]:
    s = entry.summary
    agent = entry.report.submission.agent
    model = str(agent.get("model") or "-")
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


def board_markdown(env_id: str, entries: list[Entry]) -> str:
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
        parts.append(f"\n## {env_id}\n\n")
        parts.append(_ranking_note(_board_measure(entries)))
        parts.append(markdown_table(entries))
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
        return label_w + (value - low) / span * bar_w

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
    nav = " · ".join(f'<a href="#{html.escape(k)}">{html.escape(k)}</a>' for k in sorted(boards))
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


def build(
    root: str | Path, *, reproduce: bool = True, reproduce_models: bool = False
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
    boards, failures = collect(root, reproduce=reproduce, reproduce_models=reproduce_models)
    written = []
    for env_id, entries in boards.items():
        path = root / env_id / "README.md"
        atomic_write_bytes(path, board_markdown(env_id, entries).encode())
        written.append(path)
    path = root / "BOARDS.md"
    atomic_write_bytes(path, all_boards_markdown(boards).encode())
    written.append(path)
    path = root / "site" / "index.html"
    atomic_write_bytes(path, site_html(boards).encode())
    written.append(path)
    return boards, failures, written
