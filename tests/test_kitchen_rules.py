"""Rules of the kitchen: layouts, transitions, and agreement with overcooked-ai 1.1.0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mallm_envs.envs.kitchen.rules import (
    CLASSIC_LAYOUTS,
    DISH,
    DOWN,
    IDLE,
    INTERACT,
    LEFT,
    NOTHING,
    ONION,
    RIGHT,
    SOUP_3,
    STAY,
    UP,
    Kitchen,
    KitchenRules,
    LayoutError,
    RuleError,
    load_layout,
    parse_layout,
    shaped_components,
)

GOLDEN = Path(__file__).parent / "golden" / "kitchen"

# The classic grids as overcooked-ai ships them (1 = its player 0, 2 = its player 1).
CLASSIC_GRIDS = {
    "cramped_room": ["XXPXX", "O  2O", "X1  X", "XDXSX"],
    "asymmetric_advantages": ["XXXXXXXXX", "O XSXOX S", "X   P 1 X", "X2  P   X", "XXXDXDXXX"],
    "coordination_ring": ["XXXPX", "X 1 P", "D2X X", "O   X", "XOSXX"],
    "forced_coordination": ["XXXPX", "O X1P", "O2X X", "D X X", "XXXSX"],
    "counter_circuit": ["XXXPPXXX", "X  2   X", "D XXXX S", "X  1   X", "XXXOOXXX"],
}


@pytest.mark.parametrize("name", CLASSIC_LAYOUTS)
def test_classic_layouts_match_overcooked_ai(name: str) -> None:
    layout = load_layout(name)
    grid = layout.to_text().split("grid:\n")[1].splitlines()
    assert [row.strip("|") for row in grid] == CLASSIC_GRIDS[name]
    assert parse_layout(layout.to_text()) == layout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: a\ngrid:\n|XXPXX|\n|O 1O|\n|XDXSX|\n", "rectangular"),
        ("name: a\ngrid:\n|XXPXX|\n|O 1QO|\n|XDXSX|\n", "unknown tile"),
        ("name: a\ngrid:\n|XXPXX|\n|O  1 |\n|XDXSX|\n", "edge"),
        ("name: a\ngrid:\n|XXPXX|\n|O   O|\n|XDXSX|\n", "no chef start"),
        ("name: a\ngrid:\n|XXPXX|\n|O1 3O|\n|XDXSX|\n", "without gaps"),
        ("name: a\ngrid:\n|XXPXX|\n|O1 1O|\n|XDXSX|\n", "twice"),
        ("name: a\ngrid:\n|XXXXX|\n|O1 2O|\n|XDXSX|\n", "pot"),
        ("name: a\ngrid:\n|XXPXX|\n|O1X2O|\n|XDXSX|\n|XXXXX|\n", "reach"),
        ("name: a\ngrid:\nXXPXX\n", "grid rows look like"),
        ("name: a\nsize: 3\ngrid:\n|XXPXX|\n", "unknown key"),
        ("name: a\n", "no 'grid:'"),
        ("grid:\n|XXPXX|\n|O12 O|\n|XDXSX|\n", "no name"),
        ("name: a\ngrid:\n|XXPXX|\n|O12 O|\n|XDXSX|\n", "dish dispenser"),
    ],
)
def test_malformed_layouts_are_refused(text: str, message: str) -> None:
    if message == "dish dispenser":
        text = text.replace("D", "X")
    with pytest.raises(LayoutError, match=message):
        parse_layout(text)


def test_unknown_layout_name() -> None:
    with pytest.raises(LayoutError, match="cramped_room"):
        load_layout("../../etc/passwd")


def cramped() -> Kitchen:
    return Kitchen(load_layout("cramped_room"))


def xy(kitchen: Kitchen, cell: int) -> tuple[int, int]:
    return kitchen.layout.xy(cell)


def test_moves_turn_when_blocked_and_stay_keeps_facing() -> None:
    k = cramped()
    s = k.initial_state()
    s, _, _ = k.transition(s, (LEFT, STAY))  # (0,2) is a counter: turn only
    assert xy(k, s.positions[0]) == (1, 2) and s.orientations[0] == LEFT
    assert s.orientations[1] == UP  # stay keeps facing
    s, _, _ = k.transition(s, (UP, LEFT))
    assert xy(k, s.positions[0]) == (1, 1) and xy(k, s.positions[1]) == (2, 1)


def test_collisions_keep_every_chef_in_place() -> None:
    k = cramped()
    s = k.replace(k.initial_state(), positions=(k.layout.cell(1, 1), k.layout.cell(3, 1)))
    s2, _, _ = k.transition(s, (RIGHT, LEFT))  # both into (2,1)
    assert s2.positions == s.positions and s2.orientations == (RIGHT, LEFT)
    s = k.replace(s, positions=(k.layout.cell(1, 1), k.layout.cell(2, 1)))
    s2, _, _ = k.transition(s, (RIGHT, LEFT))  # swap
    assert s2.positions == s.positions
    s2, _, _ = k.transition(s, (RIGHT, STAY))  # into a standing chef
    assert s2.positions == s.positions
    s2, _, _ = k.transition(s, (DOWN, RIGHT))  # no conflict: both move
    assert [xy(k, c) for c in s2.positions] == [(1, 2), (3, 1)]


def test_a_full_soup_cycle_scores_20_with_shaped_events() -> None:
    k = cramped()
    lay = k.layout
    pot_front = lay.cell(2, 1)
    s = k.replace(k.initial_state(), positions=(pot_front, lay.cell(3, 2)), held=(ONION, NOTHING))
    for expected in (1, 2, 3):
        s, points, events = k.transition(s, (INTERACT, STAY))
        assert s.pot_onions == (expected,) and points == 0
        assert (0, "onion_in_pot") in events
        s = k.replace(s, held=(ONION, NOTHING))
    assert (0, "cook_start") in events and s.pot_ticks == (1,)
    assert shaped_components(events, k.rules)["onion_in_pot"] == 3.0
    s = k.replace(s, held=(DISH, NOTHING))
    for _ in range(18):
        s, _, events = k.transition(s, (INTERACT, STAY))  # a dish on a cooking pot: nothing
        assert s.held[0] == DISH
    assert s.pot_ticks == (19,)
    s, _, _ = k.transition(s, (STAY, STAY))
    assert k.pot_status(s, 0) == "ready"
    s, _, events = k.transition(s, (INTERACT, STAY))
    assert s.held[0] == SOUP_3 and s.pot_ticks == (IDLE,) and (0, "soup_pickup") in events
    s = k.replace(s, positions=(lay.cell(3, 2), lay.cell(1, 2)), orientations=(DOWN, UP))
    s, points, events = k.transition(s, (INTERACT, STAY))
    assert points == 20 and s.held[0] == NOTHING and (0, "soup_delivery") in events


def test_dish_pickup_is_useful_only_when_a_pot_needs_it() -> None:
    k = cramped()
    lay = k.layout
    s = k.replace(
        k.initial_state(), positions=(lay.cell(1, 2), lay.cell(3, 1)), orientations=(DOWN, UP)
    )
    _, _, events = k.transition(s, (INTERACT, STAY))
    assert events == ((0, "dish_pickup"),)  # empty pot: not useful
    s = k.replace(s, pot_onions=(1,))
    _, _, events = k.transition(s, (INTERACT, STAY))
    assert (0, "useful_dish_pickup") in events
    s2 = k.replace(s, counters=(DISH, *s.counters[1:]))
    _, _, events = k.transition(s2, (INTERACT, STAY))
    assert (0, "useful_dish_pickup") not in events  # a dish lies on a counter


def test_counters_hold_one_item() -> None:
    k = cramped()
    lay = k.layout
    s = k.replace(k.initial_state(), orientations=(LEFT, UP), held=(ONION, DISH))
    s, _, events = k.transition(s, (INTERACT, INTERACT))
    assert s.held == (NOTHING, NOTHING) and (0, "counter_drop") in events
    s, _, _ = k.transition(s, (INTERACT, STAY))
    left, top = lay.counter_index[lay.cell(0, 2)], lay.counter_index[lay.cell(3, 0)]
    assert s.held[0] == ONION and s.counters[left] == NOTHING and s.counters[top] == DISH
    s, _, events = k.transition(s, (STAY, INTERACT))  # chef 1 takes its dish back
    assert s.held[1] == DISH and (1, "counter_pickup") in events
    s = k.replace(s, held=(ONION, ONION))
    s, _, _ = k.transition(s, (INTERACT, STAY))
    s = k.replace(s, held=(DISH, ONION), positions=s.positions)
    s, _, events = k.transition(s, (INTERACT, STAY))  # counter taken: nothing happens
    assert s.held[0] == DISH and s.counters[left] == ONION and events == ()


def test_interact_mode_needs_an_explicit_start_and_pays_only_full_soups() -> None:
    k = Kitchen(load_layout("cramped_room"), KitchenRules(cook_start="interact"))
    lay = k.layout
    s = k.replace(
        k.initial_state(), positions=(lay.cell(2, 1), lay.cell(3, 2)), held=(ONION, NOTHING)
    )
    s, _, _ = k.transition(s, (INTERACT, STAY))
    assert s.pot_ticks == (IDLE,)
    s, _, events = k.transition(s, (INTERACT, STAY))  # empty hands: start a one-onion soup
    assert (0, "cook_start") in events and s.pot_ticks == (1,)
    s = k.replace(s, pot_ticks=(20,), held=(DISH, NOTHING))
    s, _, _ = k.transition(s, (INTERACT, STAY))
    s = k.replace(s, positions=(lay.cell(3, 2), lay.cell(1, 2)), orientations=(DOWN, UP))
    s, points, events = k.transition(s, (INTERACT, STAY))
    assert points == 0 and (0, "soup_delivery") in events


def test_bad_calls_raise_rule_errors() -> None:
    k = cramped()
    s = k.initial_state()
    for bad in [(0,), (0, 0, 0), (0, 6), (0, -1), (0, 1.0), (True, 0), ("up", 0)]:
        with pytest.raises(RuleError):
            k.transition(s, bad)
    import numpy as np

    assert k.transition(s, (np.int64(4), np.int32(4)))[0].timestep == 1
    with pytest.raises(RuleError, match="horizon"):
        k.transition(k.replace(s, timestep=400), (STAY, STAY))
    with pytest.raises(RuleError):
        KitchenRules(cook_start="never")
    with pytest.raises(RuleError):
        KitchenRules(horizon=0)


def test_transition_is_pure() -> None:
    k = cramped()
    s = k.initial_state()
    before = repr(s)
    first = k.transition(s, (UP, INTERACT))
    assert repr(s) == before and k.transition(s, (UP, INTERACT)) == first


@pytest.mark.parametrize("name", CLASSIC_LAYOUTS)
def test_matches_overcooked_ai_trajectories(name: str) -> None:
    """Replays random trajectories recorded from overcooked-ai 1.1.0 (its default,
    interact-to-start dynamics) with ``benchmarks/bench_kitchen_peer.py record 400 7``; every
    state, sparse reward and shaped reward must agree."""
    record = json.loads((GOLDEN / "overcooked_ai_1.1.0_random.json").read_text())[name]
    k = Kitchen(load_layout(name), KitchenRules(cook_start="interact"))
    lay = k.layout
    s = k.initial_state()
    for t, (joint, expected, sparse, shaped) in enumerate(
        zip(record["actions"], record["states"], record["sparse"], record["shaped"])
    ):
        s, points, events = k.transition(s, tuple(joint))
        chefs = [[p, o, h] for p, o, h in zip(s.positions, s.orientations, s.held)]
        counters = sorted([c, i] for c, i in zip(lay.counters, s.counters) if i)
        pots = sorted([c, n, tk] for c, n, tk in zip(lay.pots, s.pot_onions, s.pot_ticks) if n)
        assert [chefs, counters, pots] == expected, f"step {t}"
        assert points == sparse, f"step {t}"
        assert sum(shaped_components(events, k.rules).values()) == shaped, f"step {t}"
