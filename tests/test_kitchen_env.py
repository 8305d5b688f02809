"""The kitchen's PettingZoo envs: conformance, the text interface, numbers, rendering."""

from __future__ import annotations

import numpy as np
import pytest

import mallm_envs.envs.kitchen  # noqa: F401  (registers the kitchen ids)
from mallm_envs.core.errors import (
    ActionTypeError,
    EnvArgumentError,
    EpisodeOverError,
    ResetNeededError,
)
from mallm_envs.envs.kitchen.env import KitchenEnv, KitchenNumericEnv, KitchenNumericParallelEnv
from mallm_envs.registration import make, make_parallel
from mallm_envs.testing import check_env


@pytest.mark.parametrize("env_id", ["Kitchen-v0", "KitchenNumeric-v0"])
def test_registered_ids_pass_the_contract(env_id: str) -> None:
    check_env(env_id, num_cycles=100)


def test_text_variants_pass_the_contract() -> None:
    check_env(
        lambda: make(
            "Kitchen-v0",
            layout="forced_coordination",
            schedule="sequential",
            cook_start="interact",
            horizon=60,
        ),
        num_cycles=50,
    )


def test_numeric_features_pass_the_parallel_api() -> None:
    from pettingzoo.test import parallel_api_test

    parallel_api_test(KitchenNumericParallelEnv(observation="features", horizon=50), num_cycles=60)


def play(env: KitchenEnv, joint: dict[str, str]) -> dict:
    for agent in env.possible_agents:
        env.step(joint[agent])
    return {a: env.infos[a] for a in env.possible_agents}


def test_text_observation_shows_the_kitchen() -> None:
    env = make("Kitchen-v0")
    env.reset(seed=0)
    text = env.observe("chef_0")["text"]
    for needle in [
        "You are chef_0",
        "XXPXX",
        "chef_1: at (3,1) facing up, holding nothing",
        "Pot 1 at (2,0): empty",
        "400 steps left",
        "get onion",
    ]:
        assert needle in text, needle


def test_macros_run_step_by_step_and_finish() -> None:
    env = make("Kitchen-v0")
    env.reset(seed=0)
    infos = play(env, {"chef_0": "Get onion", "chef_1": "stay"})
    assert infos["chef_0"]["invalid_reason"] is None and infos["chef_0"]["plan"] == "get onion"
    for _ in range(10):
        if env.unwrapped.game_state.held[0]:
            break
        infos = play(env, {"chef_0": "continue", "chef_1": "stay"})
    assert env.unwrapped.game_state.held[0] == 1  # an onion
    assert infos["chef_0"]["plan"] is None and "chef_0 took an onion" in infos["chef_0"]["events"]
    for _ in range(10):
        infos = play(env, {"chef_0": "put onion in pot 1", "chef_1": "stay"})
        if infos["chef_0"]["reward_components"]["onion_in_pot"]:
            break
    assert env.unwrapped.game_state.pot_onions == (1,)
    assert "1 onion, not cooking (needs 2 more)" in env.observe("chef_1")["text"]


@pytest.mark.parametrize(
    ("layout", "agent", "action", "reason"),
    [
        ("cramped_room", "chef_0", "serve soup", "not holding a soup"),
        ("cramped_room", "chef_0", "put onion in pot 2", "no pot 2"),
        ("cramped_room", "chef_0", "fly to the moon", "unknown action"),
        ("cramped_room", "chef_0", "continue", "no plan to continue"),
        ("cramped_room", "chef_0", "start cooking pot 1", "by themselves"),
        ("forced_coordination", "chef_0", "get onion", "cannot reach"),
        ("cramped_room", "chef_1", "a\x00b", "NUL"),
    ],
)
def test_invalid_actions_make_the_chef_stay_with_a_reason(
    layout: str, agent: str, action: str, reason: str
) -> None:
    env = make("Kitchen-v0", layout=layout)
    env.reset(seed=0)
    before = env.unwrapped.game_state.positions
    joint = {a: "stay" for a in env.possible_agents}
    joint[agent] = action
    infos = play(env, joint)
    assert reason in infos[agent]["invalid_reason"]
    assert env.unwrapped.game_state.positions == before
    other = next(a for a in env.possible_agents if a != agent)
    assert infos[other]["invalid_reason"] is None


def test_shaped_reward_is_paid_only_when_asked() -> None:
    for shaped, expected in ((False, 0.0), (True, 3.0)):
        env = make("Kitchen-v0", shaped_reward=shaped)
        env.reset(seed=0)
        state = env.unwrapped.game_state
        lay = env.unwrapped.kitchen.layout
        env.unwrapped.game_state = env.unwrapped.kitchen.replace(
            state, positions=(lay.cell(2, 1), lay.cell(3, 2)), held=(1, 0)
        )
        play(env, {"chef_0": "interact", "chef_1": "stay"})
        assert env.rewards["chef_0"] == expected == env.rewards["chef_1"]
        assert env.infos["chef_0"]["reward_components"]["onion_in_pot"] == 3.0


def test_bad_arguments_are_typed_errors() -> None:
    for kwargs in (
        {"layout": "nowhere"},
        {"horizon": 0},
        {"cook_start": "x"},
        {"shaped_reward": "yes"},
    ):
        with pytest.raises(EnvArgumentError):
            KitchenEnv(**kwargs)
    with pytest.raises(EnvArgumentError):
        KitchenNumericEnv(observation="pixels")


def test_numeric_aec_and_parallel_agree() -> None:
    aec, par = KitchenNumericEnv(horizon=30), KitchenNumericParallelEnv(horizon=30)
    aec.reset(seed=1)
    observations, _ = par.reset(seed=1)
    rng = np.random.default_rng(0)
    while par.agents:
        joint = {a: int(rng.integers(0, 6)) for a in par.agents}
        for agent in aec.possible_agents:
            assert np.array_equal(aec.observe(agent), observations[agent])
            aec.step(joint[agent])
        observations, rewards, _, truncations, _ = par.step(joint)
        assert aec.rewards == rewards
    assert all(truncations.values()) and all(aec.truncations.values())
    with pytest.raises(EpisodeOverError):
        par.step({"chef_0": 0, "chef_1": 0})


def test_numeric_grid_planes() -> None:
    env = KitchenNumericParallelEnv()
    observations, _ = env.reset()
    grid = observations["chef_0"]
    assert grid.shape == (23, 4, 5) and env.observation_space("chef_0").contains(grid)
    assert grid[0, 2, 1] == 1 and grid[1, 1, 3] == 1  # self at (1,2), partner at (3,1)
    assert observations["chef_1"][0, 1, 3] == 1  # chef_1 sees itself first
    assert grid[10, 0, 2] == 1  # the pot plane
    with pytest.raises(ActionTypeError):
        env.step({"chef_0": "up", "chef_1": 0})
    with pytest.raises(ActionTypeError):
        env.step({"chef_0": 7, "chef_1": 0})
    with pytest.raises(ResetNeededError):
        KitchenNumericParallelEnv().step({"chef_0": 0, "chef_1": 0})


def test_rendering() -> None:
    env = make("Kitchen-v0", render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (4 * 32, 5 * 32, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 5
    text = make("Kitchen-v0", render_mode="ansi")
    text.reset(seed=0)
    assert "\x1b[" in text.render() and "pot 1: empty" in text.render()
    par = make_parallel("KitchenNumeric-v0", render_mode="rgb_array")
    par.reset(seed=0)
    assert par.render().shape == image.shape


@pytest.mark.parametrize(
    "action",
    [np.int64(2), np.int32(2), np.uint8(2), np.array(2), np.array(2, dtype=np.int32)],
    ids=["int64", "int32", "uint8", "0d-int64", "0d-int32"],
)
def test_numeric_kitchen_takes_the_actions_stable_baselines3_returns(action) -> None:
    """SB3's ``predict`` on one observation gives a 0-d integer array; Discrete takes it."""
    assert KitchenNumericEnv().action_space("chef_0").contains(action)
    aec, reference = KitchenNumericEnv(horizon=5), KitchenNumericEnv(horizon=5)
    aec.reset(seed=0)
    reference.reset(seed=0)
    aec.step(action)
    aec.step(action)
    reference.step(2)
    reference.step(2)
    assert np.array_equal(aec.observe("chef_0"), reference.observe("chef_0"))
    par = KitchenNumericParallelEnv(horizon=5)
    par.reset(seed=0)
    observations, *_ = par.step({"chef_0": action, "chef_1": action})
    assert np.array_equal(observations["chef_0"], reference.observe("chef_0"))


@pytest.mark.parametrize(
    "action",
    [True, np.bool_(True), 2.0, np.float32(2), np.array(2.0), np.array([2]), np.array(7), "2"],
    ids=["bool", "np-bool", "float", "np-float", "0d-float", "1d-int", "0d-out-of-range", "str"],
)
def test_numeric_kitchen_still_refuses_what_is_not_an_action(action) -> None:
    aec = KitchenNumericEnv(horizon=5)
    aec.reset(seed=0)
    with pytest.raises(ActionTypeError):
        aec.step(action)
    assert aec.agent_selection == "chef_0"  # nothing was taken
    par = KitchenNumericParallelEnv(horizon=5)
    par.reset(seed=0)
    with pytest.raises(ActionTypeError):
        par.step({"chef_0": 0, "chef_1": action})
