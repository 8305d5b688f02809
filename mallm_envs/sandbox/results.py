"""What a grade reports: one :class:`TestResult` per test and the :class:`Grade` around them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    """Outcome of one test. Only ``PASSED`` counts as a pass."""

    PASSED = "passed"
    FAILED = "failed"
    """The program ran, but a checked value was wrong (or not plain data)."""
    ERROR = "error"
    """The program raised, crashed, exited, or broke the rules (e.g. patched what tests use)."""
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    INFRA_ERROR = "infra_error"
    """The sandbox itself failed (worker lost, broken test reference); never a pass."""

    def __str__(self) -> str:
        return self.value


class Cause(str, Enum):
    """Why a test did not pass, as a fixed code for programs (``TestResult.reason`` is prose).

    Each cause comes with one status (given after the name), except ``exception``, which is
    ``error``, and ``memory``, which is ``memory_limit``.
    """

    WRONG_VALUE = "wrong_value"
    """failed: a checked value differs from the expected one (or a truth test was false)."""
    NOT_PLAIN = "not_plain"
    """failed: a checked value is not plain data (a class instance, generator, function, or a
    value too large or too deeply nested to copy)."""
    UNCOMPARABLE = "uncomparable"
    """error: the checked values cannot be compared (e.g. ``"a" < 1``)."""
    EXCEPTION = "exception"
    """error: the program, or the test code calling it, raised (``sys.exit`` included);
    see ``exception_type``."""
    MEMORY = "memory"
    """memory_limit: ``MemoryError`` (the address-space limit)."""
    TIMEOUT = "timeout"
    """timeout: the test (or loading the program) ran past its wall-clock or CPU limit."""
    BUDGET = "budget"
    """timeout: not run, the grade's total time budget ran out first."""
    EXIT = "exit"
    """error: the process exited during the test (``os._exit``)."""
    SIGNAL = "signal"
    """error: the process was killed by a signal, or crashed."""
    OUTPUT = "output"
    """error: the program printed far more than the output cap (64 MiB beyond it)."""
    TAMPER = "tamper"
    """error: the program modified what the tests rely on, or broke or forged the result
    channel (every test of the grade fails)."""
    LIMIT = "limit"
    """error: one test made too many checks or checked too much data, or the program wrote
    more than its scratch folder holds (``Judge(scratch_mb=...)``)."""
    NO_CHECK = "no_check"
    """error: the test finished without running a single check."""
    SYNTAX = "syntax"
    """error: the program does not compile."""
    MISSING = "missing"
    """error: the program defines no function named after the entry point."""
    REJECTED = "rejected"
    """error: not run at all (the program is not a str, or is too long)."""
    INFRA = "infra"
    """infra_error: the sandbox failed, or a test's own reference value or prelude failed."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TestResult:
    """The verdict on one test, decided by the judge from plain values."""

    __test__ = False  # not a pytest test class

    name: str
    """The test's name: the given name, or its source (``assert candidate(2) == 4``)."""
    status: Status
    reason: str = ""
    """Short explanation for anything but a pass (safe to show to a model)."""
    checks: int = 0
    """Assertion executions the run reported for this test (loops report several)."""
    duration_s: float = field(default=0.0, compare=False)
    """Wall-clock seconds the test took (load-dependent; not part of equality)."""
    cause: Cause | None = None
    """Why the test did not pass, as a fixed code (None for a pass); match on this, not on
    ``reason``, whose wording may change."""
    exception_type: str | None = None
    """For an exception (cause ``exception``, ``memory``, ``syntax``, or an infra error raised
    by the test's prelude): the name of its class. The program chooses class names, so a name
    alone proves nothing: see ``builtin_exception``."""
    builtin_exception: bool = False
    """True when that class is one of Python's built-in exceptions itself (not a subclass,
    not a class of the program that took a builtin's name)."""
    exception_message: str | None = None
    """The exception's message (its one str argument, or a short repr of its arguments),
    capped at 200 characters; it may quote anything the program chose, test inputs too."""

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "checks": self.checks,
            "duration_s": round(self.duration_s, 6),
            "cause": None if self.cause is None else self.cause.value,
            "exception_type": self.exception_type,
            "builtin_exception": self.builtin_exception,
            "exception_message": self.exception_message,
        }


@dataclass(frozen=True)
class Grade:
    """The judge's verdict on one program: per-test results plus how the program loaded."""

    results: tuple[TestResult, ...]
    parsed: bool
    """False when the program is not valid Python (or too long to be run)."""
    load_error: str | None = None
    """Why the program could not be loaded and tested, or None when it loaded."""
    output: str = ""
    """Captured stdout+stderr of all runs, capped at ``Limits.max_output_bytes``."""
    output_truncated: bool = False
    tampered: str | None = None
    """What the program modified that the tests rely on (every test then fails), or None."""
    runs: int = field(default=0, compare=False)
    """Processes the grade used (1 unless a test timed out or crashed and the rest resumed)."""
    elapsed_s: float = field(default=0.0, compare=False)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> int:
        """Number of tests that passed."""
        return sum(r.status is Status.PASSED for r in self.results)

    @property
    def all_passed(self) -> bool:
        """True when there is at least one test and every test passed."""
        return bool(self.results) and self.passed == self.total

    @property
    def score(self) -> float:
        """Fraction of tests passed (0.0 for an empty suite)."""
        return self.passed / self.total if self.results else 0.0

    @property
    def infra_error(self) -> bool:
        """True when any result is an infrastructure error (the grade may be retried)."""
        return any(r.status is Status.INFRA_ERROR for r in self.results)

    def counts(self) -> dict[str, int]:
        """How many tests ended in each status (statuses with zero tests are left out)."""
        return dict(Counter(r.status.value for r in self.results))

    def to_dict(self) -> dict[str, Any]:
        return {
            "parsed": self.parsed,
            "load_error": self.load_error,
            "passed": self.passed,
            "total": self.total,
            "tampered": self.tampered,
            "results": [r.to_dict() for r in self.results],
            "output": self.output,
            "output_truncated": self.output_truncated,
            "runs": self.runs,
            "elapsed_s": round(self.elapsed_s, 6),
        }
