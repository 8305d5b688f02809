"""The v1 code envs: a reward that pays for solving, frozen tests, feedback without payload.

Each part here is shown to fail on v0 (the same check, run on the v0 id, finds the
weakness) and to hold on v1: the multi-turn reward comparison (a stub, a partial solution
and the reference over 1-3 turns), programs that read or rewrite the test's own values
through its frames, and a program that spells hidden test inputs into exception messages
to read them back in the next turn. Run with ``-s`` to see the comparison table.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from importlib import resources
from typing import Any

import pytest

import mallm_envs
import mallm_envs.envs.code  # registers the code ids
from mallm_envs.envs.code import freeze, grading, rules
from mallm_envs.envs.code.agents import IDENTITY_AUX, reference_code
from mallm_envs.envs.code.tasks import load_tasks

V1_IDS = ("CodePair-v1", "CoopCode-v1", "CodeSolo-v1", "CoopCodeSolo-v1")


def fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def play(env_id: str, task_id: str, actions: dict[str, str], turns: int) -> tuple[float, Any]:
    """Submit the same actions every turn for up to ``turns`` turns; the episode's return."""
    env = mallm_envs.make(env_id, max_turns=turns)
    env.reset(seed=0, options={"task_id": task_id})
    total = 0.0
    first = env.possible_agents[0]
    for _ in range(turns):
        for agent in env.possible_agents:
            env.step(actions[agent])
        total += env.rewards[first]
        if env.terminations[first] or env.truncations[first]:
            break
    return round(total, 6), env


# --------------------------------------------------------------------------- reward

TASK = "CoopCode/0"  # longest_palindrome_word, 8 tests
STUB_MAIN = (  # calls aux, uses its result, passes test 1 of 8 only
    "def longest_palindrome_word(words):\n"
    "    if aux('kayak'):\n"
    "        return 'kayak'\n"
    "    return 'none'\n"
)
PARTIAL_MAIN = (  # the reference with >= for >: the last longest palindrome; 6 of 8
    "def longest_palindrome_word(words):\n"
    "    best = ''\n"
    "    for word in words:\n"
    "        if aux(word) and len(word) >= len(best):\n"
    "            best = word\n"
    "    return best\n"
)


def comparison() -> dict[tuple[str, str, int], tuple[float, int]]:
    """(version, program, turns) -> (return, tests passed) on CoopCode/0."""
    task = load_tasks("coop")[TASK]
    mains = {
        "stub": STUB_MAIN,
        "partial": PARTIAL_MAIN,
        "reference": reference_code(task, "main"),
    }
    table = {}
    for version in ("v0", "v1"):
        for name, main in mains.items():
            for turns in (1, 2, 3):
                actions = {"helper": fenced(task.reference_aux), "main": fenced(main)}
                result, env = play(f"CoopCode-{version}", TASK, actions, turns)
                table[version, name, turns] = (result, env.infos["main"]["tests"]["passed"])
    return table


def format_table(table: dict[tuple[str, str, int], tuple[float, int]]) -> str:
    lines = [
        "| version | program (tests passed of 8) | 1 turn | 2 turns | 3 turns |",
        "|---|---|---|---|---|",
    ]
    for version in ("v0", "v1"):
        for name in ("stub", "partial", "reference"):
            passed = table[version, name, 1][1]
            row = [f"{table[version, name, t][0]:.4f}" for t in (1, 2, 3)]
            lines.append(f"| {version} | {name} ({passed}/8) | " + " | ".join(row) + " |")
    return "\n".join(lines)


def test_v1_reference_scores_highest_and_a_stub_never_outranks_a_partial_solution() -> None:
    table = comparison()
    print("\n" + format_table(table))
    assert {table[v, n, 1][1] for v in ("v0", "v1") for n in ("stub",)} == {1}
    assert table["v1", "partial", 1][1] == 6 and table["v1", "reference", 1][1] == 8
    for turns in (1, 2, 3):
        stub, partial, reference = (
            table["v1", n, turns][0] for n in ("stub", "partial", "reference")
        )
        assert reference > partial > stub, (turns, stub, partial, reference)
        assert reference == rules.MAX_REWARD
    # v1's return does not grow with the turns played
    for name in ("stub", "partial", "reference"):
        assert len({table["v1", name, t][0] for t in (1, 2, 3)}) == 1
    # the v0 weakness this fixes: over 2-3 turns the stub outranks the reference
    assert table["v0", "stub", 3][0] == 9.375 and table["v0", "reference", 3][0] == 4.0
    assert table["v0", "stub", 2][0] > table["v0", "reference", 2][0]


def test_v1_step_rewards_are_the_change_in_score_and_sum_to_the_last_score() -> None:
    task = load_tasks("coop")[TASK]
    env = mallm_envs.make("CoopCode-v1", max_turns=3)
    env.reset(seed=0, options={"task_id": TASK})
    rewards, scores = [], []
    for main in (PARTIAL_MAIN, STUB_MAIN, reference_code(task, "main")):
        env.step(fenced(task.reference_aux))
        env.step(fenced(main))
        rewards.append(env.rewards["helper"])
        info = env.infos["helper"]
        scores.append(info["score"])
        assert sum(info["reward_components"].values()) == pytest.approx(rewards[-1])
    assert scores == [3.375, 1.8125, 4.0]
    assert rewards == pytest.approx([3.375, 1.8125 - 3.375, 4.0 - 1.8125])
    assert sum(rewards) == pytest.approx(scores[-1]) and env.terminations["helper"]


def test_v1_cooperation_credit_scales_with_the_tests_passed() -> None:
    analysis = rules.analyze(
        "", "longest_palindrome_word", load_tasks("coop")[TASK].reference_aux, PARTIAL_MAIN
    )
    for passed in range(9):
        v0, v1 = rules.score(analysis, passed, 8), rules.score_v1(analysis, passed, 8)
        coop = v1.components["coop_calls_aux"] + v1.components["coop_not_wrapper"]
        assert coop == pytest.approx(1.5 * passed / 8)
        assert v1.reward <= v0.reward
    assert rules.score_v1(analysis, 7, 8).reward < rules.score_v1(analysis, 8, 8).reward == 4.0


# --------------------------------------------------------------------------- frame exploits

# Each reads or rewrites a value the test computes next to the program (see freeze.py).
FRAME_EXPLOITS = {
    # return the assert's other side, read from the test's frame
    "HumanEval/38": (
        "import sys\n\n"
        "def decode_cyclic(s: str):\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        seen = frame.f_locals\n"
        "        if seen.get('encoded_str') == s and isinstance(seen.get('str'), type(s)):\n"
        "            return aux(seen['str'])\n"
        "        frame = frame.f_back\n"
        "    return aux(s)\n"
    ),
    "HumanEval/50": (
        "import sys\n\n"
        "def decode_shift(s: str):\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        seen = frame.f_locals\n"
        "        if seen.get('encoded_str') == s and isinstance(seen.get('str'), type(s)):\n"
        "            return aux(seen['str'])\n"
        "        frame = frame.f_back\n"
        "    return aux(s)\n"
    ),
    # return the expected value from the constants of the assert's own code
    "HumanEval/4": (
        "import sys\n\n"
        "def mean_absolute_deviation(numbers):\n"
        "    numbers = aux(numbers)\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        floats = [c for c in frame.f_code.co_consts if type(c) is float]\n"
        "        if floats:\n"
        "            return floats[0]\n"
        "        frame = frame.f_back\n"
        "    return 0.0\n"
    ),
    # zero the test's own coefficient list, so that any answer is a root
    "HumanEval/32": (
        "import sys\n\n"
        "def find_zero(xs: list):\n"
        "    xs = aux(xs)\n"
        "    frame = sys._getframe(1)\n"
        "    while frame is not None:\n"
        "        coeffs = frame.f_locals.get('coeffs')\n"
        "        if isinstance(coeffs, list) and coeffs == xs:\n"
        "            coeffs[:] = [0] * len(coeffs)\n"
        "            return 0.0\n"
        "        frame = frame.f_back\n"
        "    return 0.0\n"
    ),
    # compare the program with itself: the test's other side calls the program's function
    "HumanEval/33": ("def sort_third(l: list):\n    return aux(list(l)) + [0]\n"),
}


@pytest.mark.parametrize("task_id", sorted(FRAME_EXPLOITS))
def test_frame_exploit_succeeds_on_v0_and_fails_on_v1(task_id: str) -> None:
    action = fenced(IDENTITY_AUX + "\n\n" + FRAME_EXPLOITS[task_id])
    outcomes = {}
    for version in ("v0", "v1"):
        env = mallm_envs.make(f"CodeSolo-{version}")
        env.reset(seed=0, options={"task_id": task_id})
        env.step(action)
        outcomes[version] = env.infos["coder"]
    if task_id == "HumanEval/33":  # the three self-comparisons pass on v0, nothing on v1
        assert outcomes["v0"]["tests"]["passed"] == 3
    else:
        assert outcomes["v0"]["success"] is True, outcomes["v0"]
    assert outcomes["v1"]["success"] is False
    assert outcomes["v1"]["tests"]["passed"] == 0, outcomes["v1"]


def test_v1_suites_hold_no_value_the_run_computes_and_keep_the_test_counts() -> None:
    frozen = freeze.frozen_tests()
    assert len(frozen) == 15 and set(FRAME_EXPLOITS) <= set(frozen)
    for task_set in ("humaneval", "coop"):
        for task_id in load_tasks(task_set):
            suite, groups = grading.test_suite_v1(task_set, task_id)
            assert not freeze.unsafe_units(suite.plan), task_id
            assert grading.test_count_v1(task_set, task_id) == grading.test_count(task_set, task_id)
            assert list(groups) == sorted(groups)
    # the frozen expected values never reach the program's process
    suite, _ = grading.test_suite_v1("humaneval", "HumanEval/38")
    wire = json.dumps(suite.plan.wire)
    expected = [ast.literal_eval(c["expected"]) for c in frozen["HumanEval/38"][0]]
    assert len(expected) == 100 and not any(text in wire for text in expected)
    # the v0 suites of the frozen tasks did hold such values
    assert all(freeze.unsafe_units(grading.test_suite("humaneval", t).plan) for t in frozen)


def test_reference_solutions_pass_every_frozen_task_on_v1() -> None:
    tasks = load_tasks("humaneval")
    for task_id in freeze.frozen_tests():
        env = mallm_envs.make("CodeSolo-v1")
        env.reset(seed=0, options={"task_id": task_id})
        env.step(fenced(reference_code(tasks[task_id], "coder")))
        info = env.infos["coder"]
        assert info["success"] and env.rewards["coder"] == 4.0, (task_id, info["test_statuses"])


def test_frozen_data_is_pinned_by_its_hash_and_rebuilds_identically(monkeypatch) -> None:
    raw = resources.files("mallm_envs.envs.code").joinpath(freeze.FROZEN_FILE).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == freeze.FROZEN_SHA256
    assert freeze.build() == raw  # the trusted build is deterministic
    envs = [mallm_envs.make(env_id) for env_id in V1_IDS]
    assert all(len(env.unwrapped.data_hash) == 16 for env in envs)
    assert envs[0].unwrapped.data_hash != mallm_envs.make("CodePair-v0").unwrapped.data_hash
    freeze.frozen_tests.cache_clear()
    monkeypatch.setattr(freeze, "FROZEN_SHA256", "0" * 64)
    try:
        with pytest.raises(freeze.FrozenTestsError, match="new version"):
            freeze.frozen_tests()
    finally:
        freeze.frozen_tests.cache_clear()


# --------------------------------------------------------------------------- feedback leaks

# Spells the repr of its argument into the digit run of a TypeError message that v0's
# feedback shows ("takes <N> positional arguments but 1 was given").
EXFILTRATE_MAIN = (
    "def longest_palindrome_word(words):\n"
    "    number = int.from_bytes(repr(words).encode(), 'big')\n"
    "    if aux(''):\n"
    "        raise TypeError(\n"
    "            f'longest_palindrome_word() takes {number} positional arguments but 1 was given'\n"
    "        )\n"
    "    return ''\n"
)


def recovered_inputs(text: str) -> set[str]:
    found = set()
    for digits in re.findall(r"takes (\d+) positional", text):
        number = int(digits)
        data = number.to_bytes((number.bit_length() + 7) // 8, "big")
        found.add(data.decode("utf-8", "replace"))
    return found


@pytest.mark.parametrize("env_id", ["CoopCode-v0", "CoopCode-v1"])
def test_hidden_inputs_spelled_into_exception_messages_come_back_only_on_v0(env_id: str) -> None:
    task = load_tasks("coop")[TASK]
    hidden = {
        repr(ast.literal_eval(ast.parse(t.source, mode="eval").body.args[0])) for t in task.tests
    }
    env = mallm_envs.make(env_id, max_turns=2)
    env.reset(seed=0, options={"task_id": TASK})
    env.step(fenced(task.reference_aux))
    env.step(fenced(EXFILTRATE_MAIN))
    text = env.observe("main")["text"] + env.observe("helper")["text"]
    got = recovered_inputs(text)
    if env_id.endswith("v0"):
        assert got == hidden and len(hidden) == 8  # the attack works on v0 ...
    else:
        assert got == set()  # ... and recovers nothing on v1
        secret = {h for h in hidden if len(h) > 4 and h not in task.prompt}  # not the example
        assert secret and not any(h in text for h in secret)
        lines = [line for line in text.splitlines() if re.match(r"  test \d+: ", line)]
        assert len(lines) == 16  # 8 tests, in each agent's feedback
        assert all(line.endswith(": error: raised TypeError") for line in lines), lines


def test_v1_reasons_never_carry_an_exception_message() -> None:
    from mallm_envs.sandbox import Cause, Status, TestResult

    for message in ("name 'x_6b61796b' is not defined", "division by zero", "f() takes 7"):
        result = TestResult(
            "t",
            Status.ERROR,
            "raised NameError: " + message,
            cause=Cause.EXCEPTION,
            exception_type="NameError",
            builtin_exception=True,
            exception_message=message,
        )
        assert grading.safe_reason_v1(result) == "raised NameError"


# A root finder other than the canonical bisection, stopping as soon as |poly| < 5e-5:
# its roots differ from the canonical ones, yet the frozen HumanEval/32 accepts them.
NEWTON_FIND_ZERO = (
    "def find_zero(xs: list):\n"
    "    xs = aux(xs)\n"
    "    def f(x):\n"
    "        return sum(c * x ** i for i, c in enumerate(xs))\n"
    "    def df(x):\n"
    "        return sum(i * c * x ** (i - 1) for i, c in enumerate(xs) if i)\n"
    "    x = 0.0\n"
    "    for _ in range(10000):\n"
    "        fx = f(x)\n"
    "        if abs(fx) < 5e-5:\n"
    "            return x\n"
    "        d = df(x)\n"
    "        x = x - fx / d if d else x + 0.5\n"
    "    return x\n"
)


def test_frozen_root_check_accepts_another_correct_root_finder_and_rejects_a_wrong_one() -> None:
    for code, solves in (
        (NEWTON_FIND_ZERO, True),
        (NEWTON_FIND_ZERO.replace("5e-5", "5e-3"), False),
    ):
        for version in ("v0", "v1"):
            env = mallm_envs.make(f"CodeSolo-{version}")
            env.reset(seed=0, options={"task_id": "HumanEval/32"})
            env.step(fenced(IDENTITY_AUX + "\n\n" + code))
            assert env.infos["coder"]["success"] is solves, (version, solves)
    checks = freeze.frozen_tests()["HumanEval/32"][0]
    assert len(checks) == 74 and all(c["compare"] == "isclose" for c in checks)
