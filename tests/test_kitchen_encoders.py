"""The kitchen's observation encoders, pinned to what their docstrings say they encode."""

from __future__ import annotations

import numpy as np
import pytest

from mallm_envs.envs.kitchen import encoders
from mallm_envs.envs.kitchen import env as kitchen_env
from mallm_envs.envs.kitchen.encoders import FeatureEncoder, GridEncoder, describe_state
from mallm_envs.envs.kitchen.planner import GreedyPolicy
from mallm_envs.envs.kitchen.rules import (
    CLASSIC_LAYOUTS,
    COUNTER,
    DISH,
    DISH_DISPENSER,
    IDLE,
    ONION,
    ONION_DISPENSER,
    POT,
    SERVING,
    SOUP_1,
    SOUP_ITEMS,
    Kitchen,
    KitchenRules,
    KitchenState,
    load_layout,
)


def reference_planes(kitchen: Kitchen, state: KitchenState, viewer: int) -> np.ndarray:
    """The grid planes of ``viewer``, written out channel by channel from the docstring."""
    lay = kitchen.layout
    n = lay.num_chefs
    cook_time, horizon = kitchen.rules.cook_time, kitchen.rules.horizon
    planes = np.zeros((5 * n + 13, lay.height, lay.width), dtype=np.float32)

    def mark(channel: int, cell: int, value: float = 1.0) -> None:
        x, y = lay.xy(cell)
        planes[channel, y, x] = value

    order = [viewer] + [chef for chef in range(n) if chef != viewer]
    for rank, chef in enumerate(order):
        mark(rank, state.positions[chef])  # positions, viewer first
        mark(n + 4 * rank + state.orientations[chef], state.positions[chef])  # facings
    for offset, kind in enumerate((POT, COUNTER, ONION_DISPENSER, DISH_DISPENSER, SERVING)):
        for cell, tile in enumerate(lay.tiles):
            if tile == kind:
                mark(5 * n + offset, cell)
    objects = 5 * n + 5
    for pot, cell in enumerate(lay.pots):
        onions, ticks = state.pot_onions[pot], state.pot_ticks[pot]
        if ticks == IDLE:
            if onions:
                mark(objects, cell, onions)  # onions in an idle pot
        else:
            mark(objects + 1, cell, onions)  # onions in a cooking or finished soup
            mark(objects + 2, cell, cook_time - ticks)  # cook ticks left
            if ticks >= cook_time:
                mark(objects + 3, cell)  # soup ready
    loose = list(zip(lay.counters, state.counters)) + list(zip(state.positions, state.held))
    for cell, item in loose:
        if item == DISH:
            mark(objects + 4, cell)
        elif item == ONION:
            mark(objects + 5, cell)
        elif item in SOUP_ITEMS:
            mark(objects + 1, cell, item - SOUP_1 + 1)
            mark(objects + 3, cell)
    left = horizon - state.timestep
    planes[objects + 6] = 1.0 if left < 40 else 0.0  # urgency
    planes[objects + 7] = left / horizon  # fraction of the episode left
    return planes


def played_states(layout: str, cook_start: str, steps: int = 400) -> list[KitchenState]:
    """States from greedy chefs with random slips: soups on the go, items on counters."""
    kitchen = Kitchen(load_layout(layout), KitchenRules(horizon=steps, cook_start=cook_start))
    rng = np.random.default_rng(0)
    chefs = [GreedyPolicy(kitchen, chef, 0) for chef in range(kitchen.layout.num_chefs)]
    state, states = kitchen.initial_state(), []
    while not kitchen.is_done(state):
        states.append(state)
        joint = tuple(
            chef.act(state) if rng.random() < 0.8 else int(rng.integers(0, 6)) for chef in chefs
        )
        state, _, _ = kitchen.transition(state, joint)
    return states


@pytest.mark.parametrize("cook_start", ["auto", "interact"])
@pytest.mark.parametrize("layout", CLASSIC_LAYOUTS)
def test_grid_planes_match_the_documented_channels(layout: str, cook_start: str) -> None:
    kitchen = Kitchen(load_layout(layout), KitchenRules(horizon=400, cook_start=cook_start))
    encoder = GridEncoder(kitchen)
    seen_soup = False
    for state in played_states(layout, cook_start):
        planes = encoder.encode(state)
        assert len(planes) == kitchen.layout.num_chefs
        for viewer, got in enumerate(planes):
            assert got.dtype == np.float32 and got.shape == encoder.shape
            np.testing.assert_array_equal(got, reference_planes(kitchen, state, viewer))
            assert np.all(got <= encoder.high) and np.all(got >= 0)
        seen_soup = seen_soup or any(item in SOUP_ITEMS for item in state.held)
    assert seen_soup, "the played states never had a chef carrying soup"


def test_each_chefs_planes_are_its_own_array() -> None:
    kitchen = Kitchen(load_layout("cramped_room"))
    first, second = GridEncoder(kitchen).encode(kitchen.initial_state())
    first[:] = 7.0
    assert second.max() <= 1.0


def test_one_module_holds_every_encoder_and_old_imports_still_work() -> None:
    assert kitchen_env.GridEncoder is GridEncoder is encoders.GridEncoder
    assert kitchen_env.describe_state is describe_state
    assert encoders.FeatureEncoder is FeatureEncoder
    kitchen = Kitchen(load_layout("cramped_room"))
    lines = describe_state(kitchen, kitchen.initial_state(), ["chef_0", "chef_1"])
    assert "chef_1: at (3,1) facing up, holding nothing." in lines
    assert "Pot 1 at (2,0): empty." in lines
