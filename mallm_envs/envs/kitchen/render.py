"""Pictures of a kitchen state: plain text, ANSI colour text and an RGB numpy image.

No pygame, no image library: the RGB image is drawn with numpy slices. Pure (no PettingZoo,
no Gymnasium).
"""

from __future__ import annotations

import numpy as np

from mallm_envs.envs.kitchen.rules import (
    COUNTER,
    DISH,
    DISH_DISPENSER,
    FLOOR,
    IDLE,
    NOTHING,
    ONION,
    ONION_DISPENSER,
    POT,
    SERVING,
    SOUP_ITEMS,
    TILE_CHARS,
    Kitchen,
    KitchenState,
)

ITEM_CHARS = {NOTHING: " ", ONION: "o", DISH: "d"} | dict.fromkeys(SOUP_ITEMS, "s")
FACING_CHARS = ("^", "v", ">", "<")


def grid_lines(kitchen: Kitchen, state: KitchenState) -> list[str]:
    """The grid as text: tiles, chefs as their numbers (1 = chef 0), items on counters as
    lower-case letters (o onion, d dish, s soup) and pots as ``P``."""
    lay = kitchen.layout
    chars = [TILE_CHARS[t] for t in lay.tiles]
    for cell, item in zip(lay.counters, state.counters):
        if item != NOTHING:
            chars[cell] = ITEM_CHARS[item]
    for chef, cell in enumerate(state.positions):
        chars[cell] = str(chef + 1)
    width = lay.width
    return ["".join(chars[y * width : (y + 1) * width]) for y in range(lay.height)]


def ansi(kitchen: Kitchen, state: KitchenState) -> str:
    """A coloured text picture (ANSI escape codes) with a legend line per chef and pot."""
    lay = kitchen.layout
    colours = {
        "X": "\x1b[90m",
        "P": "\x1b[31m",
        "O": "\x1b[33m",
        "D": "\x1b[37m",
        "S": "\x1b[32m",
        "o": "\x1b[93m",
        "d": "\x1b[97m",
        "s": "\x1b[92m",
    }
    reset = "\x1b[0m"
    rows = []
    for line in grid_lines(kitchen, state):
        out = []
        for char in line:
            if char.isdigit():
                out.append(f"\x1b[1;36m{char}{reset}")
            elif char in colours:
                out.append(f"{colours[char]}{char}{reset}")
            else:
                out.append(char)
        rows.append("".join(out))
    for chef, (cell, facing, item) in enumerate(
        zip(state.positions, state.orientations, state.held)
    ):
        x, y = lay.xy(cell)
        rows.append(
            f"chef {chef + 1} at ({x},{y}) {FACING_CHARS[facing]} holding {ITEM_CHARS[item]!r}"
        )
    for pot in range(len(lay.pots)):
        rows.append(
            f"pot {pot + 1}: {kitchen.pot_status(state, pot)}, {state.pot_onions[pot]} onions"
        )
    rows.append(f"t={state.timestep}/{kitchen.rules.horizon}")
    return "\n".join(rows)


_TILE_RGB = {
    FLOOR: (235, 225, 205),
    COUNTER: (150, 110, 70),
    POT: (70, 70, 80),
    ONION_DISPENSER: (210, 180, 60),
    DISH_DISPENSER: (200, 200, 215),
    SERVING: (90, 170, 90),
}
_ITEM_RGB = {ONION: (240, 200, 40), DISH: (250, 250, 250)} | dict.fromkeys(
    SOUP_ITEMS, (230, 120, 40)
)
_CHEF_RGB = ((40, 90, 220), (220, 60, 60), (150, 60, 200), (30, 160, 160))


def rgb(kitchen: Kitchen, state: KitchenState, tile: int = 32) -> np.ndarray:
    """An ``(height * tile, width * tile, 3)`` uint8 image of the state."""
    lay = kitchen.layout
    image = np.zeros((lay.height * tile, lay.width * tile, 3), dtype=np.uint8)
    quarter = tile // 4

    def box(cell: int, y0: int, y1: int, x0: int, x1: int, colour: tuple[int, int, int]) -> None:
        x, y = lay.xy(cell)
        image[y * tile + y0 : y * tile + y1, x * tile + x0 : x * tile + x1] = colour

    for cell, kind in enumerate(lay.tiles):
        box(cell, 0, tile, 0, tile, _TILE_RGB[kind])
        if kind != FLOOR:
            box(cell, 0, 1, 0, tile, (60, 50, 40))
            box(cell, 0, tile, 0, 1, (60, 50, 40))
        if kind == ONION_DISPENSER:
            box(cell, quarter, 3 * quarter, quarter, 3 * quarter, _ITEM_RGB[ONION])
        if kind == DISH_DISPENSER:
            box(cell, quarter, 3 * quarter, quarter, 3 * quarter, _ITEM_RGB[DISH])
    for cell, item in zip(lay.counters, state.counters):
        if item != NOTHING:
            box(cell, quarter, 3 * quarter, quarter, 3 * quarter, _ITEM_RGB[item])
    cook_time = kitchen.rules.cook_time
    for pot, cell in enumerate(lay.pots):
        onions, ticks = state.pot_onions[pot], state.pot_ticks[pot]
        for k in range(onions):
            x0 = 2 + k * (tile - 4) // 3
            box(cell, quarter, quarter + quarter, x0, x0 + (tile - 4) // 3 - 2, _ITEM_RGB[ONION])
        if ticks != IDLE:
            done = min(ticks, cook_time) * (tile - 4) // cook_time
            colour = (80, 220, 80) if ticks >= cook_time else (230, 120, 40)
            box(cell, tile - quarter, tile - 2, 2, 2 + max(done, 1), colour)
    for chef, (cell, facing, item) in enumerate(
        zip(state.positions, state.orientations, state.held)
    ):
        colour = _CHEF_RGB[chef % len(_CHEF_RGB)]
        box(cell, 3, tile - 3, 3, tile - 3, colour)
        half, q = tile // 2, quarter
        nose = {
            0: (0, q, half - q // 2, half + q // 2),
            1: (tile - q, tile, half - q // 2, half + q // 2),
            2: (half - q // 2, half + q // 2, tile - q, tile),
            3: (half - q // 2, half + q // 2, 0, q),
        }[facing]
        box(cell, *nose, (20, 20, 20))
        if item != NOTHING:
            box(cell, half - q // 2, half + q // 2, half - q // 2, half + q // 2, _ITEM_RGB[item])
    return image
