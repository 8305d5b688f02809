"""Grade untrusted (LLM-written) Python programs fast, with a verdict the program cannot fake.

Quick start::

    from mallm_envs.sandbox import Judge, Limits, TestCase, TestSuite

    suite = TestSuite([TestCase("candidate(2, 3)", expected=5)], entry_point="add")
    with Judge(Limits(timeout_s=1.0), workers=2) as judge:
        grade = judge.grade("def add(a, b):\\n    return a + b\\n", suite)
    grade.passed, grade.total, grade.results[0].status   # (1, 1, Status.PASSED)

Warm worker processes fork one run per program; each run is isolated (namespaces or Landlock,
a seccomp filter, rlimits, a CPU quota) and sends the plain values of each check, and the judge
decides every verdict itself. The design, what each isolation mode gives and does not give, the
configuration (:class:`JudgeConfig`; the code envs' ``configure_judge``) and where each part of
the code lives are on the docs page ``docs/sandbox.md`` ("The sandbox").
"""

from mallm_envs.sandbox.cases import COMPARISONS, NO_EXPECTED, AssertCode, TestCase, TestSuite
from mallm_envs.sandbox.config import JudgeConfig
from mallm_envs.sandbox.errors import (
    JudgeClosedError,
    LimitsError,
    SandboxError,
    SandboxStartError,
    TestSuiteError,
    WeakIsolationWarning,
)
from mallm_envs.sandbox.judge import Judge
from mallm_envs.sandbox.limits import Limits
from mallm_envs.sandbox.results import Cause, Grade, Status, TestResult

__all__ = [
    "COMPARISONS",
    "NO_EXPECTED",
    "AssertCode",
    "Cause",
    "Grade",
    "Judge",
    "JudgeClosedError",
    "JudgeConfig",
    "Limits",
    "LimitsError",
    "SandboxError",
    "SandboxStartError",
    "Status",
    "TestCase",
    "TestResult",
    "TestSuite",
    "TestSuiteError",
    "WeakIsolationWarning",
]
