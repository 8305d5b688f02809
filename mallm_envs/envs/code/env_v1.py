"""Code pair-writing, v1: the return pays for solving, frozen tests, feedback without payload.

| | |
|---|---|
| ids | ``CodePair-v1`` (HumanEval), ``CoopCode-v1`` (the CoopCode set); single-agent: ``CodeSolo-v1``, ``CoopCodeSolo-v1`` |
| agents | ``helper``, ``main`` (single-agent ids: ``coder``) |
| API | PettingZoo AEC (``mallm_envs.make``) and Parallel (``mallm_envs.make_parallel``) |
| observation | ``{"text": str, "turn": int}``: the problem, the agent's job, feedback on the last turn |
| action | text holding Python code (the first fenced ``python`` block, else the whole text) |
| reward | team; a program's score: structure 1.0, syntax 0.5, tests 1.0, cooperation 1.5 x tests passed (max 4.0); per turn the change in score, so the return is the last program's score |
| max turns | 1 (argument ``max_turns``); ends early when every test passes |

Description
-----------
The same task, roles, schedules, data, prompts' layout and arguments as v0 (see
:mod:`mallm_envs.envs.code.env`, whose docstring describes the task sets, the
observation, the actions and the time limits); three things differ, and each changes what
a score can feel, hence the new ids. The v0 reward is the paper's and stays registered.

1. The reward pays for solving (the v0 return summed the turns and a solved episode ended,
   so over 3 turns a stub passing 1 of 8 tests earned 9.375 and the reference solution
   4.0; one passing test unlocked the whole cooperation credit).
2. HumanEval tests whose expected side the test computes at run time (HumanEval/33, /38,
   /44, /50, /53, /151 compare two computed values; /2, /4, /32 compute the comparison
   around the program's result) are graded from frozen checks: literal calls, the judge
   holding every expected value (see :mod:`mallm_envs.envs.code.freeze`). So are six
   tasks whose calls take expressions such as ``3 * 19`` (/16, /25, /31, /75, /90, /108;
   nothing leaked there, but now every value a run reports is a call on literals): 15
   tasks in all, with the same tests and test counts. In v0 a program could walk ``sys._getframe()`` up
   to the test and read or rewrite those values (a ``decode_cyclic`` that decodes nothing
   passed HumanEval/38).
3. The feedback names an exception's class, never its message: a message of a "safe"
   shape (``f() takes 104101 positional arguments``, ``name 'x_...' is not defined``)
   could carry hidden test inputs out, a few dozen bytes per failing test, to the next
   turn's prompt.

Observation
-----------
As v0, except: the reward summary says how the episode is paid, the result of a turn
gives its score and its reward (``Result of turn 1: score 2.13 of 4.00 (reward +2.13)``),
and a test that raised shows ``raised TypeError`` (the built-in class's name) or ``raised
an exception of a class defined by the program``, with no message. Hidden tests never
appear. What a program can still signal to the next turn is each test's status and, for
an exception, which of Python's built-in exception classes it was (about 6 bits per
failing test; the pass/fail bit is the task itself).

Actions and invalid actions
---------------------------
As v0: any text; the code is the first fenced ``python`` (or untagged) block, else the
whole text; top-level statements other than imports, definitions and assignments are
dropped with a note; text the core refuses or with no code is invalid (empty code, reason
in ``infos[agent]["invalid_reason"]``).

Rewards
-------
The *score* of a program is the paper's gated levels, with the cooperation credit scaled
by the fraction of tests passed (``f = passed / total``):

============================  ============  ===========================================
component                     value         paid when
============================  ============  ===========================================
``structure_aux``             0.4           the helper's code defines ``aux`` with a
                                            ``return <value>``
``structure_main``            0.6           the main code defines the entry point with a
                                            ``return <value>``; **required**, else stop
``syntax``                    0.5           the combined program compiles; else stop
``tests``                     0-1           ``f``
``coop_calls_aux``            0.5 x f       ``aux`` is defined and the entry point uses it
``coop_not_wrapper``          1.0 x f       ... and is more than a thin wrapper around it
``coop_ignored_result``       -0.5 x f      ... and calls ``aux(...)`` as a bare statement
``previous_score``            -(last score) the score of the previous turn's program
                                            (0 on the first turn)
============================  ============  ===========================================

A turn's reward is its program's score minus the previous turn's score (the sum of the
components above), so an episode's return is the score of its *last* program: turns do
not add up. ``infos[agent]["score"]`` is the turn's score.

Why this choice rather than paying a solved episode the remaining turns' maximum: with the
final score as the return, playing more turns is worth nothing by itself, the return does
not depend on ``max_turns`` (boards and training runs with different horizons compare), a
solved episode's return is the solving program's score whatever turn it came in, and
per-turn rewards stay dense (each turn's improvement) for multi-turn MAGRPO, whose
discounted returns with gamma 1 telescope to the last score. Guarantees:

* at fixed structure and cooperation, more passing tests never lower the score;
* a program that passes every test and really uses ``aux`` scores 4.0, and every program
  that fails a test scores less (at most ``4 - 2.5 / total``); so a solved episode with a
  cooperative program returns the maximum and no sequence of non-solving turns reaches it;
* a stub that passes 1 of ``total`` tests earns ``1.5 + 2.5 / total`` (CoopCode/0: 1.81),
  whatever the number of turns, below any program of the same structure passing more.

A program that solves the task without using ``aux`` scores 2.5 (cooperation is the
paper's point and stays worth 1.5); it still ends the episode.

Episode end
-----------
Terminated when every test passes; truncated after ``max_turns`` turns.

Arguments
---------
As v0: ``task_set``, ``split``, ``schedule`` (pair ids), ``max_turns``,
``time_limit_scale``, ``render_mode``; ``reset(options={"task_id": ...})``.
``env.unwrapped.data_hash`` covers the task data and the frozen tests.

Version history
---------------
* v1: the return is the last program's score (per-turn reward: the change in score);
  cooperation credit scaled by the fraction of tests passed; HumanEval tests with
  run-time expected values frozen to literal checks (15 tasks; HumanEval/32 keeps the 74
  of its 100 polynomials that have one real root); exception messages left out of the
  feedback.
* v0: first version (:mod:`mallm_envs.envs.code.env`; the paper's reward).
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from mallm_envs.envs.code import freeze, grading, rules, tasks
from mallm_envs.envs.code.env import CodeEnv, CodePairEnv, CodeSoloEnv, TurnGrade

REWARD_SUMMARY_V1 = (
    "Scoring (shared by the team, at most 4.0): `aux` defined 0.4, `{entry}` defined 0.6, "
    "the program compiles 0.5, hidden unit tests up to 1.0, `{entry}` really using `aux` "
    "up to 1.5 times the fraction of tests passed. The team's total is the score of its "
    "last program: each turn pays the change in score."
)


class _V1:
    """The v1 behaviour, mixed into the v0 pair and solo envs (see the module docstring)."""

    reward_summary: ClassVar[str] = REWARD_SUMMARY_V1
    grades: list[TurnGrade]
    task: tasks.CodeTask
    task_set: str
    time_limit_scale: float

    @property
    def data_hash(self) -> str:
        payload = f"{tasks.data_hash(self.task_set)}:{freeze.frozen_hash()}"
        return hashlib.sha256(payload.encode("ascii")).hexdigest()[:16]

    def _test_total(self) -> int:
        return grading.test_count_v1(self.task.task_set, self.task.task_id)

    def _run_tests(self, program: str) -> grading.TestReport:
        return grading.run_tests_v1(self.task, program, self.time_limit_scale)

    def _score(self, analysis: rules.Analysis, passed: int, total: int) -> rules.Score:
        return rules.score_v1(analysis, passed, total)

    def _previous_score(self) -> float:
        return self.grades[-1].score.reward if self.grades else 0.0

    def _turn_reward(self, grade: TurnGrade) -> tuple[float, dict[str, float]]:
        previous = self._previous_score()
        components = {**grade.score.components, "previous_score": -previous if previous else 0.0}
        return round(grade.score.reward - previous, 12), components

    def _extra_info(self, grade: TurnGrade) -> dict[str, Any]:
        return {"score": grade.score.reward}

    def _result_line(self, grade: TurnGrade, number: int) -> str:
        earlier = self.grades[number - 2].score.reward if number >= 2 else 0.0
        return (
            f"Result of turn {number}: score {grade.score.reward:.2f} of "
            f"{rules.MAX_REWARD:.2f} (reward {grade.score.reward - earlier:+.2f})."
        )


class CodePairEnvV1(_V1, CodePairEnv):
    """A helper and a main author write one program; v1 reward, tests and feedback."""

    metadata: ClassVar[dict[str, Any]] = {**CodeEnv.metadata, "name": "code_pair_v1"}


class CodeSoloEnvV1(_V1, CodeSoloEnv):
    """One coder writes ``aux`` and the entry point; v1 reward, tests and feedback."""

    metadata: ClassVar[dict[str, Any]] = {**CodeEnv.metadata, "name": "code_solo_v1"}
