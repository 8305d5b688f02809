"""The batched numpy core agrees with the pure rules, state for state."""

from __future__ import annotations

import numpy as np
import pytest

from mallm_envs.envs.kitchen.batched import SHAPED_COLUMNS, BatchedKitchen, FeatureEncoder
from mallm_envs.envs.kitchen.rules import (
    CLASSIC_LAYOUTS,
    Kitchen,
    KitchenRules,
    RuleError,
    load_layout,
    shaped_components,
)

# Interact-heavy random play, so that pickups, potting, cooking and deliveries happen.
PROBS = [0.14, 0.14, 0.14, 0.14, 0.04, 0.40]


@pytest.mark.parametrize("cook_start", ["auto", "interact"])
@pytest.mark.parametrize("name", CLASSIC_LAYOUTS)
def test_batched_matches_pure_rules(name: str, cook_start: str) -> None:
    kitchen = Kitchen(load_layout(name), KitchenRules(cook_start=cook_start, horizon=150))
    envs = 16
    batch = BatchedKitchen(kitchen, envs)
    encoder = FeatureEncoder(kitchen)
    rng = np.random.default_rng(3)
    states = [kitchen.initial_state() for _ in range(envs)]
    seen = set()
    for t in range(150):
        actions = rng.choice(6, size=(envs, 2), p=PROBS)
        points, shaped, done = batch.step(actions)
        for i in range(envs):
            states[i], reward, events = kitchen.transition(states[i], tuple(actions[i]))
            seen.update(name for _, name in events)
            assert batch.get_state(i) == states[i], f"env {i} step {t}"
            assert points[i] == reward
            components = shaped_components(events, kitchen.rules)
            weights = kitchen.rules.shaped_weights
            assert [components[c] / weights[c] for c in SHAPED_COLUMNS] == list(shaped[i])
        assert done.all() == (t == 149)
        if t % 50 == 0:
            features = encoder.encode_batch(batch)
            for i in (0, envs - 1):
                assert np.array_equal(features[i], encoder.encode_state(states[i]))
    assert {"onion_in_pot", "counter_drop"} <= seen
    if cook_start == "interact":
        assert "cook_start" in seen


def test_reset_mask_and_state_round_trip() -> None:
    kitchen = Kitchen(load_layout("cramped_room"))
    batch = BatchedKitchen(kitchen, 3)
    batch.step(np.array([[0, 3], [1, 2], [5, 5]]))
    moved = batch.get_state(1)
    batch.reset(np.array([True, False, False]))
    assert batch.get_state(0) == kitchen.initial_state()
    assert batch.get_state(1) == moved
    batch.set_state(2, moved)
    assert batch.get_state(2) == moved


def test_features_are_in_unit_box_and_distinguish_chefs() -> None:
    kitchen = Kitchen(load_layout("asymmetric_advantages"))
    encoder = FeatureEncoder(kitchen)
    features = encoder.encode_state(kitchen.initial_state())
    assert features.shape == (2, encoder.size) and features.dtype == np.float32
    assert features.min() >= 0 and features.max() <= 1
    assert not np.array_equal(features[0], features[1])


def test_bad_batched_calls() -> None:
    kitchen = Kitchen(load_layout("cramped_room"), KitchenRules(horizon=1))
    batch = BatchedKitchen(kitchen, 2)
    with pytest.raises(RuleError):
        batch.step(np.zeros((2, 3), dtype=int))
    with pytest.raises(RuleError):
        batch.step(np.full((2, 2), 6))
    with pytest.raises(RuleError):
        batch.step(np.zeros((2, 2)))
    batch.step(np.zeros((2, 2), dtype=np.int32))
    with pytest.raises(RuleError, match="horizon"):
        batch.step(np.zeros((2, 2), dtype=int))
    with pytest.raises(RuleError):
        BatchedKitchen(kitchen, 0)
