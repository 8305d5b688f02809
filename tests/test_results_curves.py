"""The held-out curves of the SmolLM2 runs (baselines/results/llm/curves.py)."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location(
    "curves", ROOT / "baselines" / "results" / "llm" / "curves.py"
)
curves = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curves)


def write_run(folder: Path, lr: float, evals: dict[int, float]) -> None:
    folder.mkdir(parents=True)
    (folder / "args.json").write_text(json.dumps({"learning_rate": lr, "num_updates": 40}))
    lines = ["step,team_return,eval/team_return,eval/success"]
    for step in range(1, max(evals) + 1):
        held_out = evals.get(step)
        lines.append(
            f"{step},0.5,{'' if held_out is None else held_out},{'' if held_out is None else 0.0}"
        )
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_seeds_of_a_setting_are_averaged_only_where_all_reached(tmp_path: Path) -> None:
    write_run(tmp_path / "magrpo-s0-lr5e-4", 5e-4, {10: 0.2, 20: 0.8})
    write_run(tmp_path / "magrpo-s1-lr5e-4", 5e-4, {10: 0.4})  # still running
    write_run(tmp_path / "magrpo-s0", 1e-4, {10: 0.3})
    write_run(tmp_path / "maac-s0-lr5e-4", 5e-4, {10: 0.1})
    runs = [curves.read_run(f) for f in sorted(tmp_path.iterdir())]
    groups = curves.group_runs(runs)
    assert set(groups) == {"MAGRPO, lr 0.0005", "MAGRPO, lr 0.0001", "MAAC, lr 0.0005"}
    lr5 = groups["MAGRPO, lr 0.0005"]
    assert sorted(lr5["runs"]) == ["magrpo-s0-lr5e-4", "magrpo-s1-lr5e-4"]
    assert lr5["mean"] == [{"update": 10, "team_return": 0.30000000000000004}]
    assert [p["update"] for p in runs[2]["eval"]] == [10, 20]  # magrpo-s0-lr5e-4
    assert len(runs[2]["train_team_return"]) == 20


def test_baseline_labels_never_overlap() -> None:
    heights = curves.spread_labels([0.0, 0.159, 0.181, 0.359], 0.05)
    assert all(b - a >= 0.05 - 1e-12 for a, b in itertools.pairwise(heights))
    assert heights[0] == 0.0 and heights[-1] == 0.359


def test_the_committed_coopcode_curves_read(tmp_path: Path) -> None:
    folder = ROOT / "baselines" / "results" / "llm" / "coopcode-v1"
    runs = [curves.read_run(f) for f in sorted(folder.iterdir()) if (f / "metrics.csv").exists()]
    assert any(r["run"] == "magrpo-s0-lr5e-4" and len(r["eval"]) == 4 for r in runs)
    levels = curves.baseline_levels(ROOT / "leaderboards" / "CoopCode-v1")
    assert set(levels) == set(curves.STRATEGIES)


def test_a_setting_keeps_its_colour_when_another_is_added() -> None:
    before = curves.setting_colours({"MAGRPO, lr 0.0005": {}, "MAGRPO, lr 0.0001": {}})
    after = curves.setting_colours(
        {"MAAC, lr 0.0005": {}, "MAGRPO, lr 0.0001": {}, "MAGRPO, lr 0.0005": {}, "X, lr 1": {}}
    )
    assert all(after[name] == index for name, index in before.items())
    assert len(set(after.values())) == len(after)  # no two settings share a colour
