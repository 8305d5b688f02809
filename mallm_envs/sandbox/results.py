"""What a grade reports: one :class:`TestResult` per test and the :class:`Grade` around them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


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

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "checks": self.checks,
            "duration_s": round(self.duration_s, 6),
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

    def to_dict(self) -> dict:
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
