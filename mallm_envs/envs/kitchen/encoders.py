"""What a chef observes: the kitchen state as text, as grid planes, or as features.

* :func:`describe_state`: readable lines on the whole state (grid, chefs, pots, counters,
  time), the core of the text env's prompt and ``state()``.
* :class:`GridEncoder`: lossless ``(5 * chefs + 13, height, width)`` float32 planes, one
  stack per chef with that chef first (the numeric env's ``observation="grid"``).
* :class:`~mallm_envs.envs.kitchen.batched.FeatureEncoder`: flat feature vectors, batched
  (the numeric env's ``observation="features"``); it lives beside the batched core it
  encodes and is re-exported here.

All are pure functions of a :class:`~mallm_envs.envs.kitchen.rules.KitchenState`: no
PettingZoo, no env.
"""

from __future__ import annotations

import numpy as np

from mallm_envs.envs.kitchen import render as kitchen_render
from mallm_envs.envs.kitchen.batched import FeatureEncoder
from mallm_envs.envs.kitchen.rules import (
    COUNTER,
    DIRECTION_NAMES,
    DISH,
    DISH_DISPENSER,
    IDLE,
    ITEM_NAMES,
    NOTHING,
    ONION,
    ONION_DISPENSER,
    POT,
    SERVING,
    SOUP_1,
    SOUP_ITEMS,
    Kitchen,
    KitchenState,
)

__all__ = ["FeatureEncoder", "GridEncoder", "describe_state"]


# ---------------------------------------------------------------------- text


def _item_phrase(item: int) -> str:
    return {NOTHING: "nothing", ONION: "an onion", DISH: "a dish"}.get(
        item, f"a {ITEM_NAMES[item]}"
    )


def describe_state(kitchen: Kitchen, state: KitchenState, agents: list[str]) -> list[str]:
    """Readable lines on the whole state: grid, chefs, pots, counters, time."""
    lay = kitchen.layout
    lines = [
        f"Step {state.timestep} of {kitchen.rules.horizon}; "
        f"{kitchen.rules.horizon - state.timestep} steps left.",
        "Grid (x grows to the right, y downwards; X counter, P pot, O onion dispenser, "
        "D dish dispenser, S serving window; o/d/s an onion/dish/soup on a counter; "
        "digits are chefs: 1 = chef_0, 2 = chef_1):",
        "    " + "".join(str(x % 10) for x in range(lay.width)),
    ]
    for y, row in enumerate(kitchen_render.grid_lines(kitchen, state)):
        lines.append(f"  {y % 10} {row}")
    for chef, name in enumerate(agents):
        x, y = lay.xy(state.positions[chef])
        lines.append(
            f"{name}: at ({x},{y}) facing {DIRECTION_NAMES[state.orientations[chef]]}, "
            f"holding {_item_phrase(state.held[chef])}."
        )
    cook_time = kitchen.rules.cook_time
    for pot, cell in enumerate(lay.pots):
        x, y = lay.xy(cell)
        onions, ticks = state.pot_onions[pot], state.pot_ticks[pot]
        status = kitchen.pot_status(state, pot)
        if status == "empty":
            text = "empty"
        elif status == "filling":
            text = f"{onions} onion{'s' if onions != 1 else ''}, not cooking"
            if kitchen.rules.cook_start == "auto":
                text += f" (needs {3 - onions} more)"
        elif status == "cooking":
            text = f"{onions} onions cooking, ready in {cook_time - ticks} steps"
        else:
            text = f"soup of {onions} onions ready (bring a dish)"
        lines.append(f"Pot {pot + 1} at ({x},{y}): {text}.")
    items = [
        f"{ITEM_NAMES[item]} at ({lay.xy(cell)[0]},{lay.xy(cell)[1]})"
        for cell, item in zip(lay.counters, state.counters)
        if item != NOTHING
    ]
    lines.append("Items on counters: " + ("; ".join(items) if items else "none") + ".")
    return lines


# ---------------------------------------------------------------------- grid planes


class GridEncoder:
    """Lossless grid planes of one state, per chef.

    Channels, for the observing chef first: the chefs' positions (observer first), their
    facings (4 per chef), then pots, counters, onion dispensers, dish dispensers, serving
    windows, onions in idle pots, onions in cooking or finished soups, cook ticks left, soup
    ready, dishes, onions, urgency (fewer than 40 steps left) and the fraction of the
    episode left. ``high`` is the per-value upper bound (the lower bound is 0).
    """

    def __init__(self, kitchen: Kitchen) -> None:
        lay = kitchen.layout
        self.kitchen = kitchen
        n = self.num_chefs = lay.num_chefs
        self.channels = 5 * n + 13
        self.shape = (self.channels, lay.height, lay.width)
        self.plane = lay.height * lay.width
        base = np.zeros(self.shape, dtype=np.float32)
        flat = base.reshape(self.channels, -1)
        for offset, kind in enumerate((POT, COUNTER, ONION_DISPENSER, DISH_DISPENSER, SERVING)):
            for cell, tile in enumerate(lay.tiles):
                if tile == kind:
                    flat[5 * n + offset, cell] = 1.0
        self.base = base
        self.high = np.ones(self.shape, dtype=np.float32)
        self.high[5 * n + 5] = 3
        self.high[5 * n + 6] = 3
        self.high[5 * n + 7] = kitchen.rules.cook_time
        self.orders = [[i] + [j for j in range(n) if j != i] for i in range(n)]
        self.ch_objects = c0 = 5 * n + 5
        plane = self.plane
        # item -> the (flat offset of its channel, value) entries it sets at its cell
        self._item_entries: dict[int, tuple[tuple[int, float], ...]] = {
            ONION: (((c0 + 5) * plane, 1.0),),
            DISH: (((c0 + 4) * plane, 1.0),),
        }
        for soup in SOUP_ITEMS:
            self._item_entries[soup] = (
                ((c0 + 1) * plane, float(soup - SOUP_1 + 1)),
                ((c0 + 3) * plane, 1.0),
            )

    def encode(self, state: KitchenState) -> list[np.ndarray]:
        """One ``(channels, height, width)`` array per chef, that chef first."""
        kitchen = self.kitchen
        lay = kitchen.layout
        plane = self.plane
        n = self.num_chefs
        c0 = self.ch_objects
        cook_time = kitchen.rules.cook_time
        entries = self._item_entries
        index: list[int] = []
        value: list[float] = []
        for cells, items in ((lay.counters, state.counters), (state.positions, state.held)):
            for cell, item in zip(cells, items):
                if item != NOTHING:
                    for offset, v in entries.get(item, ()):
                        index.append(offset + cell)
                        value.append(v)
        for pot, cell in enumerate(lay.pots):
            onions, ticks = state.pot_onions[pot], state.pot_ticks[pot]
            if ticks == IDLE:
                if onions:
                    index.append(c0 * plane + cell)
                    value.append(float(onions))
            else:
                index += [(c0 + 1) * plane + cell, (c0 + 2) * plane + cell]
                value += [float(onions), float(cook_time - ticks)]
                if ticks >= cook_time:
                    index.append((c0 + 3) * plane + cell)
                    value.append(1.0)
        # What every chef sees alike, then each chef's own copy with the chefs in its order.
        shared = self.base.copy()
        flat = shared.reshape(-1)
        for i, v in zip(index, value):  # a handful of cells: cheaper than fancy indexing
            flat[i] = v
        left = kitchen.rules.horizon - state.timestep
        if left < 40:
            shared[c0 + 6] = 1.0
        shared[c0 + 7] = left / kitchen.rules.horizon
        out = []
        last = len(self.orders) - 1
        for number, order in enumerate(self.orders):
            obs = shared if number == last else shared.copy()
            flat = obs.reshape(-1)
            for rank, chef in enumerate(order):
                cell = state.positions[chef]
                flat[rank * plane + cell] = 1.0
                flat[(n + 4 * rank + state.orientations[chef]) * plane + cell] = 1.0
            out.append(obs)
        return out
