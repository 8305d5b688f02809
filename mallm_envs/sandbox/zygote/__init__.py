"""The worker program: one standard-library program in several files, sent to each worker compiled.

Each sandbox worker is a separate interpreter (``python -s -S``, no ``site``) started by the
judge. It does not import this package: :func:`compiled` joins the parts below into one module
and compiles it once per judge process; the judge sends that code object (marshal) on the
worker's stdin to a small ``-c`` stub (``mallm_envs/sandbox/pool.py``), so no file of the
project needs to be visible to the worker and it does not parse its own source (whose garbage
would stay in the heap that every fork copies). An interpreter with another bytecode format gets
the joined source instead and compiles it itself.

The parts, in the order they are joined (each one concern; together they are what
``_zygote.py`` was):

* ``linux.py``: the C library through ctypes, ``fork()`` without Python's at-fork hooks,
  ``prctl``, capabilities;
* ``framing.py``: the frames spoken with the judge, the run's exit codes;
* ``harness.py``: what a forked run executes (load the program, run the tests, send plain
  values), and the snapshot of the modules the tests rely on;
* ``landlock.py`` and ``seccomp.py``: the runs' Landlock ruleset and syscall filter;
* ``namespaces.py``: the worker's namespaces and its read-only minimal root;
* ``server.py``: the loop that forks one run per request, watches, kills and sweeps it;
* ``main.py``: start-up (namespaces, privileges, the filter, then the server).

Rules for the parts, checked when they are joined: standard library only; a part imports
from an earlier part with a top-level ``from mallm_envs.sandbox.zygote.<part> import ...``
(left out of the joined program, where those names are already defined: the parts share one
namespace, so no two parts may define the same top-level name), and nowhere else. In the
joined program every function keeps its own file name and line numbers, so a worker's
traceback points into the right part. The parts are importable as ordinary modules too, which
is how the tests read the syscall filter and the value encoder.

Two roles run this code: the **server** (trusted, never runs candidate code) and each **run**,
a fork of the server that is untrusted from the moment the candidate's program starts.
Everything the run needs was captured in closures *before* that (``harness.py``).

Cost of a run, and what keeps it down: a run is a ``fork`` of the server, so it pays for the
page-table copy, its exit, and a copy of every page it writes (CPython's reference counts
write to every object a run touches). Hence: the server's heap is kept small (no ``site``, its
own code arrives compiled), the harness is warmed up before the first fork (specialised
bytecode is not rewritten in each run), runs are forked without Python's at-fork hooks, the
server writes as little as possible between the fork and its sleep, and it wakes only once
the run has exited, when writing its pages no longer copies them.
"""

from __future__ import annotations

import ast
import functools
import types
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
PACKAGE = __name__
PARTS: tuple[str, ...] = (
    "linux",
    "framing",
    "harness",
    "landlock",
    "seccomp",
    "namespaces",
    "server",
    "main",
)
"""The parts of the worker program, in the order they are joined."""
PROGRAM_NAME = "<mallm sandbox worker>"
"""The file name of the joined program's module-level code (its functions keep their part's)."""


@dataclass(frozen=True)
class Program:
    """The joined worker program: its source, and where each part lies in it."""

    source: str
    parts: tuple[tuple[str, int, int], ...]
    """(file of the part, first line, last line) in ``source``, 1-based, in order."""

    def part_at(self, line: int) -> tuple[str, int]:
        """The file that holds joined line ``line``, and that file's offset in ``source``."""
        for path, first, last in self.parts:
            if first <= line <= last:
                return path, first - 1
        raise ValueError(f"line {line} lies in no part")


class ProgramError(Exception):
    """A part breaks the rules of the worker program (see the module docstring)."""


def _is_part_import(node: ast.AST) -> bool:
    return isinstance(node, ast.ImportFrom) and (
        node.level > 0 or (node.module or "").split(".")[:3] == PACKAGE.split(".")
    )


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
    return names


def _part_source(name: str, first: bool) -> tuple[str, str, set[str]]:
    """A part's source with its imports of other parts (and, after the first, its
    ``from __future__`` line) blanked, line for line; its path; the names it defines."""
    path = FOLDER / f"{name}.py"
    source = path.read_text()
    tree = ast.parse(source, str(path))
    lines = source.splitlines(keepends=True)
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            if any(alias.name.startswith(PACKAGE) for alias in node.names):
                raise ProgramError(f"{path}:{node.lineno}: import parts with `from ... import`")
            continue
        future = node.module == "__future__" and not first
        if not (_is_part_import(node) or future):
            continue
        if id(node) not in top:
            raise ProgramError(f"{path}:{node.lineno}: a part imports other parts at the top only")
        end = node.end_lineno if node.end_lineno is not None else node.lineno
        for i in range(node.lineno - 1, end):
            lines[i] = "\n"
    text = "".join(lines)
    return (text if text.endswith("\n") else text + "\n"), str(path), _defined_names(tree)


@functools.cache
def program() -> Program:
    """The parts joined into one program (read once per process)."""
    chunks: list[str] = []
    spans: list[tuple[str, int, int]] = []
    owner: dict[str, str] = {}
    line = 1
    for i, name in enumerate(PARTS):
        text, path, names = _part_source(name, first=i == 0)
        for defined in sorted(names):
            if defined in owner:
                raise ProgramError(
                    f"{defined!r} is defined by both {owner[defined]}.py and {name}.py; "
                    "the parts share one namespace"
                )
            owner[defined] = name
        count = text.count("\n")
        spans.append((path, line, line + count - 1))
        chunks.append(text)
        line += count
    return Program("".join(chunks), tuple(spans))


def _relocate(code: types.CodeType, path: str, offset: int) -> types.CodeType:
    """``code`` and the code nested in it, named after ``path``, lines moved up by ``offset``."""
    consts = tuple(
        _relocate(c, path, offset) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(
        co_filename=path, co_firstlineno=code.co_firstlineno - offset, co_consts=consts
    )


@functools.cache
def compiled() -> types.CodeType:
    """The joined program compiled for this interpreter (once per process).

    Each function (with the code nested in it) is given its part's file name and line numbers;
    the module-level code keeps :data:`PROGRAM_NAME`.
    """
    joined = program()
    module = compile(joined.source, PROGRAM_NAME, "exec", dont_inherit=True)
    consts = []
    for const in module.co_consts:
        if isinstance(const, types.CodeType):
            path, offset = joined.part_at(const.co_firstlineno)
            const = _relocate(const, path, offset)
        consts.append(const)
    return module.replace(co_consts=tuple(consts))
