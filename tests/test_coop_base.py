"""The one turn machine (``core.coop.CoopEnv``) and the one Parallel adapter, for text and
numeric envs alike: same call order, dead steps, rewards and typed errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from mallm_envs.core import CoopTextEnv, TextParallelEnv, TurnResult
from mallm_envs.core.coop import CoopEnv
from mallm_envs.core.errors import (
    ActionTypeError,
    EpisodeOverError,
    NotYourTurnError,
    ResetNeededError,
    UnknownAgentError,
)
from mallm_envs.core.parallel import CoopParallelEnv
from mallm_envs.envs.kitchen.env import KitchenEnv, KitchenNumericEnv, KitchenNumericParallelEnv
from mallm_envs.envs.kitchen.scripted import GreedyChef
from mallm_envs.testing import check_env

from ._envs_for_tests import TargetSumEnv


class CountEnv(CoopEnv):
    """Numeric toy: each agent adds 0-2 to a shared counter; the team scores 1 on reaching
    ``goal`` exactly (terminated), and the horizon is ``max_turns``."""

    metadata = {"name": "count_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(self, max_turns: int = 4, goal: int = 5) -> None:
        super().__init__(agents=("a", "b"), max_turns=max_turns)
        self.goal = goal
        self.observation_spaces = {
            a: spaces.Box(0, 100, shape=(1,), dtype=np.int64) for a in self.possible_agents
        }
        self.action_spaces = {a: spaces.Discrete(3) for a in self.possible_agents}
        self.state_space = spaces.Box(0, 100, shape=(1,), dtype=np.int64)

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        self.count = int(rng.integers(0, 2))

    def _take_action(self, agent: str, action: Any) -> tuple[int, None]:
        if not isinstance(action, (int, np.integer)) or isinstance(action, bool):
            raise ActionTypeError(f"{agent!r} needs an int 0-2, got {type(action).__name__}")
        if not 0 <= int(action) <= 2:
            raise ActionTypeError(f"{agent!r} needs an int 0-2, got {action}")
        return int(action), None

    def _play_turn(self, actions: dict[str, Any]) -> TurnResult:
        self.count += sum(actions.values())
        hit = self.count == self.goal
        return TurnResult(
            reward=1.0 if hit else 0.0, events=(f"count {self.count}",), terminated=hit
        )

    def _observe(self, agent: str) -> np.ndarray:
        return np.array([min(self.count, 100)], dtype=np.int64)

    def _state(self) -> np.ndarray:
        return self._observe("a")


def test_a_numeric_env_on_the_base_meets_the_contract() -> None:
    check_env(CountEnv, parallel_env=lambda: CoopParallelEnv(CountEnv()))


def test_the_old_adapter_name_is_the_one_adapter() -> None:
    assert TextParallelEnv is CoopParallelEnv
    assert issubclass(CoopTextEnv, CoopEnv) and issubclass(KitchenNumericEnv, CoopEnv)
    assert issubclass(KitchenNumericParallelEnv, CoopParallelEnv)


def test_numeric_turns_rewards_and_infos() -> None:
    env = CountEnv()
    env.reset(seed=0, options={})
    env.count = 0
    env.step(2)
    assert env.agent_selection == "b" and env.rewards == {"a": 0.0, "b": 0.0}
    env.step(1)
    assert env.infos["a"] == {"reward_components": {}, "events": ["count 3"]}
    env.step(1)
    env.step(1)  # 5: the goal
    assert env.rewards == {"a": 1.0, "b": 1.0} and all(env.terminations.values())
    assert env._cumulative_rewards == {"a": 1.0, "b": 1.0}
    assert [record.actions for record in env.history] == [{"a": 2, "b": 1}, {"a": 1, "b": 1}]
    env.step(None)
    env.step(None)
    assert env.agents == []


# Every env on the machine: its AEC factory and an action each agent can take.
ENVS = [
    pytest.param(TargetSumEnv, "1", id="text-core"),
    pytest.param(lambda: KitchenEnv(horizon=3), "stay", id="text-kitchen"),
    pytest.param(lambda: KitchenNumericEnv(horizon=3), 4, id="numeric-kitchen"),
    pytest.param(CountEnv, 0, id="numeric-toy"),
]


@pytest.mark.parametrize(("factory", "action"), ENVS)
def test_every_env_raises_the_same_typed_errors(factory: Any, action: Any) -> None:
    env = factory()
    with pytest.raises(ResetNeededError, match=r"call reset\(\) before using the environment"):
        env.step(action)
    with pytest.raises(ResetNeededError):
        env.observe(env.possible_agents[0])
    with pytest.raises(ResetNeededError):
        env.state()
    env.reset(seed=0)
    with pytest.raises(UnknownAgentError, match="this environment's agents are"):
        env.observe("nobody")
    with pytest.raises(UnknownAgentError):
        env.action_space("nobody")
    with pytest.raises(ActionTypeError):
        env.step(3.5)
    while not (env.terminations[env.agent_selection] or env.truncations[env.agent_selection]):
        env.step(action)
    with pytest.raises(ActionTypeError, match=r"is done; step\(None\) removes it"):
        env.step(action)
    while env.agents:
        env.step(None)
    with pytest.raises(EpisodeOverError, match="the episode is over"):
        env.step(action)


@pytest.mark.parametrize(("factory", "action"), ENVS)
def test_a_parallel_step_that_raises_changes_nothing(factory: Any, action: Any) -> None:
    """Every action is checked before any is taken (the Parallel adapter's promise)."""
    par = CoopParallelEnv(factory())
    par.reset(seed=0)
    first, second = par.possible_agents[:2]
    with pytest.raises(ActionTypeError):
        par.step({first: action, second: 3.5})
    with pytest.raises(NotYourTurnError):
        par.step({first: action})
    with pytest.raises(UnknownAgentError):
        par.step({first: action, second: action, "nobody": action})
    assert par.aec_env.agent_selection == first and par.aec_env._pending == {}
    _, rewards, *_ = par.step(dict.fromkeys(par.agents, action))
    assert set(rewards) == set(par.possible_agents)


def test_parallel_adapter_reads_env_attributes_so_scripted_chefs_play_it() -> None:
    par = KitchenNumericParallelEnv(horizon=40)
    par.reset(seed=0)
    assert par.kitchen is par.aec_env.kitchen and par.observation_mode == "grid"
    with pytest.raises(AttributeError):
        par._pending  # noqa: B018  (private attributes are not forwarded)
    chefs = {a: GreedyChef(par, a) for a in par.possible_agents}
    while par.agents:
        par.step({a: chefs[a].act() for a in par.agents})
    assert par.game_state.timestep == 40


def test_numeric_kitchen_ends_where_the_kitchen_says() -> None:
    """The rules' clock, not only the turn count, truncates (state set up by hand)."""
    env = KitchenNumericEnv(horizon=50)
    env.reset(seed=0)
    env.game_state = env.kitchen.replace(env.game_state, timestep=49)
    env.step(4)
    env.step(4)
    assert all(env.truncations.values()) and not any(env.terminations.values())


def test_steps_without_score_share_a_result_but_never_an_info() -> None:
    env = KitchenNumericEnv(horizon=10)
    env.reset(seed=0)
    env.step(4)
    env.step(4)
    env.infos["chef_0"]["reward_components"]["delivery"] = 99.0
    assert env.infos["chef_1"]["reward_components"]["delivery"] == 0.0
    env.step(4)
    env.step(4)
    assert env.infos["chef_0"]["reward_components"]["delivery"] == 0.0
    assert env.history == []  # the numeric kitchen keeps no turn records
    text = KitchenEnv(horizon=10)
    text.reset(seed=0)
    text.step("stay")
    text.step("stay")
    assert len(text.history) == 1 and text.history[0].actions == {
        "chef_0": "stay",
        "chef_1": "stay",
    }
