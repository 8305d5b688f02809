"""The verdicts: the judge's decision on each test, from the plain values a run reported.

This is the security core of the sandbox, small and alone: a run never says "passed". The
worker sends, for each check of each test, the plain values of its sides (or why it has none);
this module rebuilds each comparison from the test plan (:class:`~mallm_envs.sandbox.cases.Plan`),
takes literal and reference sides from the judge's own side, decides it, and turns anything that
does not fit the plan (a record for another test, an undecodable value, a missing check) into a
failure with a ``tamper`` or ``infra`` cause. Nothing here starts a process or reads a file.
See ``docs/sandbox.md`` ("The judge owns the verdict").
"""

from __future__ import annotations

import builtins
import cmath
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mallm_envs.sandbox.cases import Plan, Site
from mallm_envs.sandbox.limits import Limits
from mallm_envs.sandbox.results import Cause, Grade, Status, TestResult
from mallm_envs.sandbox.values import decode, short_repr


@dataclass(frozen=True)
class Reference:
    """A reference value: a test's side computed by a run without the program (cached)."""

    ok: bool
    value: Any = None
    error: str = ""


def reject_program(program: Any, plan: Plan, limits: Limits) -> Grade | None:
    """A grade for input that is not run at all (not a str, too long), else None."""
    if not isinstance(program, str):
        why = f"the program must be a str, got {type(program).__name__}"
    else:
        try:
            size = len(program.encode("utf-8", "surrogatepass"))
        except UnicodeError:  # pragma: no cover - surrogatepass encodes any str
            size = len(program) * 4
        if size <= limits.max_program_bytes:
            return None
        why = f"the program is {size} bytes long; the limit is {limits.max_program_bytes}"
    outcome = _Outcome(Status.ERROR, why, Cause.REJECTED)
    return Grade(results=outcome.results(plan.unit_names), parsed=False, load_error=why)


def reference_values(plan: Plan, resp: dict[str, Any]) -> list[Reference]:
    """The values of a reference run (the suite's reference plan run without a program)."""
    n = len(plan.unit_names)
    if resp.get("infra"):
        return [Reference(False, error=resp["infra"])] * n
    load = resp.get("load") or {}
    if not load.get("ok"):
        return [Reference(False, error=_load_outcome(load, 0.0).reason)] * n
    out = []
    for payload in resp.get("units") or [None] * n:
        if not isinstance(payload, dict) or "z" in payload:
            kind = payload.get("z") if isinstance(payload, dict) else None
            out.append(Reference(False, error=f"reference run ended: {kind}"))
            continue
        reports = payload.get("r") or []
        if len(reports) == 1 and isinstance(reports[0], list) and len(reports[0]) == 2:
            try:
                (value_json,) = reports[0][1]
                out.append(Reference(True, decode(value_json)))
                continue
            except (ValueError, TypeError, RecursionError):
                pass
        if payload.get("x"):
            out.append(Reference(False, error=_Exception.of(payload["x"]).text))
        elif reports and len(reports[0]) >= 3 and reports[0][2]:
            out.append(Reference(False, error=_Exception.of(reports[0][2]).text))
        else:
            out.append(Reference(False, error="the reference value is not plain data"))
    return out


@dataclass(frozen=True)
class _Outcome:
    """A test's status with its reason (prose) and cause (code), before it gets its name."""

    status: Status
    reason: str = ""
    cause: Cause | None = None
    exception: _Exception | None = None

    def result(self, name: str, checks: int = 0, duration_s: float = 0.0) -> TestResult:
        exc = self.exception
        return TestResult(
            name,
            self.status,
            self.reason,
            checks=checks,
            duration_s=duration_s,
            cause=self.cause,
            exception_type=exc.name if exc is not None else None,
            builtin_exception=exc.builtin if exc is not None else False,
            exception_message=exc.message if exc is not None else None,
        )

    def results(self, names: Sequence[str]) -> tuple[TestResult, ...]:
        return tuple(self.result(name) for name in names)


_PASS = _Outcome(Status.PASSED)

BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
"""Names of Python's built-in exception classes."""


@dataclass(frozen=True)
class _Exception:
    """An exception the run reported: class name, message, whether the class is a builtin."""

    name: str | None  # None: the record named no class
    message: str | None
    builtin: bool
    memory: bool

    @classmethod
    def of(cls, exc: Any) -> _Exception:
        if not isinstance(exc, dict):
            return cls(None, None, False, False)
        name = exc.get("t") if isinstance(exc.get("t"), str) else "Exception"
        args = exc.get("a")
        try:
            args = decode(args) if args is not None else None
        except (ValueError, TypeError, RecursionError):
            args = None
        if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], str):
            message = args[0] if len(args[0]) <= 200 else args[0][:199] + "…"
        elif isinstance(args, tuple) and args:
            message = short_repr(args)
        else:
            message = None
        # The run checks the class's identity against the builtins it captured before the
        # program ran; the judge also wants the name to be a builtin's (a class the program
        # defines can be named anything, "ValueError" included).
        builtin = exc.get("b") is True and name in BUILTIN_EXCEPTIONS
        return cls(name, message or None, builtin, exc.get("m") is True)

    @property
    def text(self) -> str:
        if self.name is None:
            return "an exception"
        return f"{self.name}: {self.message}" if self.message else self.name

    def outcome(self, reason: str) -> _Outcome:
        if self.memory:
            return _Outcome(Status.MEMORY_LIMIT, reason, Cause.MEMORY, self)
        return _Outcome(Status.ERROR, reason, Cause.EXCEPTION, self)


_KIND_TEXT: dict[Any, tuple[Status, str, Cause]] = {
    "timeout": (Status.TIMEOUT, "exceeded the time limit", Cause.TIMEOUT),
    "cpu": (Status.TIMEOUT, "exceeded the CPU-time limit", Cause.TIMEOUT),
    "budget": (Status.TIMEOUT, "not run: the grade's total time budget ran out", Cause.BUDGET),
    "signal": (Status.ERROR, "the process was killed by a signal", Cause.SIGNAL),
    "exit": (Status.ERROR, "the process exited during the test", Cause.EXIT),
    "channel": (Status.ERROR, "the program closed or broke the result channel", Cause.TAMPER),
    "output": (Status.ERROR, "the program printed more than 64 MiB", Cause.OUTPUT),
    "disk": (Status.ERROR, "the program wrote more than its scratch folder holds", Cause.LIMIT),
    "setup": (Status.INFRA_ERROR, "the sandbox could not apply its limits", Cause.INFRA),
    "crash": (Status.ERROR, "the process crashed", Cause.SIGNAL),
}


def _kind_outcome(payload: dict[str, Any], limits: Limits) -> _Outcome:
    kind = payload.get("z")
    status, text, cause = _KIND_TEXT.get(
        kind, (Status.INFRA_ERROR, f"unknown run end {kind!r}", Cause.INFRA)
    )
    info = payload.get("info")
    if kind == "timeout":
        text = f"exceeded the {limits.timeout_s:g} s time limit"
    elif kind == "signal" and info is not None:
        text = f"the process was killed by {info}"
    elif kind == "exit" and info is not None:
        text = f"the process exited with code {info} during the test"
    if payload.get("replay"):
        text += " (while replaying the set-up of earlier tests)"
    return _Outcome(status, text, cause)


def _load_outcome(load: dict[str, Any], timeout_s: float) -> _Outcome:
    """Why the program could not be loaded (every test gets this outcome)."""
    if "z" in load:
        kind = load.get("z")
        status, text, cause = _KIND_TEXT.get(kind, (Status.INFRA_ERROR, str(kind), Cause.INFRA))
        if kind == "timeout":
            return _Outcome(
                status, f"loading the program exceeded the {timeout_s:g} s time limit", cause
            )
        return _Outcome(status, "loading the program: " + text, cause)
    exc = _Exception.of(load.get("exc"))
    if load.get("stage") == "prelude":
        return _Outcome(Status.INFRA_ERROR, "the test prelude raised " + exc.text, Cause.INFRA, exc)
    if load.get("parsed") is False:
        line = load.get("line")
        where = f" (line {line})" if isinstance(line, int) else ""
        reason = f"the program does not compile{where}: " + exc.text
        return _Outcome(Status.ERROR, reason, Cause.SYNTAX, exc)
    if "missing" in load:
        reason = f"the program defines no function named {load['missing']!r}"
        return _Outcome(Status.ERROR, reason, Cause.MISSING)
    if "tampered" in load:
        reason = f"the program modified {load['tampered']}, which the tests rely on"
        return _Outcome(Status.ERROR, reason, Cause.TAMPER)
    if "exc" not in load:
        return _Outcome(
            Status.ERROR, "the program raised an exception while loading", Cause.EXCEPTION
        )
    return exc.outcome("the program raised " + exc.text + " while loading")


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
    "is": lambda a, b: a is b,
    "is not": lambda a, b: a is not b,
}


def _isclose(a: Any, b: Any, rel_tol: float, abs_tol: float) -> bool:
    numbers = (int, float, complex)
    if not (isinstance(a, numbers) and isinstance(b, numbers)) or isinstance(a, bool):
        return False
    if isinstance(a, complex) or isinstance(b, complex):
        return cmath.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def _apply(site: Site, values: list[Any]) -> _Outcome:
    """Decide one check from plain values (a pass, a wrong value, or values not comparable)."""
    if site.op in ("truthy", "falsy"):
        (value,) = values
        ok = bool(value) == (site.op == "truthy")
        return (
            _PASS if ok else _Outcome(Status.FAILED, f"got {short_repr(value)}", Cause.WRONG_VALUE)
        )
    left, right = values
    try:
        if site.op == "isclose":
            ok = _isclose(left, right, site.rel_tol, site.abs_tol)
        else:
            ok = bool(_OPS[site.op](left, right))
    except Exception as e:  # comparing plain values of unorderable types, e.g. str < int
        return _Outcome(Status.ERROR, f"{type(e).__name__}: {e}", Cause.UNCOMPARABLE)
    if ok:
        return _PASS
    lit = [s.kind != "run" for s in site.sides]
    if site.op == "==" and lit == [False, True]:
        reason = f"expected {short_repr(right)}, got {short_repr(left)}"
    elif site.op == "==" and lit == [True, False]:
        reason = f"expected {short_repr(left)}, got {short_repr(right)}"
    else:
        reason = f"{short_repr(left)} {site.op} {short_repr(right)} is false"
    return _Outcome(Status.FAILED, reason, Cause.WRONG_VALUE)


def _unit_result(
    plan: Plan, unit: int, payload: Any, refs: list[Reference], limits: Limits
) -> TestResult:
    name = plan.unit_names[unit]
    if not isinstance(payload, dict):
        return _Outcome(Status.INFRA_ERROR, "no result for this test", Cause.INFRA).result(name)
    d = payload.get("d")
    duration = d if isinstance(d, float) else 0.0
    if "z" in payload:
        return _kind_outcome(payload, limits).result(name, duration_s=duration)
    reports = payload.get("r")
    if not isinstance(reports, list):
        malformed = _Outcome(Status.INFRA_ERROR, "malformed result", Cause.INFRA)
        return malformed.result(name, duration_s=duration)
    allowed = plan.unit_sites[unit]
    outcome: _Outcome | None = None
    for report in reports:
        checked = _report_outcome(plan, allowed, report, refs)
        if checked.status is not Status.PASSED:
            outcome = checked
            break
    if outcome is None and payload.get("x") is not None:
        exc = _Exception.of(payload["x"])
        outcome = exc.outcome("raised " + exc.text)
    if outcome is None and not reports:  # a test passes only if a check really ran
        outcome = _Outcome(Status.ERROR, "the test executed no check", Cause.NO_CHECK)
    return (outcome or _PASS).result(name, checks=len(reports), duration_s=duration)


def _report_outcome(
    plan: Plan, allowed: frozenset[int], report: Any, refs: list[Reference]
) -> _Outcome:
    # Records that do not fit the plan can only come from a program that reached the harness.
    forged = _Outcome(Status.ERROR, "malformed check record", Cause.TAMPER)
    if not isinstance(report, list) or not report or not isinstance(report[0], int):
        return forged
    site_id = report[0]
    if site_id not in allowed:
        return _Outcome(Status.ERROR, "a check record for another test", Cause.TAMPER)
    site = plan.sites[site_id]
    if len(report) == 2:
        raw = report[1]
        if not isinstance(raw, list) or len(raw) != site.runs_values:
            return forged
        try:
            run_values = [decode(v) for v in raw]
        except (ValueError, TypeError, RecursionError, OverflowError):
            return _Outcome(Status.ERROR, "undecodable value", Cause.TAMPER)
        values = []
        for side in site.sides:
            if side.kind == "lit":
                values.append(side.value)
            elif side.kind == "run":
                values.append(run_values[side.index])
            else:
                ref = refs[side.index] if side.index < len(refs) else None
                if ref is None or not ref.ok:
                    why = ref.error if ref is not None else "missing"
                    reason = f"the test's reference value failed: {why}"
                    return _Outcome(Status.INFRA_ERROR, reason, Cause.INFRA)
                values.append(ref.value)
        return _apply(site, values)
    if len(report) >= 3 and report[2] is not None:
        exc = _Exception.of(report[2])
        return exc.outcome("raised " + exc.text)
    if len(report) >= 4 and isinstance(report[3], str):
        return _Outcome(
            Status.FAILED, f"the value is not plain data ({report[3]})", Cause.NOT_PLAIN
        )
    if len(report) >= 5 and report[4] == 1:
        return _Outcome(Status.ERROR, "too many checks in one test", Cause.LIMIT)
    if len(report) >= 5 and report[4] == 2:
        reason = "the test's checked values are too large in total"
        return _Outcome(Status.ERROR, reason, Cause.LIMIT)
    return forged


def verdict(plan: Plan, resp: dict[str, Any], refs: list[Reference], limits: Limits) -> Grade:
    """The grade of a program from the worker's answer ``resp`` (see the module docstring)."""
    names = plan.unit_names
    if not isinstance(resp, dict) or resp.get("infra"):
        why = resp.get("infra") if isinstance(resp, dict) else "no answer"
        results = _Outcome(Status.INFRA_ERROR, f"sandbox: {why}", Cause.INFRA).results(names)
        return Grade(results=results, parsed=True, load_error=f"sandbox: {why}")
    output = resp.get("output") or ""
    truncated = bool(resp.get("dropped"))
    runs = int(resp.get("runs") or 0)
    elapsed = float(resp.get("elapsed") or 0.0)
    load = resp.get("load") or {"z": "crash"}
    common: dict[str, Any] = {
        "output": output,
        "output_truncated": truncated,
        "runs": runs,
        "elapsed_s": elapsed,
    }
    if not load.get("ok"):
        outcome = _load_outcome(load, limits.timeout_s)
        return Grade(
            results=outcome.results(names),
            parsed=load.get("parsed") is not False,
            load_error=outcome.reason,
            tampered=load.get("tampered") if isinstance(load.get("tampered"), str) else None,
            **common,
        )
    tampered = resp.get("tampered")
    if tampered:
        reason = f"the program modified {tampered}, which the tests rely on"
        if tampered.startswith("the result channel"):
            reason = f"the program tampered with {tampered}"
        results = _Outcome(Status.ERROR, reason, Cause.TAMPER).results(names)
        return Grade(results=results, parsed=True, tampered=str(tampered), **common)
    units = resp.get("units") or []
    results = tuple(
        _unit_result(plan, u, units[u] if u < len(units) else None, refs, limits)
        for u in range(len(names))
    )
    return Grade(results=results, parsed=True, **common)
