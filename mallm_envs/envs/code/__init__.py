"""Code pair-writing: the paper's coding task (see :mod:`mallm_envs.envs.code.env`).

Modules: ``tasks`` (HumanEval and CoopCode data), ``freeze`` (frozen HumanEval tests), ``rules`` (code extraction, program
assembly, the gated reward; pure), ``grading`` (the sandbox and the agent-safe view of its
verdicts), ``env`` and ``env_v1`` (the PettingZoo adapters of v0 and v1), ``scripted`` (the
scripted reference coder).
"""

from mallm_envs.registration import register

register(
    id="CodePair-v0",
    entry_point="mallm_envs.envs.code.env:CodePairEnv",
    kwargs={
        "task_set": "humaneval",
        "split": "train",
        "schedule": "simultaneous",
        "max_turns": 1,
        "time_limit_scale": 1.0,
    },
    description="A helper and a main author write one Python program for a HumanEval problem; hidden unit tests grade it.",
    agents=("helper", "main"),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
    timing_sensitive=True,
    time_limit_scale_kwarg="time_limit_scale",
)

register(
    id="CoopCode-v0",
    entry_point="mallm_envs.envs.code.env:CodePairEnv",
    kwargs={
        "task_set": "coop",
        "split": "train",
        "schedule": "simultaneous",
        "max_turns": 1,
        "time_limit_scale": 1.0,
    },
    description="A helper and a main author write one Python program for a problem that splits into helper + main (CoopCode set).",
    agents=("helper", "main"),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
    timing_sensitive=True,
    time_limit_scale_kwarg="time_limit_scale",
)

register(
    id="CodeSolo-v0",
    entry_point="mallm_envs.envs.code.env:CodeSoloEnv",
    kwargs={"task_set": "humaneval", "split": "train", "max_turns": 1, "time_limit_scale": 1.0},
    description="One coder writes both the helper and the main function of a HumanEval problem (single-model baseline).",
    agents=("coder",),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
    timing_sensitive=True,
    time_limit_scale_kwarg="time_limit_scale",
)

register(
    id="CoopCodeSolo-v0",
    entry_point="mallm_envs.envs.code.env:CodeSoloEnv",
    kwargs={"task_set": "coop", "split": "train", "max_turns": 1, "time_limit_scale": 1.0},
    description="One coder writes both the helper and the main function of a CoopCode problem (single-model baseline).",
    agents=("coder",),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
    timing_sensitive=True,
    time_limit_scale_kwarg="time_limit_scale",
)

# v1: the return is the last program's score, cooperation credit scaled by the tests passed,
# HumanEval tests with run-time expected values frozen, no exception messages in the
# feedback (see mallm_envs/envs/code/env_v1.py).

register(
    id="CodePair-v1",
    entry_point="mallm_envs.envs.code.env_v1:CodePairEnvV1",
    kwargs={
        "task_set": "humaneval",
        "split": "train",
        "schedule": "simultaneous",
        "max_turns": 1,
        "time_limit_scale": 1.0,
    },
    description="CodePair with a reward that pays for solving, frozen tests and feedback without payload (v1).",
    agents=("helper", "main"),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
    timing_sensitive=True,
    time_limit_scale_kwarg="time_limit_scale",
)

register(
    id="CoopCode-v1",
    entry_point="mallm_envs.envs.code.env_v1:CodePairEnvV1",
    kwargs={
        "task_set": "coop",
        "split": "train",
        "schedule": "simultaneous",
        "max_turns": 1,
        "time_limit_scale": 1.0,
    },
    description="CoopCode with a reward that pays for solving and feedback without payload (v1).",
    agents=("helper", "main"),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
    timing_sensitive=True,
    time_limit_scale_kwarg="time_limit_scale",
)

register(
    id="CodeSolo-v1",
    entry_point="mallm_envs.envs.code.env_v1:CodeSoloEnvV1",
    kwargs={"task_set": "humaneval", "split": "train", "max_turns": 1, "time_limit_scale": 1.0},
    description="CodeSolo with a reward that pays for solving, frozen tests and feedback without payload (v1).",
    agents=("coder",),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
    timing_sensitive=True,
    time_limit_scale_kwarg="time_limit_scale",
)

register(
    id="CoopCodeSolo-v1",
    entry_point="mallm_envs.envs.code.env_v1:CodeSoloEnvV1",
    kwargs={"task_set": "coop", "split": "train", "max_turns": 1, "time_limit_scale": 1.0},
    description="CoopCodeSolo with a reward that pays for solving and feedback without payload (v1).",
    agents=("coder",),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
    timing_sensitive=True,
    time_limit_scale_kwarg="time_limit_scale",
)
