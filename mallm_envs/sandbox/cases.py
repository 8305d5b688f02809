"""Test cases and suites, and how they are compiled for a run.

Two ways to write tests, mixable in one :class:`TestSuite`:

* :class:`TestCase`: an expression whose value is compared by the judge with an expected value
  given as plain data (``expected=``) or as a *reference expression* (``expected_expr=``) that a
  separate run evaluates without the candidate's program;
* assert-style test code, e.g. HumanEval's ``def check(candidate): assert candidate(1) == 2``
  (:meth:`TestSuite.from_check`) or MBPP's list of ``assert`` lines
  (:meth:`TestSuite.from_asserts`).

Assert-style code is rewritten before it runs. Every ``assert`` becomes a call that evaluates
the sides of the assertion in the run and sends their *values* (plain data) to the judge, which
applies the comparison itself. A side that is a literal (``assert f(2) == [1, 2]``) is not
sent to the run at all; a side built only from literals and pure builtins (``tuple([1, 2])``,
``3 * 5``) is evaluated once by a reference run without the candidate; only sides that depend
on the test's local state (``assert f(x) == x + 1`` in a loop) are evaluated next to the
candidate. Each top-level statement of the test code that contains an ``assert`` is one test
(non-assert statements before it are its set-up), so every assert is reported on its own.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mallm_envs.sandbox.errors import TestSuiteError
from mallm_envs.sandbox.values import NotPlainError, plain_copy, short_repr

COMPARISONS = (
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not in",
    "isclose",
    "truthy",
    "falsy",
)
"""How a :class:`TestCase` compares its value (``in``: the value is in the expected one)."""

_AST_OPS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}

# Builtins a reference expression may use: pure, deterministic, no I/O.
_PURE_BUILTINS = frozenset(
    [
        "abs",
        "all",
        "any",
        "ascii",
        "bin",
        "bool",
        "bytearray",
        "bytes",
        "chr",
        "complex",
        "dict",
        "divmod",
        "enumerate",
        "filter",
        "float",
        "format",
        "frozenset",
        "hex",
        "int",
        "isinstance",
        "issubclass",
        "len",
        "list",
        "map",
        "max",
        "min",
        "oct",
        "ord",
        "pow",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "slice",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
        "True",
        "False",
        "None",
    ]
)


class _Missing:
    def __repr__(self) -> str:
        return "NO_EXPECTED"


NO_EXPECTED: Any = _Missing()
"""Default of :attr:`TestCase.expected`: no expected value given."""


@dataclass(frozen=True)
class TestCase:
    """One check: evaluate ``expr`` in the test namespace and compare it with an expectation.

    In ``expr``, ``setup`` and ``expected_expr``, ``candidate`` is the suite's entry point and
    every function the program defines is callable by name; whatever they return reaches the
    test as plain data (see :mod:`mallm_envs.sandbox.values`).

    >>> TestCase("candidate(2, 3)", expected=5).compare
    '=='
    """

    __test__ = False  # not a pytest test class

    expr: str
    """Python expression whose value is checked, e.g. ``"candidate([3, 1, 2])"``."""
    expected: Any = NO_EXPECTED
    """Expected value as plain data; it never enters the candidate's process."""
    expected_expr: str | None = None
    """Reference expression for the expected value, evaluated in a run without the program
    (after the suite's prelude and this case's ``setup``)."""
    compare: str = "=="
    """One of :data:`COMPARISONS`; ``truthy``/``falsy`` take no expected value."""
    setup: str = ""
    """Statements run before ``expr`` (they may use ``candidate``; errors make the test fail)."""
    name: str = ""
    """Name shown in results (default: the comparison's source)."""
    rel_tol: float = 1e-9
    """Relative tolerance for ``compare="isclose"``."""
    abs_tol: float = 0.0
    """Absolute tolerance for ``compare="isclose"``."""

    def __post_init__(self) -> None:
        _parse(self.expr, "eval", "TestCase.expr")
        _parse(self.setup, "exec", "TestCase.setup")
        if self.compare not in COMPARISONS:
            raise TestSuiteError(
                f"TestCase.compare must be one of {', '.join(COMPARISONS)}; got {self.compare!r}"
            )
        given = (self.expected is not NO_EXPECTED) + (self.expected_expr is not None)
        if self.compare in ("truthy", "falsy"):
            if given:
                raise TestSuiteError(f"compare={self.compare!r} takes no expected value")
        elif given != 1:
            raise TestSuiteError(
                "give exactly one of TestCase.expected (plain data) and TestCase.expected_expr"
            )
        if self.expected is not NO_EXPECTED:
            try:
                object.__setattr__(self, "expected", plain_copy(self.expected, "expected"))
            except NotPlainError as e:
                raise TestSuiteError(f"TestCase.expected: {e}") from None
        if self.expected_expr is not None:
            _parse(self.expected_expr, "eval", "TestCase.expected_expr")
        for name in ("rel_tol", "abs_tol"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise TestSuiteError(f"TestCase.{name} must be a finite number >= 0")
        if not isinstance(self.name, str):
            raise TestSuiteError("TestCase.name must be a str")

    @property
    def label(self) -> str:
        """The name results show: ``name``, or the comparison's source (shortened)."""
        if self.name:
            return self.name
        if self.compare in ("truthy", "falsy"):
            text = self.expr if self.compare == "truthy" else f"not {self.expr}"
        else:
            rhs = (
                self.expected_expr if self.expected_expr is not None else short_repr(self.expected)
            )
            text = f"{self.expr} {self.compare} {rhs}"
        text = " ".join(text.split())
        return text if len(text) <= 160 else text[:159] + "…"


@dataclass(frozen=True)
class AssertCode:
    """A block of trusted test statements whose ``assert`` statements are the checks.

    ``param`` names the variable the candidate is bound to (``candidate`` by default, or the
    parameter of a HumanEval-style ``check`` function). Build it through
    :meth:`TestSuite.from_check` or :meth:`TestSuite.from_asserts`.
    """

    source: str
    param: str = "candidate"


@dataclass(frozen=True)
class Side:
    """Where one side of a check comes from: a literal, a run value, or a reference value."""

    kind: str  # "lit" | "run" | "ref"
    value: Any = None  # the literal (kind "lit")
    index: int = 0  # position in the run's report (kind "run") or reference index (kind "ref")


@dataclass(frozen=True)
class Site:
    """One ``assert`` (or one :class:`TestCase`): the comparison the judge applies."""

    unit: int
    op: str  # a COMPARISONS entry, "is"/"is not" (with None/True/False), or "truthy"/"falsy"
    sides: tuple[Side, ...]
    text: str
    rel_tol: float = 1e-9
    abs_tol: float = 0.0

    @property
    def runs_values(self) -> int:
        return sum(s.kind == "run" for s in self.sides)


@dataclass(frozen=True)
class Plan:
    """A suite compiled for the workers (sent) plus what only the judge keeps (sites)."""

    prelude: str
    parts: tuple[dict[str, Any], ...]
    modules: tuple[str, ...]
    unit_names: tuple[str, ...]
    sites: tuple[Site, ...]
    unit_sites: tuple[frozenset[int], ...]
    references: tuple[tuple[str, str], ...]  # (setup, expression), evaluated without a program
    entry_point: str | None

    @cached_property
    def wire(self) -> dict[str, Any]:
        body = {"prelude": self.prelude, "parts": list(self.parts), "modules": list(self.modules)}
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return {**body, "key": key}

    @cached_property
    def reference_plan(self) -> Plan | None:
        if not self.references:
            return None
        builder = _Builder(param="candidate")
        for i, (setup, expr) in enumerate(self.references):
            body = _statements(setup, "reference set-up")
            body.append(builder.check_call([ast.parse(expr, mode="eval").body], i))
            builder.add_unit(body, f"reference {i}", sites=[])
        part = builder.finish("__mallm_ref__")
        return Plan(
            prelude=self.prelude,
            parts=(part,),
            modules=self.modules,
            unit_names=tuple(f"reference {i}" for i in range(len(self.references))),
            sites=(),
            unit_sites=tuple(frozenset() for _ in self.references),
            references=(),
            entry_point=None,
        )


@dataclass(frozen=True)
class TestSuite:
    """Tests for one task: cases and assert code, the entry point, and a trusted prelude.

    ``entry_point`` names the program's function that ``candidate`` stands for. ``prelude`` is
    trusted code (e.g. HumanEval's prompt with its helper functions) run in the test namespace
    before the program: names it defines are the ones the tests see, whatever the program
    redefines, except the entry point. Build a suite once and reuse it: compiling it parses and
    rewrites the test code.
    """

    __test__ = False  # not a pytest test class

    tests: tuple[TestCase | AssertCode, ...]
    entry_point: str | None = None
    prelude: str = ""

    def __post_init__(self) -> None:
        tests = self.tests
        if isinstance(tests, (TestCase, AssertCode, str)):
            raise TestSuiteError("TestSuite.tests must be a sequence of TestCase/AssertCode")
        tests = tuple(tests)
        for t in tests:
            if not isinstance(t, (TestCase, AssertCode)):
                raise TestSuiteError(f"not a TestCase or AssertCode: {type(t).__name__}")
        object.__setattr__(self, "tests", tests)
        if self.entry_point is not None and (
            not isinstance(self.entry_point, str) or not self.entry_point.isidentifier()
        ):
            raise TestSuiteError(f"entry_point must be an identifier, got {self.entry_point!r}")
        if not isinstance(self.prelude, str):
            raise TestSuiteError("prelude must be a str of Python code")
        _ = self.plan  # compile now: malformed tests fail here, with a TestSuiteError

    @cached_property
    def plan(self) -> Plan:
        """The suite compiled for the workers (built once, at construction)."""
        return _SuiteCompiler(self).compile()

    def __len__(self) -> int:
        return len(self.plan.unit_names)

    @property
    def names(self) -> tuple[str, ...]:
        """The tests' names, in the order results are reported."""
        return self.plan.unit_names

    @classmethod
    def from_check(
        cls, test_source: str, entry_point: str, *, prelude: str = "", check_name: str = "check"
    ) -> TestSuite:
        """Suite from a HumanEval-style test module: ``def check(candidate): assert ...``.

        Module-level statements other than the ``check`` function (``METADATA = ...``) join the
        prelude. Each top-level statement of ``check`` that contains an ``assert`` is one test.
        For HumanEval pass ``prelude=problem["prompt"]`` so helpers the tests call (``poly``,
        ``encode_cyclic``) are the trusted ones, not whatever the program redefines.
        """
        tree = _parse(test_source, "exec", "test_source")
        checks = [
            n
            for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == check_name
        ]
        if len(checks) != 1 or not isinstance(checks[0], ast.FunctionDef):
            raise TestSuiteError(f"test_source must define exactly one `def {check_name}(...)`")
        check = checks[0]
        params = check.args
        if (
            len(params.posonlyargs) + len(params.args) != 1
            or params.vararg
            or params.kwarg
            or params.kwonlyargs
        ):
            raise TestSuiteError(f"`{check_name}` must take exactly one parameter (the candidate)")
        param = (params.posonlyargs + params.args)[0].arg
        rest = [
            n
            for n in tree.body
            if n is not check
            and not (
                isinstance(n, ast.Expr)
                and isinstance(n.value, ast.Call)
                and isinstance(n.value.func, ast.Name)
                and n.value.func.id == check_name
            )
        ]
        module_code = ast.unparse(ast.Module(body=rest, type_ignores=[])) if rest else ""
        full_prelude = "\n\n".join(p for p in (prelude, module_code) if p.strip())
        body = check.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # docstring
        code = ast.unparse(ast.Module(body=body, type_ignores=[])) if body else ""
        return cls((AssertCode(code, param=param),), entry_point=entry_point, prelude=full_prelude)

    @classmethod
    def from_asserts(
        cls, source: str, *, entry_point: str | None = None, prelude: str = ""
    ) -> TestSuite:
        """Suite from top-level ``assert`` statements (MBPP style); each one is a test.

        The asserts may call the program's functions by name, or ``candidate`` when
        ``entry_point`` is given.
        """
        return cls((AssertCode(source),), entry_point=entry_point, prelude=prelude)


# --- compilation ------------------------------------------------------------------------------


def _parse(source: Any, mode: str, what: str) -> Any:
    if not isinstance(source, str):
        raise TestSuiteError(f"{what} must be a str of Python code, got {type(source).__name__}")
    try:
        return ast.parse(source, mode=mode)
    except (SyntaxError, ValueError) as e:
        raise TestSuiteError(f"{what} is not valid Python: {e}") from None


def _statements(source: str, what: str) -> list[ast.stmt]:
    return list(_parse(source, "exec", what).body)


def _contains_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


def _is_truthy_constant_assert(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Assert)
        and isinstance(node.test, ast.Constant)
        and bool(node.test.value)
    )


def _one_line(node: ast.AST, limit: int = 160) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bound_names(nodes: list[ast.stmt], param: str) -> set[str]:
    names = {param}
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
                names.add(n.id)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
            elif isinstance(n, ast.alias):
                names.add((n.asname or n.name).split(".")[0])
            elif isinstance(n, ast.arg):
                names.add(n.arg)
            elif isinstance(n, ast.ExceptHandler) and n.name:
                names.add(n.name)
    return names


def _module_names(nodes: list[ast.stmt]) -> list[str]:
    found: list[str] = []
    for node in nodes:
        for n in ast.walk(node):
            names: list[str] = []
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                names = [n.module]
            for name in names:
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    dotted = ".".join(parts[:i])
                    if dotted not in found:
                        found.append(dotted)
    return found


class _Builder:
    """Assemble one part: a generator function whose every `yield` ends one test unit."""

    def __init__(self, param: str) -> None:
        self.param = param
        self.body: list[ast.stmt] = []
        self.units: list[tuple[str, list[int]]] = []

    @staticmethod
    def check_call(thunks: list[ast.expr], site: int) -> ast.stmt:
        lambdas = [
            ast.Lambda(
                args=ast.arguments(
                    posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]
                ),
                body=t,
            )
            for t in thunks
        ]
        call = ast.Call(
            func=ast.Name("__mallm_check__", ast.Load()),
            args=[ast.Constant(site), *lambdas],
            keywords=[],
        )
        return ast.Expr(call)

    def add_unit(self, statements: list[ast.stmt], name: str, sites: list[int]) -> None:
        handler = ast.ExceptHandler(
            type=ast.Name("BaseException", ast.Load()),
            name="__mallm_e",
            body=[
                ast.Expr(
                    ast.Call(
                        func=ast.Name("__mallm_raised__", ast.Load()),
                        args=[ast.Name("__mallm_e", ast.Load())],
                        keywords=[],
                    )
                )
            ],
        )
        block = statements or [ast.Pass()]
        self.body.append(ast.Try(body=block, handlers=[handler], orelse=[], finalbody=[]))
        self.body.append(ast.Expr(ast.Yield(None)))
        self.units.append((name, sites))

    def finish(self, fn_name: str) -> dict[str, Any]:
        fn = ast.FunctionDef(
            name=fn_name,
            args=ast.arguments(
                posonlyargs=[],
                args=[ast.arg(self.param)],
                kwonlyargs=[],
                kw_defaults=[],
                defaults=[],
            ),
            body=self.body or [ast.Return(None), ast.Expr(ast.Yield(None))],
            decorator_list=[],
            returns=None,
        )
        module = ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[]))
        return {"name": fn_name, "units": len(self.units), "source": ast.unparse(module)}


class _SuiteCompiler:
    def __init__(self, suite: TestSuite) -> None:
        self.suite = suite
        self.sites: list[Site] = []
        self.unit_names: list[str] = []
        self.unit_sites: list[frozenset[int]] = []
        self.references: list[tuple[str, str]] = []
        self.parts: list[dict[str, Any]] = []
        prelude_nodes = _statements(suite.prelude, "prelude")
        self.prelude_names = _bound_names(prelude_nodes, "candidate")
        self.module_nodes: list[ast.stmt] = list(prelude_nodes)

    def reference(self, setup: str, expr: str) -> int:
        key = (setup, expr)
        if key not in self.references:
            self.references.append(key)
        return self.references.index(key)

    def literal(self, node: ast.expr) -> tuple[bool, Any]:
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False, None
        try:
            return True, plain_copy(value)
        except NotPlainError:  # pragma: no cover - literal_eval returns plain data
            return False, None

    def pure(self, node: ast.expr, local_names: set[str]) -> bool:
        """A side that a reference run can evaluate: literals and pure builtins only."""
        stored = {
            n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        for n in ast.walk(node):
            if isinstance(n, (ast.Lambda, ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await)):
                return False
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                if n.id in stored:
                    continue
                if (
                    n.id not in _PURE_BUILTINS
                    or n.id in local_names
                    or n.id in self.prelude_names
                    or n.id == self.suite.entry_point
                ):
                    return False
        return True

    def side(self, node: ast.expr, thunks: list[ast.expr], local_names: set[str]) -> Side:
        ok, value = self.literal(node)
        if ok:
            return Side("lit", value)
        if self.pure(node, local_names):
            return Side("ref", index=self.reference("", ast.unparse(node)))
        thunks.append(node)
        return Side("run", index=len(thunks) - 1)

    def rewrite_assert(self, node: ast.Assert, unit: int, local_names: set[str]) -> ast.stmt:
        test = node.test
        text = _one_line(ast.Assert(test=test, msg=None))
        thunks: list[ast.expr] = []
        sides: tuple[Side, ...]
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            op, sides = "falsy", (self.side(test.operand, thunks, local_names),)
        elif (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and type(test.ops[0]) in _AST_OPS
            and (
                type(test.ops[0]) not in (ast.Is, ast.IsNot)
                or any(
                    isinstance(x, ast.Constant) and x.value in (None, True, False)
                    for x in (test.left, test.comparators[0])
                )
            )
        ):
            op = _AST_OPS[type(test.ops[0])]
            sides = (
                self.side(test.left, thunks, local_names),
                self.side(test.comparators[0], thunks, local_names),
            )
        else:
            op, sides = "truthy", (self.side(test, thunks, local_names),)
        site = len(self.sites)
        self.sites.append(Site(unit=unit, op=op, sides=sides, text=text))
        return ast.copy_location(_Builder.check_call(thunks, site), node)

    def add_assert_code(self, code: AssertCode, part_index: int) -> None:
        nodes = _statements(code.source, "assert code")
        self.module_nodes.extend(nodes)
        if not code.param.isidentifier():
            raise TestSuiteError(f"AssertCode.param must be an identifier, got {code.param!r}")
        local_names = _bound_names(nodes, code.param)
        builder = _Builder(param=code.param)

        class Rewriter(ast.NodeTransformer):
            def __init__(self, outer: _SuiteCompiler, unit: int) -> None:
                self.outer = outer
                self.unit = unit
                self.sites: list[int] = []

            def visit_Assert(self, node: ast.Assert) -> ast.AST:
                if _is_truthy_constant_assert(node):
                    return ast.copy_location(ast.Pass(), node)
                self.sites.append(len(self.outer.sites))
                return self.outer.rewrite_assert(node, self.unit, local_names)

        pending: list[ast.stmt] = []
        units: list[tuple[list[ast.stmt], ast.stmt]] = []
        for st in nodes:
            if _is_truthy_constant_assert(st):
                continue  # HumanEval's `assert True, "..."` markers check nothing
            if _contains_assert(st):
                units.append(([*pending, st], st))
                pending = []
            else:
                pending.append(st)
        if not units:
            raise TestSuiteError("the assert code contains no assert statement")
        if pending:  # trailing set-up statements run with the last unit
            last_block, last_st = units[-1]
            units[-1] = (last_block + pending, last_st)
        for block, main in units:
            unit = len(self.unit_names)
            name = _one_line(main)  # before the rewriter changes the statement in place
            rewriter = Rewriter(self, unit)
            new_block = [rewriter.visit(st) for st in block]
            self.unit_names.append(name)
            self.unit_sites.append(frozenset(rewriter.sites))
            builder.add_unit(new_block, self.unit_names[-1], rewriter.sites)
        self.parts.append(builder.finish(f"__mallm_part_{part_index}__"))

    def add_cases(self, cases: list[TestCase], part_index: int) -> None:
        builder = _Builder(param="candidate")
        for case in cases:
            unit = len(self.unit_names)
            statements = _statements(case.setup, "TestCase.setup")
            self.module_nodes.extend(statements)
            expr = ast.parse(case.expr, mode="eval").body
            sides: list[Side] = [Side("run", index=0)]
            if case.expected_expr is not None:
                sides.append(Side("ref", index=self.reference(case.setup, case.expected_expr)))
            elif case.expected is not NO_EXPECTED:
                sides.append(Side("lit", value=case.expected))
            site = len(self.sites)
            self.sites.append(
                Site(
                    unit=unit,
                    op=case.compare,
                    sides=tuple(sides),
                    text=case.label,
                    rel_tol=case.rel_tol,
                    abs_tol=case.abs_tol,
                )
            )
            statements.append(_Builder.check_call([expr], site))
            self.unit_names.append(case.label)
            self.unit_sites.append(frozenset([site]))
            builder.add_unit(statements, case.label, [site])
        self.parts.append(builder.finish(f"__mallm_part_{part_index}__"))

    def compile(self) -> Plan:
        group: list[TestCase] = []
        for test in self.suite.tests:
            if isinstance(test, TestCase):
                group.append(test)
                continue
            if group:
                self.add_cases(group, len(self.parts))
                group = []
            self.add_assert_code(test, len(self.parts))
        if group:
            self.add_cases(group, len(self.parts))
        if not self.unit_names:
            raise TestSuiteError("a TestSuite needs at least one test")
        modules = _module_names(self.module_nodes)
        return Plan(
            prelude=self.suite.prelude,
            parts=tuple(self.parts),
            modules=tuple(modules),
            unit_names=tuple(self.unit_names),
            sites=tuple(self.sites),
            unit_sites=tuple(self.unit_sites),
            references=tuple(self.references),
            entry_point=self.suite.entry_point,
        )
