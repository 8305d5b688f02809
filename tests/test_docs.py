"""Docs: the site builds strictly with a page per env id; README and docs code blocks run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mallm_envs

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ ]*)```python\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        indent = len(match.group("indent"))
        body = "\n".join(line[indent:] for line in match.group("body").splitlines())
        blocks.append((text[: match.start()].count("\n") + 1, body))
    return blocks


DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(path, line, body) for path in DOC_FILES for line, body in python_blocks(path)]


@pytest.mark.parametrize(
    "path, line, body", BLOCKS, ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, _ in BLOCKS]
)
def test_code_block_runs(tmp_path, path: Path, line: int, body: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", body], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{path.name}:{line} failed:\n{result.stderr[-3000:]}"


def test_site_builds_strictly_with_a_page_per_env(tmp_path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (the [docs] extra)")
    pytest.importorskip("material", reason="mkdocs-material is not installed (the [docs] extra)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for env_id in mallm_envs.registry:
        page = site / "environments" / env_id / "index.html"
        assert page.exists(), f"no docs page for {env_id}"
        assert "Version history" in page.read_text(), f"{env_id}: docstring lacks a Version history"
