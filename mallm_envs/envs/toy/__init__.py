"""Small environments for smoke tests, tutorials and trainer checks."""

from mallm_envs.registration import register

register(
    id="CommonWord-v0",
    entry_point="mallm_envs.envs.toy.common_word:CommonWordEnv",
    kwargs={"list_size": 4, "shuffle": False, "max_turns": 2, "schedule": "simultaneous"},
    description="Two agents must answer with the same word from a shared list (coordination smoke test).",
    agents=("agent_0", "agent_1"),
    family="toy",
    scripted_agent="mallm_envs.envs.toy.common_word:ConventionAgent",
)

register(
    id="CommonWord-v1",
    entry_point="mallm_envs.envs.toy.common_word:CommonWordEnv",
    kwargs={"list_size": 16, "shuffle": False, "max_turns": 1, "schedule": "simultaneous"},
    description="CommonWord with 16 words and one turn: a model trained from scratch gets a learning signal (the demo's task).",
    agents=("agent_0", "agent_1"),
    family="toy",
    scripted_agent="mallm_envs.envs.toy.common_word:ConventionAgent",
)
