"""The main job (`make demo` = baselines/demo.py), shrunk to a smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "baselines" / "demo.py"),
            "--output-dir",
            str(out),
            "--updates",
            "3",
            "--prompting-tasks",
            "1",
            "--threads",
            "1",
            "--prompting-model",
            "tiny",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "verified: 50 episodes replayed exactly" in result.stdout
    assert (out / "reward_curve.png").stat().st_size > 10_000
    page = (out / "leaderboards" / "site" / "index.html").read_text()
    assert "MAGRPO tiny pair (this run)" in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["training"]["updates"] == 3
    assert len(summary["prompting"]) == 8
