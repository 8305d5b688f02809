"""The scripted reference chef: greedy macros carried out by the breadth-first planner.

``GreedyChef(env, agent)`` plays either kitchen env (text or numeric): it reads the env's
current :class:`~mallm_envs.envs.kitchen.rules.KitchenState` and answers with an action
name (text env) or an action index (numeric env). A pair of them delivers soups on every
classic layout; see ``tests/test_kitchen_agents.py`` for the soups per 400 steps.
"""

from __future__ import annotations

from typing import Any

from mallm_envs.envs.kitchen.planner import GreedyPolicy
from mallm_envs.envs.kitchen.rules import ACTION_NAMES


class GreedyChef:
    """Scripted chef (see the module docstring). Deterministic for a given seed."""

    def __init__(self, env: Any, agent: str, seed: int | None = 0) -> None:
        base = env.unwrapped
        self.env = base
        self.agent = agent
        self.chef = list(base.possible_agents).index(agent)
        self.policy = GreedyPolicy(base.kitchen, self.chef, seed)
        self.text = not hasattr(base, "observation_mode")

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def act(self, observation: Any = None, info: Any = None) -> Any:
        action = self.policy.act(self.env.game_state)
        return ACTION_NAMES[action] if self.text else action

    def describe(self) -> dict[str, Any]:
        return {"class": "GreedyChef", "chef": self.chef}
