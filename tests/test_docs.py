"""Docs: the site builds strictly with a page per env id; README and docs code blocks run."""

from __future__ import annotations

import importlib.util
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
# A Sphinx role as docstring text (:class:`X`) or once Markdown made HTML of it.
SPHINX_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|exc|data|obj):(?:`|<code>)")
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
    pytest.importorskip(
        "mkdocstrings_handlers.python",
        reason="mkdocstrings[python] is not installed (the [docs] extra)",
    )
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
        html = page.read_text()
        assert "Version history" in html, f"{env_id}: docstring lacks a Version history"
        assert not SPHINX_ROLE.search(html), f"{env_id}: a raw Sphinx role shows on the page"
        assert "<th></th>" not in html, f"{env_id}: a table with an empty header row"
    # The hook is build machinery, not a page: it must not be published with the site.
    assert not list(site.rglob("hooks.py")), "docs/hooks.py was copied into the site"
    # The API reference is generated from the docstrings of the public modules.
    reference = (site / "reference" / "index.html").read_text()
    for name in ("mallm_envs.registration.make", "mallm_envs.core", "build_agent", "LLMSettings"):
        assert name in reference, f"the API reference lacks {name}"
    assert not SPHINX_ROLE.search(reference), "a raw Sphinx role shows in the API reference"


# --- issue 16, items 9 and 10 -------------------------------------------------------------


def _load_hooks():
    spec = importlib.util.spec_from_file_location("mallm_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("env_id", sorted(mallm_envs.registry))
def test_env_page_has_no_sphinx_roles_and_no_empty_table_header(env_id: str) -> None:
    page = _load_hooks()._env_page(env_id, mallm_envs.registry[env_id])
    assert not SPHINX_ROLE.search(page), SPHINX_ROLE.search(page).group(0)
    for number, line in enumerate(page.splitlines()):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and not any(cells):
            raise AssertionError(f"{env_id}: empty table header at line {number}: {line!r}")


def test_sphinx_roles_become_code_spans() -> None:
    hooks = _load_hooks()
    text = (
        "see :mod:`mallm_envs.sandbox`, :class:`~mallm_envs.core.errors.ActionTypeError`, "
        ":meth:`Kitchen.transition <mallm_envs.envs.kitchen.rules.Kitchen.transition>`."
    )
    assert hooks.plain_markdown(text) == (
        "see `mallm_envs.sandbox`, `ActionTypeError`, `Kitchen.transition`."
    )


def test_readme_and_quickstart_link_the_gpu_install() -> None:
    heading = "### Installing torch for GPUs"
    assert heading in (ROOT / "docs" / "scaling.md").read_text()
    assert "docs/scaling.md#installing-torch-for-gpus" in (ROOT / "README.md").read_text()
    assert "scaling.md#installing-torch-for-gpus" in (ROOT / "docs" / "quickstart.md").read_text()


def test_no_install_from_the_unpublished_package_name() -> None:
    # mallm-envs is not on any package index: installs go through a checkout or a built wheel.
    unpublished = re.compile(r"pip install ['\"]?mallm-envs")
    for path in DOC_FILES:
        match = unpublished.search(path.read_text())
        assert match is None, f"{path.name}: {match.group(0)!r}"


def test_readme_first_example_ends_in_a_valid_action(tmp_path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text.index("## Ten lines")
    line, body = next(
        (ln, b) for ln, b in python_blocks(ROOT / "README.md") if ln > text[:section].count("\n")
    )
    check = (
        "\nassert info['invalid_reason'] is None, info['invalid_reason']"
        "\nassert info['reward_components']['agreement'] == 1.0, info['reward_components']\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", body + check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"README.md:{line}:\n{result.stderr[-2000:]}"
