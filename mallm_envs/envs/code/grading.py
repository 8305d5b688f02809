"""Running a program's tests in the sandbox, and what of the verdict an agent may see.

Every program runs in :mod:`mallm_envs.sandbox` (warm, isolated worker processes; the judge
decides each test's status from plain values), never in this process. One judge is shared
by every code env of a process and started on first use.

The feedback an agent gets must not reveal hidden tests: no test code, no expected values,
no inputs. The sandbox's per-test reasons may quote expected values ("expected 4, got 5")
and the program's own exception messages (which a program could fill with its inputs), so
:func:`safe_reason` rewrites each one into a short text built from fixed phrases: the
status, the name of a built-in exception type, and the exception's message only when it
has one of a few fixed shapes that hold nothing but identifiers ("name 'x' is not
defined").
"""

from __future__ import annotations

import atexit
import builtins
import functools
import os
import re
import threading
from dataclasses import dataclass

from mallm_envs.core.errors import MallmError
from mallm_envs.envs.code.tasks import CodeTask, load_tasks
from mallm_envs.sandbox import (
    Grade,
    Judge,
    Limits,
    SandboxError,
    Status,
    TestCase,
    TestSuite,
)

TIMEOUT_S = 2.0
"""Wall-clock seconds for loading the program, and again for each test (times the env's
``time_limit_scale``)."""
TOTAL_TIMEOUT_S = 20.0
"""Wall-clock seconds for all of a program's tests together (times ``time_limit_scale``)."""
MEMORY_MB = 1024
MAX_WORKERS = 4


class SandboxUnavailableError(MallmError, RuntimeError):
    """The sandbox cannot run here (it needs Linux); the code envs cannot grade."""


@dataclass(frozen=True)
class TestReport:
    """What the agents and the infos may see of a grade.

    Attributes:
        statuses: one status per test, in the tests' order (``passed``, ``failed``,
            ``error``, ``timeout``, ``memory_limit``, ``infra_error``).
        reasons: one safe reason per test ("" for a pass).
        load_error: why the program could not be loaded, or ``None``.
    """

    __test__ = False  # not a pytest class

    statuses: tuple[str, ...]
    reasons: tuple[str, ...]
    load_error: str | None = None

    @property
    def total(self) -> int:
        return len(self.statuses)

    @property
    def passed(self) -> int:
        return sum(s == "passed" for s in self.statuses)

    @property
    def success(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def infra_errors(self) -> int:
        return sum(s == "infra_error" for s in self.statuses)


# --------------------------------------------------------------------------- suites


@functools.cache
def test_suite(task_set: str, task_id: str) -> TestSuite:
    """The sandbox test suite of a task (built once per process)."""
    return _build_suite(load_tasks(task_set)[task_id])


def _build_suite(task: CodeTask) -> TestSuite:
    checks = [t for t in task.tests if t.kind == "check"]
    calls = [t for t in task.tests if t.kind == "call"]
    if checks:
        if len(checks) != 1 or calls:
            raise ValueError(f"{task.task_id}: one check module, or call tests only")
        return TestSuite.from_check(checks[0].source, task.entry_point, prelude=task.context)
    cases = [
        TestCase(t.source, expected=t.expected, name=f"test {i + 1}") for i, t in enumerate(calls)
    ]
    return TestSuite(cases, entry_point=task.entry_point, prelude=task.context)


def test_count(task_set: str, task_id: str) -> int:
    """How many tests the task has (the denominator of the tests level)."""
    return len(test_suite(task_set, task_id))


# --------------------------------------------------------------------------- the judge

_judge_lock = threading.Lock()
_judge: Judge | None = None
_judge_pid: int | None = None


def shared_judge() -> Judge:
    """The process's judge, started on first use (and again in a forked child)."""
    global _judge, _judge_pid
    with _judge_lock:
        if _judge is None or _judge_pid != os.getpid():
            workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1))
            try:
                _judge = Judge(Limits(), workers=workers)
            except SandboxError as err:
                raise SandboxUnavailableError(
                    f"the code envs grade programs in mallm_envs.sandbox, which cannot start here: {err}"
                ) from err
            _judge_pid = os.getpid()
        return _judge


@atexit.register
def _close_judge() -> None:
    global _judge
    with _judge_lock:
        if _judge is not None and _judge_pid == os.getpid():
            _judge.close()
        _judge = None


def limits(time_limit_scale: float) -> Limits:
    """The sandbox limits of one grade, every time limit multiplied by ``time_limit_scale``."""
    return Limits(
        timeout_s=TIMEOUT_S * time_limit_scale,
        total_timeout_s=TOTAL_TIMEOUT_S * time_limit_scale,
        memory_mb=MEMORY_MB,
    )


def run_tests(task: CodeTask, program: str, time_limit_scale: float = 1.0) -> TestReport:
    """Grade ``program`` against every test of ``task`` in the sandbox.

    A grade with an infrastructure error (the sandbox failed, not the program) is tried
    once more; if it fails again those tests count as not passed.
    """
    suite = test_suite(task.task_set, task.task_id)
    judge = shared_judge()
    grade = judge.grade(program, suite, limits=limits(time_limit_scale))
    if grade.infra_error:
        grade = judge.grade(program, suite, limits=limits(time_limit_scale))
    return report(grade)


def report(grade: Grade) -> TestReport:
    """The agent-safe view of a sandbox grade."""
    statuses = tuple(r.status.value for r in grade.results)
    if grade.load_error is not None:
        load_error = _safe_load_error(grade)
        reasons = tuple("" if s == "passed" else "the program did not load" for s in statuses)
        return TestReport(statuses, reasons, load_error)
    reasons = tuple(safe_reason(r.status, r.reason) for r in grade.results)
    return TestReport(statuses, reasons)


# --------------------------------------------------------------------------- safe reasons

_BUILTIN_EXCEPTIONS = frozenset(
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type)
    and issubclass(getattr(builtins, name), BaseException)
)
_ID = r"[A-Za-z_][A-Za-z0-9_]{0,60}"
_DOTTED = rf"{_ID}(?:\.{_ID}){{0,4}}"
_SAFE_MESSAGES = tuple(
    re.compile(pattern)
    for pattern in (
        rf"name '{_ID}' is not defined",
        rf"free variable '{_ID}' referenced before assignment in enclosing scope",
        rf"cannot access (?:local|free) variable '{_ID}' where it is not associated with a value",
        rf"local variable '{_ID}' referenced before assignment",
        rf"'{_DOTTED}' object has no attribute '{_ID}'",
        rf"module '{_DOTTED}' has no attribute '{_ID}'",
        rf"No module named '{_DOTTED}'",
        rf"'{_DOTTED}' object is not (?:subscriptable|iterable|callable)",
        rf"unsupported operand type\(s\) for [^\w\s]{{1,3}}: '{_DOTTED}' and '{_DOTTED}'",
        rf"can only concatenate (?:str|list|tuple) \(not \"{_DOTTED}\"\) to (?:str|list|tuple)",
        rf"{_ID}\(\) takes (?:from )?\d+ (?:to \d+ )?positional arguments? but \d+ (?:was|were) given",
        rf"{_ID}\(\) missing \d+ required (?:positional|keyword-only) arguments?: '{_ID}'(?:(?:, '{_ID}')* and '{_ID}')?",
        r"(?:integer |float )?division(?: or modulo)? by zero",
        r"(?:list|string|tuple|range object) index out of range",
        r"maximum recursion depth exceeded(?: in comparison| while calling a Python object)?",
        r"pop from empty list",
        r"(?:min|max)\(\) (?:arg|iterable argument) is an empty sequence",
    )
)
_FIXED_ERRORS = (
    ("the process exited", "the process exited during the test"),
    ("the process was killed", "the process was killed by a signal"),
    ("the process crashed", "the process crashed"),
    ("the program closed or broke the result channel", "the program broke the test harness"),
    ("the program tampered", "the program tampered with the test harness"),
    ("the program modified", "the program modified something the tests rely on"),
    ("the program printed more than", "the program printed too much"),
    ("too many checks", "too many checks in one test"),
)


def _exception_text(text: str) -> str:
    """``"ZeroDivisionError: division by zero"`` from the sandbox's ``"raised ..."`` text,
    keeping the type only when it is built in and the message only when it is safe."""
    name, _, message = text.partition(": ")
    if name not in _BUILTIN_EXCEPTIONS:
        return "an exception of a class defined by the program"
    if message and any(p.fullmatch(message) for p in _SAFE_MESSAGES):
        return f"{name}: {message}"
    return name


def safe_reason(status: Status | str, reason: str) -> str:
    """A short reason for a test's status that reveals nothing about the hidden test.

    >>> safe_reason("failed", "expected 4, got 5")
    'wrong result'
    >>> safe_reason("error", "raised ZeroDivisionError: division by zero")
    'raised ZeroDivisionError: division by zero'
    >>> safe_reason("error", "raised ValueError: input was [3, 1, 2]")
    'raised ValueError'
    >>> safe_reason("error", "raised Leak_3_1_2: boom")
    'raised an exception of a class defined by the program'
    """
    status = Status(status)
    if status is Status.PASSED:
        return ""
    if status is Status.FAILED:
        if reason.startswith("the value is not plain data"):
            return "the result is not plain data (a class instance, generator or function)"
        return "wrong result"
    if status is Status.TIMEOUT:
        if reason.startswith("not run"):
            return "not run: the time budget for all tests ran out"
        return "exceeded the time limit"
    if status is Status.MEMORY_LIMIT:
        return "exceeded the memory limit"
    if status is Status.INFRA_ERROR:
        return "the sandbox failed (not counted as a pass)"
    if reason.startswith("raised "):
        return "raised " + _exception_text(reason[len("raised ") :])
    for prefix, text in _FIXED_ERRORS:
        if reason.startswith(prefix):
            return text
    return "error while checking the result"


def _safe_load_error(grade: Grade) -> str:
    """Why the program did not load; computed before any test ran, so it holds no test data,
    but exception messages still pass the same filter."""
    text = grade.load_error or ""
    match = re.fullmatch(r"the program raised (.*) while loading", text, re.S)
    if match:
        return f"the program raised {_exception_text(match.group(1))} while loading"
    if grade.tampered:
        return "the program modified something the tests rely on"
    if text.startswith("loading the program exceeded"):
        return "loading the program exceeded the time limit"
    match = re.fullmatch(r"the program defines no function named '(" + _ID + ")'", text)
    if match:
        return text
    if text.startswith("loading the program: "):
        status = grade.results[0].status if grade.results else Status.ERROR
        reason = safe_reason(status, text[len("loading the program: ") :])
        return "loading the program: " + reason.replace(" during the test", "")
    if text.startswith("sandbox"):
        return "the sandbox failed (not counted as a pass)"
    return "the program could not be loaded"
