"""The layering of ARCHITECTURE.md, checked on the code.

Every module of ``mallm_envs`` is parsed (its ``import`` statements, including those inside
functions, are what it may import) and imported. The rules:

- each part imports only the parts below it (:data:`MAY_IMPORT`): the core knows no family
  and no registry, the sandbox knows no env, the registry knows no family (``make()``
  reaches an env class through its string entry point), a family knows no other family,
  no agent and no leaderboard;
- a family's pure modules (every module but its env adapters and its ``__init__``, which
  registers the ids) import neither pettingzoo nor gymnasium nor torch (:data:`MODEL_LIBS`);
- nothing in the package imports ``baselines`` or ``tests``.

A failure names the module, the import and the rule.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

import pytest

import mallm_envs

PACKAGE = Path(mallm_envs.__file__).resolve().parent

# Which parts of mallm_envs each part may import (besides itself). A module belongs to the
# longest prefix listed; a family (mallm_envs.envs.<family>) may import itself only.
MAY_IMPORT: dict[str, set[str]] = {
    "mallm_envs.core": set(),
    "mallm_envs.sandbox": {"mallm_envs.core.errors"},
    "mallm_envs.data": {"mallm_envs.core.errors"},
    "mallm_envs.registration": {"mallm_envs.core"},
    "mallm_envs.envs": {
        "mallm_envs.registration",
        "mallm_envs.core",
        "mallm_envs.sandbox",
        "mallm_envs.data",
    },
    "mallm_envs.agents": {"mallm_envs.core", "mallm_envs.data"},
    "mallm_envs.testing": {"mallm_envs.core", "mallm_envs.registration"},
    "mallm_envs.leaderboard": {
        "mallm_envs.registration",
        "mallm_envs.core",
        "mallm_envs.agents",
    },
    "mallm_envs.cli": {
        "mallm_envs",
        "mallm_envs.registration",
        "mallm_envs.core",
        "mallm_envs.agents",
        "mallm_envs.leaderboard",
        "mallm_envs.testing",
        "mallm_envs.data",
    },
    # The package's __init__: registers the families, re-exports the registry.
    "mallm_envs.__init__": {"mallm_envs.envs", "mallm_envs.registration", "mallm_envs.core"},
}

# Libraries a family's pure rules never import.
MODEL_LIBS = ("pettingzoo", "gymnasium", "torch", "transformers", "peft")

# Family modules allowed to import MODEL_LIBS besides the env adapters (the modules of the
# registered entry points), with the reason.
NOT_PURE = {
    "mallm_envs.envs.writing.base": "the base class of the writing adapters",
    "mallm_envs.envs.writing.semantic": "the optional MiniLM similarity, loaded only when asked",
}

# Programs the sandbox sends to its worker process, not modules of the library.
NOT_IMPORTED = ("mallm_envs.sandbox._zygote", "mallm_envs.sandbox.zygote")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module ``module`` imports (``from pkg import sub`` counts ``pkg.sub``)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.add(source)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    found.add(f"{source}.{alias.name}")
    return frozenset(found)


def _part(module: str, path: Path) -> str:
    if module == "mallm_envs":
        return "mallm_envs.__init__"
    owners = [p for p in MAY_IMPORT if module == p or module.startswith(p + ".")]
    assert owners, f"{module} belongs to no part of ARCHITECTURE.md; add it to MAY_IMPORT"
    return max(owners, key=len)


def _inside(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or below it (the bare package ``mallm_envs`` is only itself)."""
    return name == prefix or (prefix != "mallm_envs" and name.startswith(prefix + "."))


def _family(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:3]) if len(parts) >= 3 and parts[1] == "envs" else None


def test_the_scan_finds_every_kind_of_import() -> None:
    found = imports_of("mallm_envs.registration")
    assert "mallm_envs.core.errors" in found and "importlib" in found
    assert "mallm_envs.envs.code.rules" in imports_of("mallm_envs.envs.code.scripted")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_part_imports_only_the_parts_below_it(module: str) -> None:
    part = _part(module, MODULES[module])
    allowed = MAY_IMPORT[part]
    own = _family(module) or (part if part != "mallm_envs.__init__" else "mallm_envs")
    for name in sorted(imports_of(module)):
        top = name.partition(".")[0]
        assert top not in ("baselines", "tests"), (
            f"{module} imports {name}: the package never imports {top}/"
        )
        if top != "mallm_envs":
            continue
        if _inside(name, own):
            continue
        if part == "mallm_envs.envs" and _family(name) is not None:
            raise AssertionError(f"{module} imports {name}: a family never imports another family")
        assert any(_inside(name, a) for a in allowed), (
            f"{module} imports {name}: {part} may import only {sorted(allowed) or 'itself'} "
            "(see ARCHITECTURE.md)"
        )


def _adapters() -> set[str]:
    found = set()
    for spec in mallm_envs.registry.values():
        for entry in (spec.entry_point, spec.parallel_entry_point):
            if entry:
                found.add(entry.partition(":")[0])
    return found


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if _family(m) is not None and _family(m) != m)
)
def test_a_familys_pure_modules_import_no_env_api_or_model_library(module: str) -> None:
    if module in _adapters() or module in NOT_PURE:
        return
    for name in sorted(imports_of(module)):
        assert name.partition(".")[0] not in MODEL_LIBS, (
            f"{module} imports {name}: a family's pure rules import neither pettingzoo nor "
            "gymnasium nor torch (only its env adapters do; see ARCHITECTURE.md)"
        )


def test_every_rules_module_is_pure() -> None:
    rules = [m for m in MODULES if m.startswith("mallm_envs.envs.") and m.endswith(".rules")]
    assert len(rules) >= 3, rules
    assert not set(rules) & (_adapters() | set(NOT_PURE))


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if not any(_inside(m, p) for p in NOT_IMPORTED))
)
def test_every_module_imports(module: str) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] == "mallm_envs":
            raise
        pytest.skip(f"{module} needs {err.name}, an optional dependency that is not installed")


@pytest.mark.parametrize(
    "module, source, rule",
    [
        ("mallm_envs.core.episode", "from mallm_envs.registration import make", "may import only"),
        ("mallm_envs.envs.kitchen.rules", "import pettingzoo", "neither pettingzoo"),
        ("mallm_envs.envs.code.rules", "from gymnasium import spaces", "neither pettingzoo"),
        ("mallm_envs.envs.writing.rules", "import torch", "neither pettingzoo"),
        ("mallm_envs.sandbox.judge", "from mallm_envs.envs.code import tasks", "may import only"),
        ("mallm_envs.envs.toy.common_word", "from ..code import rules", "another family"),
        ("mallm_envs.registration", "from mallm_envs.envs import code", "may import only"),
    ],
)
def test_a_broken_rule_fails(monkeypatch, tmp_path, module: str, source: str, rule: str) -> None:
    """The checks above fail when a module breaks a rule (a copy with one import added)."""
    path = tmp_path / MODULES[module].name
    path.write_text(
        MODULES[module].read_text(encoding="utf-8") + f"\n\ndef _probe():\n    {source}\n"
    )
    monkeypatch.setitem(MODULES, module, path)
    imports_of.cache_clear()
    try:
        check = (
            test_a_familys_pure_modules_import_no_env_api_or_model_library
            if rule == "neither pettingzoo"
            else test_each_part_imports_only_the_parts_below_it
        )
        with pytest.raises(AssertionError, match=rule):
            check(module)
    finally:
        imports_of.cache_clear()
