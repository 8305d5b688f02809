"""Small cooperative envs used to test the core, including deliberately broken ones."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from mallm_envs.core import CoopTextEnv, TurnResult


class TargetSumEnv(CoopTextEnv):
    """Each agent says an integer; the team scores 1 when they sum to the target.

    The prompt shows partner actions the agent may see (sequential schedule) and the last
    turn's numbers, so tests can check what is visible when.
    """

    metadata = {
        "name": "target_sum_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        *,
        schedule: str = "simultaneous",
        max_turns: int = 3,
        render_mode: str | None = None,
        n_agents: int = 2,
    ) -> None:
        super().__init__(
            agents=tuple(f"agent_{i}" for i in range(n_agents)),
            schedule=schedule,
            max_turns=max_turns,
            max_action_chars=100,
            max_observation_chars=1_000,
            render_mode=render_mode,
        )

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        self.target = int(options.get("target", rng.integers(0, 20)))

    def _prompt(self, agent: str) -> str:
        lines = [f"target {self.target}", f"turn {self.turn}"]
        for record in self.history:
            lines.append(f"last: {dict(record.actions)} -> {record.result.reward}")
        for partner, action in self.visible_actions(agent).items():
            lines.append(f"partner {partner} said {action}")
        return "\n".join(lines)

    def _play_turn(self, actions: dict[str, str | None]) -> TurnResult:
        values: dict[str, int] = {}
        invalid: dict[str, str] = {}
        for agent, action in actions.items():
            if action is None:
                continue
            try:
                values[agent] = int(action.strip())
            except ValueError:
                invalid[agent] = "not an integer"
        hit = len(values) == len(actions) and sum(values.values()) == self.target
        return TurnResult(
            reward=1.0 if hit else 0.0,
            components={"hit": 1.0 if hit else 0.0, "valid": len(values) / len(actions)},
            events=(f"sum {sum(values.values())}",),
            invalid=invalid,
            terminated=hit,
            agent_infos={a: {"success": hit} for a in actions},
        )

    def _state_text(self) -> str:
        return f"target {self.target} turn {self.turn} history {[dict(r.actions) for r in self.history]}"


class GlobalRandomEnv(TargetSumEnv):
    """Broken: draws its target from the global `random` module, so seeds do not fix it."""

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        self.target = random.randrange(10**9)


class CrashOnNulEnv(TargetSumEnv):
    """Broken: bypasses the core's checks and crashes on a NUL byte."""

    def step(self, action: Any) -> None:
        if isinstance(action, str) and "\x00" in action:
            raise ValueError("embedded null byte")
        super().step(action)


class StaleStateEnv(TargetSumEnv):
    """Broken: reset() keeps a counter from earlier episodes in the observation."""

    episodes_started = 0

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        super()._reset_task(rng, options)
        self.episodes_started += 1

    def _prompt(self, agent: str) -> str:
        return super()._prompt(agent) + f"\nepisode {self.episodes_started}"
