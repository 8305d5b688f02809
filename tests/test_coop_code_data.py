"""The CoopCode problem set (mallm_envs/data/coop_code/problems.jsonl) is well formed and right.

Static checks read the file and parse code with `ast` only. Every piece of reference code runs
in a child Python process (one per run, all problems in it, each in its own namespace, each
call under a timer), never in the pytest process. Checked there: each reference (helper +
main) passes all of its tests; the examples in the docstrings agree with the references; two
broken mains (one that always returns the first test's expected value, one whose helper
returns None) each fail at least one test; results do not depend on the hash seed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

DATA = (
    Path(__file__).resolve().parent.parent / "mallm_envs" / "data" / "coop_code" / "problems.jsonl"
)
FIELDS = (
    "task_id",
    "entry_point",
    "prompt",
    "aux_signature",
    "aux_description",
    "reference_aux",
    "reference_main",
    "tests",
    "difficulty",
    "split",
)
DIFFICULTIES = ("easy", "medium", "hard")
SPLITS = ("train", "test")
MIN_PROBLEMS = 60
MIN_TESTS = 5
CALL_LIMIT_S = 1.0  # per call in the child; a reference needs milliseconds
PROBLEM_BUDGET_S = 0.5  # all tests of one reference together (they take ~1-20 ms)

# Runs in the child process. Reads {"limit_s", "mutants", "jobs"} as JSON on stdin and
# writes {task_id: {...outcomes...}} as JSON on stdout.
RUNNER = r"""
import copy
import json
import signal
import sys
import time


class CallTimeout(Exception):
    pass


def on_alarm(signum, frame):
    raise CallTimeout("call ran past the time limit")


signal.signal(signal.SIGALRM, on_alarm)
request = json.load(sys.stdin)
LIMIT_S = request["limit_s"]


def evaluate(namespace, expression, as_repr=False):
    signal.setitimer(signal.ITIMER_REAL, LIMIT_S)
    try:
        value = eval(expression, namespace)
        if as_repr:
            return {"ok": True, "value": repr(value)}
        return {"ok": True, "value": json.loads(json.dumps(value, allow_nan=False))}
    except BaseException as error:
        return {"ok": False, "error": f"{type(error).__name__}: {str(error)[:200]}"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def build(sources, overrides):
    namespace = {"__name__": "coop_code_problem"}
    signal.setitimer(signal.ITIMER_REAL, LIMIT_S)
    try:
        for source in sources:
            exec(source, namespace)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    namespace.update(overrides)
    return namespace


def run_until_failure(namespace, calls, expected):
    outcomes = []
    for call, want in zip(calls, expected):
        outcome = evaluate(namespace, call)
        outcomes.append(outcome)
        if not outcome["ok"] or outcome["value"] != want:
            break
    return outcomes


report = {}
for job in request["jobs"]:
    result = {}
    try:
        reference = build([job["prompt"], job["aux"], job["main"]], {})
        started = time.perf_counter()
        result["reference"] = [evaluate(reference, call) for call in job["calls"]]
        result["seconds"] = time.perf_counter() - started
        result["examples"] = [evaluate(reference, e, as_repr=True) for e in job["examples"]]
        if request["mutants"]:
            constant = job["expected"][0]
            always_first = build(
                [job["prompt"], job["aux"]],
                {job["entry_point"]: lambda *a, **k: copy.deepcopy(constant)},
            )
            result["constant"] = run_until_failure(always_first, job["calls"], job["expected"])
            helper_none = build([job["prompt"], job["main"]], {"aux": lambda *a, **k: None})
            result["aux_none"] = run_until_failure(helper_none, job["calls"], job["expected"])
    except BaseException as error:
        result["setup_error"] = f"{type(error).__name__}: {error}"
    report[job["task_id"]] = result
json.dump(report, sys.stdout)
"""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _load() -> list[dict[str, Any]]:
    with DATA.open(encoding="utf-8") as handle:
        return [
            json.loads(line, parse_constant=_reject_constant) for line in handle if line.strip()
        ]


PROBLEMS = _load()


def _examples(text: str) -> list[tuple[str, str]]:
    """(expression, expected output) for each `>>> ` line; the output is the next line."""
    lines = text.split("\n")
    found = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">>> "):
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            found.append((stripped[4:], following))
    return found


def _function(source: str, name: str) -> ast.FunctionDef:
    functions = [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]
    matching = [node for node in functions if node.name == name]
    assert len(matching) == 1, f"expected one top-level def {name}"
    return matching[0]


def _arg_names(function: ast.FunctionDef) -> list[str]:
    return [arg.arg for arg in function.args.args]


def _calls_aux(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "aux"


def _strictly_equal(value: Any, expected: Any) -> bool:
    """Equal as JSON text, so True != 1 and 2.0 != 2 (dict key order does not matter)."""
    return json.dumps(value, sort_keys=True) == json.dumps(expected, sort_keys=True)


def _run(jobs: list[dict[str, Any]], *, hash_seed: str, mutants: bool, workdir: Path) -> dict:
    request = json.dumps({"limit_s": CALL_LIMIT_S, "mutants": mutants, "jobs": jobs})
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=request,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=workdir,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


def _job(problem: dict[str, Any]) -> dict[str, Any]:
    texts = (problem["prompt"], problem["aux_description"])
    return {
        "task_id": problem["task_id"],
        "entry_point": problem["entry_point"],
        "prompt": problem["prompt"],
        "aux": problem["reference_aux"],
        "main": problem["reference_main"],
        "calls": [test["call"] for test in problem["tests"]],
        "expected": [test["expected"] for test in problem["tests"]],
        "examples": [expression for text in texts for expression, _ in _examples(text)],
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    workdir = tmp_path_factory.mktemp("coop_code_run")
    return _run([_job(p) for p in PROBLEMS], hash_seed="0", mutants=True, workdir=workdir)


# ---- static checks ---------------------------------------------------------------------------


def test_file_has_enough_problems_with_sequential_unique_ids() -> None:
    assert len(PROBLEMS) >= MIN_PROBLEMS
    ids = [problem["task_id"] for problem in PROBLEMS]
    assert ids == [f"CoopCode/{index}" for index in range(len(PROBLEMS))]
    entry_points = [problem["entry_point"] for problem in PROBLEMS]
    assert len(set(entry_points)) == len(entry_points), "entry points must be unique"


def test_fields_and_types() -> None:
    for problem in PROBLEMS:
        where = problem.get("task_id")
        assert tuple(problem) == FIELDS, where
        for field in FIELDS:
            if field != "tests":
                assert isinstance(problem[field], str) and problem[field].strip(), (where, field)
        assert problem["entry_point"].isidentifier() and problem["entry_point"] != "aux", where
        assert problem["difficulty"] in DIFFICULTIES, where
        assert problem["split"] in SPLITS, where
        assert isinstance(problem["tests"], list), where
        for test in problem["tests"]:
            assert isinstance(test, dict) and set(test) == {"call", "expected"}, where
            assert isinstance(test["call"], str), where


def test_split_is_fixed_near_75_25_and_covers_every_difficulty() -> None:
    splits = Counter(problem["split"] for problem in PROBLEMS)
    assert 0.2 <= splits["test"] / len(PROBLEMS) <= 0.3, splits
    pairs = Counter((problem["difficulty"], problem["split"]) for problem in PROBLEMS)
    for difficulty in DIFFICULTIES:
        for split in SPLITS:
            assert pairs[(difficulty, split)] > 0, (difficulty, split)


def test_each_problem_has_enough_distinct_literal_calls() -> None:
    counts = [len(problem["tests"]) for problem in PROBLEMS]
    assert min(counts) >= MIN_TESTS
    assert sum(counts) / len(counts) >= 6.5
    for problem in PROBLEMS:
        calls = [test["call"] for test in problem["tests"]]
        assert len(set(calls)) == len(calls), f"{problem['task_id']}: repeated call"
        for call in calls:
            node = ast.parse(call, mode="eval").body
            assert isinstance(node, ast.Call), call
            assert isinstance(node.func, ast.Name) and node.func.id == problem["entry_point"], call
            for argument in [*node.args, *(keyword.value for keyword in node.keywords)]:
                assert not isinstance(argument, ast.Starred), call
                ast.literal_eval(argument)  # raises on anything but plain literals


def test_prompt_is_one_documented_signature_with_examples() -> None:
    for problem in PROBLEMS:
        where = problem["task_id"]
        body = ast.parse(problem["prompt"]).body
        *imports, function = body
        for statement in imports:
            assert isinstance(statement, ast.Import | ast.ImportFrom), where
            names = (
                [alias.name for alias in statement.names]
                if isinstance(statement, ast.Import)
                else [statement.module or ""]
            )
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names, (where, name)
        assert isinstance(function, ast.FunctionDef), where
        assert function.name == problem["entry_point"], where
        assert len(function.body) == 1, f"{where}: the prompt's function has only a docstring"
        assert ast.get_docstring(function), where
        main = _function(problem["reference_main"], problem["entry_point"])
        assert _arg_names(function) == _arg_names(main), where
        assert re.search(r"\baux\b", problem["prompt"]) is None, f"{where}: prompt names aux"
        examples = _examples(ast.get_docstring(function) or "")
        assert examples, f"{where}: no >>> example"
        for expression, output in examples:
            assert expression.startswith(problem["entry_point"] + "("), (where, expression)
            ast.literal_eval(output)


def test_aux_signature_and_description() -> None:
    for problem in PROBLEMS:
        where = problem["task_id"]
        signature = problem["aux_signature"]
        assert re.fullmatch(r"def aux\(.*\)( -> .+)?:", signature), where
        stub = ast.parse(signature + "\n    pass").body[0]
        assert isinstance(stub, ast.FunctionDef), where
        assert _arg_names(stub) == _arg_names(_function(problem["reference_aux"], "aux")), where
        description = problem["aux_description"]
        # It must fit inside a triple-quoted docstring as it is.
        assert '"""' not in description and "\\" not in description, where
        examples = _examples(description)
        assert examples, f"{where}: no >>> example for aux"
        for expression, output in examples:
            assert expression.startswith("aux("), (where, expression)
            ast.literal_eval(output)


def test_reference_code_shape() -> None:
    for problem in PROBLEMS:
        where = problem["task_id"]
        for field, name in (("reference_aux", "aux"), ("reference_main", problem["entry_point"])):
            module = ast.parse(problem[field])
            assert len(module.body) == 1, f"{where}: {field} holds exactly one def"
            assert isinstance(module.body[0], ast.FunctionDef) and module.body[0].name == name
            assert not any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(module)), (
                f"{where}: imports belong in the prompt"
            )
            returns = [n for n in ast.walk(module.body[0]) if isinstance(n, ast.Return)]
            assert any(r.value is not None for r in returns), f"{where}: {name} returns nothing"


def test_reference_main_really_uses_aux() -> None:
    for problem in PROBLEMS:
        where = problem["task_id"]
        main = _function(problem["reference_main"], problem["entry_point"])
        assert any(_calls_aux(node) for node in ast.walk(main)), f"{where}: main never calls aux"
        discarded = [
            node for node in ast.walk(main) if isinstance(node, ast.Expr) and _calls_aux(node.value)
        ]
        assert not discarded, f"{where}: main ignores the result of aux"
        statements = main.body
        if statements and ast.get_docstring(main) is not None:
            statements = statements[1:]
        thin = (
            len(statements) == 1
            and isinstance(statements[0], ast.Return)
            and statements[0].value is not None
            and _calls_aux(statements[0].value)
        )
        assert not thin, f"{where}: main is a thin wrapper around aux"


# ---- checks that run the references in a child process ---------------------------------------


def test_every_reference_passes_all_its_tests(outcomes: dict) -> None:
    failures = []
    for problem in PROBLEMS:
        result = outcomes[problem["task_id"]]
        if "setup_error" in result:
            failures.append((problem["task_id"], result["setup_error"]))
            continue
        for test, outcome in zip(problem["tests"], result["reference"], strict=True):
            if not outcome["ok"] or not _strictly_equal(outcome["value"], test["expected"]):
                failures.append((problem["task_id"], test["call"], outcome))
    assert not failures, failures[:10]


def test_docstring_examples_agree_with_the_references(outcomes: dict) -> None:
    failures = []
    for problem in PROBLEMS:
        expected = [
            output
            for text in (problem["prompt"], problem["aux_description"])
            for _, output in _examples(text)
        ]
        results = outcomes[problem["task_id"]]["examples"]
        for output, outcome in zip(expected, results, strict=True):
            want = ast.literal_eval(output)
            got = ast.literal_eval(outcome["value"]) if outcome["ok"] else outcome
            if got != want or type(got) is not type(want):
                failures.append((problem["task_id"], output, outcome))
    assert not failures, failures[:10]


@pytest.mark.parametrize("mutant", ["constant", "aux_none"])
def test_broken_solutions_fail_at_least_one_test(outcomes: dict, mutant: str) -> None:
    """`constant`: main returns the first test's expected value for every call.
    `aux_none`: the reference main with a helper that returns None."""
    survivors = []
    for problem in PROBLEMS:
        ran = outcomes[problem["task_id"]][mutant]
        expected = [test["expected"] for test in problem["tests"]]
        failed = any(not o["ok"] or o["value"] != e for o, e in zip(ran, expected))
        if not failed:
            survivors.append(problem["task_id"])
    assert not survivors, f"{mutant} passes every test of {survivors}"


def test_references_are_fast(outcomes: dict) -> None:
    slow = {
        problem["task_id"]: round(outcomes[problem["task_id"]]["seconds"], 3)
        for problem in PROBLEMS
        if outcomes[problem["task_id"]]["seconds"] > PROBLEM_BUDGET_S
    }
    assert not slow, slow


def test_results_do_not_depend_on_the_hash_seed(outcomes: dict, tmp_path: Path) -> None:
    again = _run([_job(p) for p in PROBLEMS], hash_seed="4242", mutants=False, workdir=tmp_path)
    for problem in PROBLEMS:
        first = [o.get("value") for o in outcomes[problem["task_id"]]["reference"]]
        second = [o.get("value") for o in again[problem["task_id"]]["reference"]]
        assert first == second, problem["task_id"]


def test_runner_catches_wrong_answers_errors_and_hangs(tmp_path: Path) -> None:
    """The harness itself: a wrong value, an exception, a non-JSON value and a hang are failures."""
    job = {
        "task_id": "Probe/0",
        "entry_point": "probe",
        "prompt": "def probe(x):\n    'probe'\n",
        "aux": "def aux(x):\n    return x\n",
        "main": (
            "def probe(x):\n"
            "    if x == 'hang':\n"
            "        while True:\n"
            "            pass\n"
            "    if x == 'set':\n"
            "        return {aux(1)}\n"
            "    return 1 // aux(x)\n"
        ),
        "calls": ["probe(1)", "probe(2)", "probe(0)", "probe('set')", "probe('hang')"],
        "expected": [1, 1, 0, [1], None],
        "examples": [],
    }
    result = _run([job], hash_seed="0", mutants=False, workdir=tmp_path)["Probe/0"]
    reference = result["reference"]
    assert reference[0] == {"ok": True, "value": 1}
    assert reference[1]["ok"] and not _strictly_equal(reference[1]["value"], 1)
    assert reference[2]["error"].startswith("ZeroDivisionError")
    assert reference[3]["error"].startswith("TypeError")
    assert reference[4]["error"].startswith("CallTimeout")
