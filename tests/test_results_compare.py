"""The trained-vs-baseline report (baselines/results/llm/compare.py) on committed entries."""

from __future__ import annotations

import gzip
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOARD = ROOT / "leaderboards" / "CoopCode-v1"
spec = importlib.util.spec_from_file_location(
    "compare", ROOT / "baselines" / "results" / "llm" / "compare.py"
)
compare = importlib.util.module_from_spec(spec)
sys.modules["compare"] = compare  # dataclasses look their module up
spec.loader.exec_module(compare)


def returns_of(path: Path) -> dict[str, float]:
    with gzip.open(path, "rt") as handle:
        data = json.load(handle)
    return {e["options"]["task_id"]: e["team_return"] for e in data["episodes"]}


def test_paired_report_matches_the_submissions(tmp_path: Path) -> None:
    oracle, random = BOARD / "reference-oracle.json.gz", BOARD / "random.json.gz"
    out = tmp_path / "report.md"
    text = compare.main(
        [
            *("--env", "CoopCode-v1", "--baseline", f"random={random}"),
            *("--trained", f"oracle={oracle},{oracle}", "--out", str(out)),
        ]
    )
    assert out.read_text() == text
    a, b = returns_of(oracle), returns_of(random)
    difference = statistics.fmean(a[t] - b[t] for t in a)
    wins = sum(a[t] > b[t] for t in a)
    row = next(line for line in text.splitlines() if line.startswith("| oracle | random |"))
    assert f"{difference:.3f} [" in row
    assert f"| {wins} / " in row
    assert "21 / 21 of 21" in text  # both seed files solve every task


def test_sign_flip_p_values() -> None:
    assert compare.sign_flip_p([1.0] * 5) == pytest.approx(2 / 32)
    assert compare.sign_flip_p([0.0, 0.0]) == 1.0
    assert compare.sign_flip_p([1.0, -1.0, 1.0, -1.0]) == 1.0
    many = compare.sign_flip_p([1.0] * 25, samples=1000)
    assert 0 < many <= 2 / 1001


def test_files_of_other_tasks_or_envs_are_refused() -> None:
    oracle = BOARD / "reference-oracle.json.gz"
    with pytest.raises(SystemExit, match="not CoopCode-v0"):
        compare.main(
            ["--env", "CoopCode-v0", "--baseline", f"a={oracle}", "--trained", f"b={oracle}"]
        )
    with pytest.raises(SystemExit, match="given twice"):
        compare.main(
            [
                "--env",
                "CoopCode-v1",
                "--baseline",
                f"a={oracle}",
                "--trained",
                f"b={oracle}",
                "--trained",
                f"b={oracle}",
            ]
        )


def test_cross_play_games_are_matched_by_partner_seat_and_task() -> None:
    path = BOARD / "cross-play" / "reference-oracle.json.gz"
    run = compare.load(str(path))
    with gzip.open(path, "rt") as handle:
        data = json.load(handle)
    games = data["cross_play"]["games"]
    assert len(run.returns) == len(data["episodes"]) == len(games)  # no task counted twice
    first = data["episodes"][0]
    key = f"{games[0]['partner']}@{games[0]['partner_role']}/{first['options']['task_id']}"
    assert run.returns[key] == first["team_return"]
