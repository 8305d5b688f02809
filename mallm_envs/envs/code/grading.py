"""Running a program's tests in the sandbox, and what of the verdict an agent may see.

Every program runs in :mod:`mallm_envs.sandbox` (warm, isolated worker processes; the judge
decides each test's status from plain values), never in this process. One judge is shared
by every code env of a process and started on first use (its isolation mode and worker count:
:func:`configure_judge`, or ``MALLM_JUDGE_ISOLATION`` / ``MALLM_JUDGE_WORKERS``).

The feedback an agent gets must not reveal hidden tests: no test code, no expected values,
no inputs. The sandbox's per-test reasons may quote expected values ("expected 4, got 5")
and the program's own exception messages (which a program could fill with its inputs), so
:func:`safe_reason` rewrites each one into a short text built from fixed phrases, chosen
by the result's machine-readable ``cause`` (never by the wording of its reason): the cause,
the name of the exception's class only when the sandbox saw that it is a built-in
exception class, and the exception's message only when it has one of a few fixed shapes
that hold nothing but identifiers ("name 'x' is not defined").
"""

from __future__ import annotations

import ast
import atexit
import builtins
import functools
import os
import re
import threading
from dataclasses import dataclass

from mallm_envs.core.errors import MallmError
from mallm_envs.envs.code import freeze
from mallm_envs.envs.code.tasks import CodeTask, load_tasks
from mallm_envs.sandbox import (
    Cause,
    Grade,
    Judge,
    JudgeConfig,
    Limits,
    LimitsError,
    SandboxError,
    Status,
    TestCase,
    TestResult,
    TestSuite,
)
from mallm_envs.sandbox.config import ISOLATION_MODES

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

ISOLATION_ENV = "MALLM_JUDGE_ISOLATION"
"""Environment variable: the shared judge's isolation mode (``auto``, ``bwrap`` or ``process``)."""
WORKERS_ENV = "MALLM_JUDGE_WORKERS"
"""Environment variable: the shared judge's worker count (1 to 256)."""

_judge_lock = threading.Lock()
_judge: Judge | None = None
_judge_pid: int | None = None
_judge_settings: dict[str, object] = {}  # what configure_judge chose (None: the default)


def configure_judge(*, isolation: str | None = None, workers: int | None = None) -> None:
    """Choose how the code envs' shared judge runs programs; call before the first grade.

    ``isolation`` is a :class:`~mallm_envs.sandbox.Judge` isolation mode (``"auto"``,
    ``"bwrap"`` or ``"process"``) and ``workers`` the number of programs graded at once.
    ``None`` leaves a setting to the environment variables ``MALLM_JUDGE_ISOLATION`` and
    ``MALLM_JUDGE_WORKERS`` (read when the judge starts), and then to the defaults (``auto``;
    one worker per CPU, at most 4). These settings choose how runs are kept from the machine
    and how many run at once, never what a test checks: they are not part of any env spec
    and do not change scores. A forked child starts its own judge with the same settings.

    Raises:
        LimitsError: a value the judge would refuse (checked here, at once).
        SandboxError: the shared judge has already started in this process with other
            settings (configure it before the first grade).
    """
    settings = {"isolation": isolation, "workers": workers}
    _judge_config(settings)  # validate now, not at the first grade
    with _judge_lock:
        started = _judge is not None and _judge_pid == os.getpid()
        if started and _judge_config(settings) != _judge_config(_judge_settings):
            raise SandboxError(
                "the code envs' judge has already started; call configure_judge before "
                "the first grade (or set MALLM_JUDGE_ISOLATION / MALLM_JUDGE_WORKERS)"
            )
        _judge_settings.clear()
        _judge_settings.update(settings)


def _judge_config(settings: dict[str, object]) -> JudgeConfig:
    """The shared judge's configuration: chosen settings, else the environment, else defaults."""
    isolation = settings.get("isolation")
    if isolation is None:
        isolation = os.environ.get(ISOLATION_ENV) or "auto"
        if isolation not in ISOLATION_MODES:
            raise LimitsError(
                f"{ISOLATION_ENV} must be one of {ISOLATION_MODES}, got {isolation!r}"
            )
    workers = settings.get("workers")
    if workers is None:
        text = os.environ.get(WORKERS_ENV)
        if text:
            try:
                workers = int(text)
            except ValueError:
                raise LimitsError(
                    f"{WORKERS_ENV} must be an int in [1, 256], got {text!r}"
                ) from None
        else:
            workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    return JudgeConfig(limits=Limits(), isolation=isolation, workers=workers)  # type: ignore[arg-type]


def shared_judge() -> Judge:
    """The process's judge, started on first use (and again in a forked child).

    Its isolation mode and worker count come from :func:`configure_judge` or the environment
    variables ``MALLM_JUDGE_ISOLATION`` and ``MALLM_JUDGE_WORKERS`` (see ``docs/sandbox.md``).
    """
    global _judge, _judge_pid
    with _judge_lock:
        if _judge is None or _judge_pid != os.getpid():
            config = _judge_config(_judge_settings)
            try:
                _judge = Judge.from_config(config)
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
    return report(grade, task.entry_point)


def report(grade: Grade, entry_point: str | None = None) -> TestReport:
    """The agent-safe view of a sandbox grade (``entry_point``: the task's, for load errors)."""
    statuses = tuple(r.status.value for r in grade.results)
    if grade.load_error is not None:
        load_error = _safe_load_error(grade, entry_point)
        reasons = tuple("" if s == "passed" else "the program did not load" for s in statuses)
        return TestReport(statuses, reasons, load_error)
    reasons = tuple(safe_reason(r) for r in grade.results)
    return TestReport(statuses, reasons)


# --------------------------------------------------------------------------- v1


@functools.cache
def test_suite_v1(task_set: str, task_id: str) -> tuple[TestSuite, tuple[int, ...]]:
    """The v1 sandbox suite of a task and, for each of its checks, the test it belongs to.

    A HumanEval task with a test whose checks the run could read or rewrite (see
    :mod:`mallm_envs.envs.code.freeze`) is graded with its frozen checks: literal calls, the
    judge holding every expected value. Every other task keeps its v0 suite (one check per
    test), which must then have no such test.
    """
    task = load_tasks(task_set)[task_id]
    frozen = freeze.frozen_tests().get(task_id) if task_set == "humaneval" else None
    if frozen is None:
        suite = test_suite(task_set, task_id)
        if freeze.unsafe_units(suite.plan):
            raise freeze.FrozenTestsError(
                f"{task_id} has a test whose expected side the run computes, and no frozen "
                "checks; rebuild them (python -m mallm_envs.envs.code.freeze) in a new version"
            )
        return suite, tuple(range(len(suite)))
    cases: list[TestCase] = []
    groups: list[int] = []
    for number, checks in enumerate(frozen):
        for part, check in enumerate(checks):
            tolerances = {k: check[k] for k in ("abs_tol", "rel_tol") if k in check}
            expected = {}
            if check["expected"] is not None:
                expected["expected"] = ast.literal_eval(check["expected"])
            cases.append(
                TestCase(
                    check["call"],
                    compare=check["compare"],
                    name=f"test {number + 1}.{part + 1}",
                    **expected,
                    **tolerances,
                )
            )
            groups.append(number)
    suite = TestSuite(cases, entry_point=task.entry_point, prelude=task.context)
    if freeze.unsafe_units(suite.plan):  # pragma: no cover - the frozen data is checked
        raise freeze.FrozenTestsError(f"{task_id}: a frozen check is not a literal call")
    return suite, tuple(groups)


def test_count_v1(task_set: str, task_id: str) -> int:
    """How many tests the task has under v1 (the same tests as v0, some frozen)."""
    _, groups = test_suite_v1(task_set, task_id)
    return groups[-1] + 1 if groups else 0


def run_tests_v1(task: CodeTask, program: str, time_limit_scale: float = 1.0) -> TestReport:
    """Like :func:`run_tests` with the v1 suite and the v1 feedback (:func:`report_v1`)."""
    suite, groups = test_suite_v1(task.task_set, task.task_id)
    judge = shared_judge()
    grade = judge.grade(program, suite, limits=limits(time_limit_scale))
    if grade.infra_error:
        grade = judge.grade(program, suite, limits=limits(time_limit_scale))
    return report_v1(grade, groups, task.entry_point)


def report_v1(
    grade: Grade, groups: tuple[int, ...] | None = None, entry_point: str | None = None
) -> TestReport:
    """The v1 agent-safe view of a grade: one status per test (its first check that did not
    pass decides; ``groups`` maps each check to its test) and reasons that name an
    exception's class but never carry its message (:func:`safe_reason_v1`)."""
    results = grade.results
    if groups is None:
        groups = tuple(range(len(results)))
    count = groups[-1] + 1 if groups else 0
    chosen: list[TestResult | None] = [None] * count
    for result, number in zip(results, groups):
        current = chosen[number]
        if current is None or (
            current.status is Status.PASSED and result.status is not Status.PASSED
        ):
            chosen[number] = result
    picked = [r for r in chosen if r is not None]
    statuses = tuple(r.status.value for r in picked)
    if grade.load_error is not None:
        load_error = _safe_load_error(grade, entry_point, messages=False)
        reasons = tuple("" if s == "passed" else "the program did not load" for s in statuses)
        return TestReport(statuses, reasons, load_error)
    return TestReport(statuses, tuple(safe_reason_v1(r) for r in picked))


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
_CAUSE_TEXT = {
    Cause.WRONG_VALUE: "wrong result",
    Cause.NOT_PLAIN: "the result is not plain data (a class instance, generator or function)",
    Cause.UNCOMPARABLE: "error while checking the result",
    Cause.NO_CHECK: "error while checking the result",
    Cause.LIMIT: "too many checks in one test",
    Cause.TIMEOUT: "exceeded the time limit",
    Cause.BUDGET: "not run: the time budget for all tests ran out",
    Cause.MEMORY: "exceeded the memory limit",
    Cause.EXIT: "the process exited during the test",
    Cause.SIGNAL: "the process was killed by a signal",
    Cause.OUTPUT: "the program printed too much",
    Cause.TAMPER: "the program tampered with the test harness",
    Cause.SYNTAX: "the program could not be loaded",
    Cause.MISSING: "the program could not be loaded",
    Cause.REJECTED: "the program could not be loaded",
    Cause.INFRA: "the sandbox failed (not counted as a pass)",
}
"""What an agent is told for each cause (fixed phrases: nothing of the test shows)."""


def _exception_text(
    name: str | None, builtin: bool, message: str | None, messages: bool = True
) -> str:
    """``"ZeroDivisionError: division by zero"``: the type only when it is a built-in
    exception class, the message only when it has one of the safe shapes (never when
    ``messages`` is false: v1)."""
    if name is None or not builtin:
        return "an exception of a class defined by the program"
    if messages and message and any(p.fullmatch(message) for p in _SAFE_MESSAGES):
        return f"{name}: {message}"
    return name


def safe_reason(result: TestResult | Status | str, reason: str | None = None) -> str:
    """A short reason for a test's result that reveals nothing about the hidden test.

    Decided from the result's ``cause`` and exception fields, never from its prose:

    >>> from mallm_envs.sandbox import Cause, Status, TestResult
    >>> safe_reason(TestResult("t", Status.FAILED, "expected 4, got 5", cause=Cause.WRONG_VALUE))
    'wrong result'
    >>> safe_reason(TestResult("t", Status.ERROR, "raised ZeroDivisionError: division by zero",
    ...     cause=Cause.EXCEPTION, exception_type="ZeroDivisionError", builtin_exception=True,
    ...     exception_message="division by zero"))
    'raised ZeroDivisionError: division by zero'
    >>> safe_reason(TestResult("t", Status.ERROR, "raised ValueError: input was [3, 1, 2]",
    ...     cause=Cause.EXCEPTION, exception_type="ValueError", builtin_exception=True,
    ...     exception_message="input was [3, 1, 2]"))
    'raised ValueError'
    >>> safe_reason(TestResult("t", Status.ERROR, "raised ValueError: 3, 1, 2",
    ...     cause=Cause.EXCEPTION, exception_type="ValueError", builtin_exception=False))
    'raised an exception of a class defined by the program'

    A ``(status, reason)`` pair of texts (e.g. from a stored transcript) is accepted too; its
    cause is then recovered from the wording of the sandbox's reasons:

    >>> safe_reason("error", "raised Leak_3_1_2: boom")
    'raised an exception of a class defined by the program'
    """
    if not isinstance(result, TestResult):
        result = _result_from_text(Status(result), reason or "")
    if result.status is Status.PASSED:
        return ""
    if result.status is Status.INFRA_ERROR:
        return _CAUSE_TEXT[Cause.INFRA]
    if result.cause in (Cause.EXCEPTION, Cause.MEMORY) and result.status is Status.ERROR:
        text = _exception_text(
            result.exception_type, result.builtin_exception, result.exception_message
        )
        return "raised " + text
    if result.cause is None:
        return "error while checking the result"
    return _CAUSE_TEXT[result.cause]


def safe_reason_v1(result: TestResult) -> str:
    """The v1 reason for a test's result: as :func:`safe_reason`, but an exception shows its
    class only, never its message. A message, even of a "safe" shape, carries what the
    program chose (a digit run in ``takes <N> positional arguments``, a long name in ``name
    '<x>' is not defined``): a program could spell the hidden inputs into it and read them
    back in the next turn. What remains is the status and, for an exception, one name out
    of Python's fixed set of built-in exception classes.

    >>> from mallm_envs.sandbox import Cause, Status, TestResult
    >>> safe_reason_v1(TestResult("t", Status.ERROR, "raised TypeError: f() takes 104101 "
    ...     "positional arguments but 1 was given", cause=Cause.EXCEPTION,
    ...     exception_type="TypeError", builtin_exception=True,
    ...     exception_message="f() takes 104101 positional arguments but 1 was given"))
    'raised TypeError'
    """
    if result.status is Status.ERROR and result.cause in (Cause.EXCEPTION, Cause.MEMORY):
        return "raised " + _exception_text(
            result.exception_type, result.builtin_exception, None, messages=False
        )
    return safe_reason(result)


_TEXT_CAUSES = (  # (status, reason prefix, cause) for texts that carry no cause
    (Status.FAILED, "the value is not plain data", Cause.NOT_PLAIN),
    (Status.FAILED, "", Cause.WRONG_VALUE),
    (Status.TIMEOUT, "not run", Cause.BUDGET),
    (Status.TIMEOUT, "", Cause.TIMEOUT),
    (Status.MEMORY_LIMIT, "", Cause.MEMORY),
    (Status.INFRA_ERROR, "", Cause.INFRA),
    (Status.ERROR, "raised ", Cause.EXCEPTION),
    (Status.ERROR, "the process exited", Cause.EXIT),
    (Status.ERROR, "the process was killed", Cause.SIGNAL),
    (Status.ERROR, "the process crashed", Cause.SIGNAL),
    (Status.ERROR, "the program closed or broke the result channel", Cause.TAMPER),
    (Status.ERROR, "the program tampered", Cause.TAMPER),
    (Status.ERROR, "the program modified", Cause.TAMPER),
    (Status.ERROR, "the program printed more than", Cause.OUTPUT),
    (Status.ERROR, "too many checks", Cause.LIMIT),
)


def _result_from_text(status: Status, reason: str) -> TestResult:
    """A :class:`TestResult` for a (status, reason) pair from before results carried causes."""
    cause = next(
        (c for st, prefix, c in _TEXT_CAUSES if st is status and reason.startswith(prefix)), None
    )
    name = message = None
    if cause is Cause.EXCEPTION:
        name, _, message = reason[len("raised ") :].partition(": ")
    return TestResult(
        "",
        status,
        reason,
        cause=cause,
        exception_type=name,
        builtin_exception=name in _BUILTIN_EXCEPTIONS,
        exception_message=message or None,
    )


def _safe_load_error(grade: Grade, entry_point: str | None = None, *, messages: bool = True) -> str:
    """Why the program did not load; computed before any test ran, so it holds no test data,
    but exception messages still pass the same filter (and are left out when ``messages``
    is false: v1)."""
    first = grade.results[0] if grade.results else None
    cause = first.cause if first is not None else None
    if cause in (Cause.EXCEPTION, Cause.MEMORY) and first is not None:
        text = _exception_text(
            first.exception_type, first.builtin_exception, first.exception_message, messages
        )
        return f"the program raised {text} while loading"
    if cause is Cause.TAMPER:
        return "the program modified something the tests rely on"
    if cause is Cause.TIMEOUT:
        return "loading the program exceeded the time limit"
    if cause is Cause.MISSING and entry_point is not None and re.fullmatch(_ID, entry_point):
        return f"the program defines no function named {entry_point!r}"
    if cause in (Cause.EXIT, Cause.SIGNAL, Cause.OUTPUT, Cause.BUDGET):
        return "loading the program: " + _CAUSE_TEXT[cause].replace(" during the test", "")
    if cause is Cause.INFRA:
        return _CAUSE_TEXT[Cause.INFRA]
    return "the program could not be loaded"
