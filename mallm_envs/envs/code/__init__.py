"""Code pair-writing: the paper's coding task (see :mod:`mallm_envs.envs.code.env`).

Modules: ``tasks`` (HumanEval and CoopCode data), ``rules`` (code extraction, program
assembly, the gated reward; pure), ``grading`` (the sandbox and the agent-safe view of its
verdicts), ``env`` (the PettingZoo adapters), ``agents`` (the scripted reference coder).
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
)

register(
    id="CodeSolo-v0",
    entry_point="mallm_envs.envs.code.env:CodeSoloEnv",
    kwargs={"task_set": "humaneval", "split": "train", "max_turns": 1, "time_limit_scale": 1.0},
    description="One coder writes both the helper and the main function of a HumanEval problem (single-model baseline).",
    agents=("coder",),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
)

register(
    id="CoopCodeSolo-v0",
    entry_point="mallm_envs.envs.code.env:CodeSoloEnv",
    kwargs={"task_set": "coop", "split": "train", "max_turns": 1, "time_limit_scale": 1.0},
    description="One coder writes both the helper and the main function of a CoopCode problem (single-model baseline).",
    agents=("coder",),
    family="code",
    scripted_agent="mallm_envs.envs.code.agents:ReferenceCoder",
)
