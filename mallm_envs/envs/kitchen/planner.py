"""Macro actions and the breadth-first planner that carries them out, one step at a time.

A macro ("get onion", "put onion in pot 1", "serve soup", ...) names a kind of tile to
interact with. Each step the planner searches the floor breadth-first from the chef's cell,
treating the other chefs as walls (and, when that finds nothing, as free floor: they may
move), for the nearest cell next to a fitting tile; it returns the first move of that path,
or a turn towards the tile, or ``interact`` once the chef stands next to it and faces it.

Also here: :func:`greedy_action`, the scripted chef's policy (a priority list of macros,
with hand-overs across counters when a chef cannot reach what it needs).

Pure Python; imports neither PettingZoo nor Gymnasium.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

import numpy as np

from mallm_envs.envs.kitchen.rules import (
    DISH,
    DOWN,
    IDLE,
    INTERACT,
    LEFT,
    MAX_ONIONS,
    NOTHING,
    ONION,
    RIGHT,
    SOUP_ITEMS,
    STAY,
    UP,
    Kitchen,
    KitchenState,
)

MACRO_HELP = (
    "get onion | get dish | put onion in pot N | pick up soup [from pot N] | serve soup | "
    "put down | hand over | pick up | start cooking pot N"
)


@dataclass(frozen=True)
class Macro:
    """A parsed macro action. ``kind`` is one of: ``get_onion``, ``get_dish``,
    ``put_onion``, ``pick_up_soup``, ``serve``, ``put_down``, ``pick_up``, ``start_cooking``;
    ``pot`` is a 0-based pot index or ``None`` for any pot."""

    kind: str
    pot: int | None = None
    dispenser_only: bool = False

    def describe(self) -> str:
        pot = "" if self.pot is None else f" {self.pot + 1}"
        return {
            "get_onion": "get onion" + (" from dispenser" if self.dispenser_only else ""),
            "get_dish": "get dish" + (" from dispenser" if self.dispenser_only else ""),
            "put_onion": f"put onion in pot{pot}",
            "pick_up_soup": "pick up soup" + (f" from pot{pot}" if pot else ""),
            "serve": "serve soup",
            "put_down": "put down",
            "hand_over": "hand over",
            "pick_up": "pick up",
            "start_cooking": f"start cooking pot{pot}",
        }[self.kind]


_MACRO_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"^(?:get|grab|fetch|take|pick up)(?: an?| the)? onion( from (?:the )?dispenser)?$"
        ),
        "get_onion",
    ),
    (
        re.compile(
            r"^(?:get|grab|fetch|take|pick up)(?: an?| the)? (?:dish|plate)( from (?:the )?dispenser)?$"
        ),
        "get_dish",
    ),
    (
        re.compile(
            r"^(?:put|place|add|drop)(?: an?| the)? onion (?:in|into) (?:the )?pot(?: (\d+))?$"
        ),
        "put_onion",
    ),
    (
        re.compile(
            r"^(?:pick up|get|take|plate|collect)(?: the)? soup(?: (?:from|in|at) (?:the )?pot(?: (\d+))?)?$"
        ),
        "pick_up_soup",
    ),
    (re.compile(r"^(?:serve|deliver)(?: the)?(?: soup)?$"), "serve"),
    (re.compile(r"^(?:put down|drop|place on counter|put on counter)(?: it| item)?$"), "put_down"),
    (re.compile(r"^(?:hand over|pass|pass over|hand off)(?: it| item)?$"), "hand_over"),
    (re.compile(r"^(?:pick up|take)(?: from counter| item)?$"), "pick_up"),
    (re.compile(r"^(?:start cooking|cook|start)(?: the)? pot(?: (\d+))?$"), "start_cooking"),
)


def parse_macro(text: str, num_pots: int) -> Macro | str:
    """A :class:`Macro` from normalised text, or a string saying why it is not one."""
    for pattern, kind in _MACRO_PATTERNS:
        match = pattern.match(text)
        if match is None:
            continue
        pot = None
        if kind in ("get_onion", "get_dish"):
            return Macro(kind, dispenser_only=match.group(1) is not None)
        if match.groups() and match.group(1) is not None:
            number = int(match.group(1))
            if not 1 <= number <= num_pots:
                return f"there is no pot {number}; this kitchen has pots 1-{num_pots}"
            pot = number - 1
        return Macro(kind, pot)
    return f"unknown action; use up, down, left, right, stay, interact, continue or a plan: {MACRO_HELP}"


class Planner:
    """Breadth-first paths on one kitchen's floor (see the module docstring)."""

    search_order: tuple[int, ...] = (UP, DOWN, RIGHT, LEFT)
    """Directions in the order the search tries them (it decides between equal paths)."""

    def __init__(self, kitchen: Kitchen) -> None:
        self.kitchen = kitchen
        lay = kitchen.layout
        self.layout = lay
        # For each non-floor cell: the (floor cell, direction to face) pairs next to it.
        self.access: dict[int, list[tuple[int, int]]] = {}
        for cell in lay.floor:
            for direction in range(4):
                target = lay.front_table[cell * 4 + direction]
                if target != cell and lay.tiles[target] != 0:
                    self.access.setdefault(target, []).append((cell, direction))
        self._regions: dict[int, frozenset[int]] = {}

    def region(self, cell: int) -> frozenset[int]:
        """Floor a chef at ``cell`` can walk to, other chefs ignored."""
        if cell not in self._regions:
            region = frozenset(self.layout.reachable_floor(cell))
            for c in region:
                self._regions[c] = region
        return self._regions[cell]

    def handoff_counters(self, state: KitchenState, chef: int) -> list[int]:
        """Empty counters that this chef and a chef walking other floor can both use."""
        region = self.region(state.positions[chef])
        out = []
        for c, it in zip(self.layout.counters, state.counters):
            if it != NOTHING:
                continue
            sides = {self.region(f) for f, _ in self.access.get(c, ())}
            if region in sides and len(sides) > 1:
                out.append(c)
        return out

    def reachable_targets(self, cell: int, targets: list[int] | tuple[int, ...]) -> list[int]:
        region = self.region(cell)
        return [t for t in targets if any(c in region for c, _ in self.access.get(t, ()))]

    def step_towards(
        self, state: KitchenState, chef: int, targets: list[int] | tuple[int, ...]
    ) -> tuple[int, int] | None:
        """``(action, distance)`` of the first step towards the nearest target tile, or
        ``None`` when no target can be reached. ``interact`` comes when the chef faces one."""
        if not targets:
            return None
        goals: dict[int, list[tuple[int, int]]] = {}
        for target in targets:
            for cell, direction in self.access.get(target, ()):
                goals.setdefault(cell, []).append((direction, target))
        start = state.positions[chef]
        others = {p for i, p in enumerate(state.positions) if i != chef}
        for blocked in (others, set()):
            found = self._bfs(start, goals, blocked)
            if found is not None:
                first_move, goal_cell, distance = found
                if goal_cell == start:
                    facing = state.orientations[chef]
                    directions = [d for d, _ in goals[start]]
                    if facing in directions:
                        return INTERACT, 0
                    return directions[0], 1
                return first_move, distance
        return None

    def _bfs(
        self, start: int, goals: dict[int, list[tuple[int, int]]], blocked: set[int]
    ) -> tuple[int, int, int] | None:
        if start in goals:
            return STAY, start, 0
        move = self.layout.move_table
        first: dict[int, int] = {start: STAY}
        depth = {start: 0}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            for action in self.search_order:
                nxt = move[cell * 6 + action]
                if nxt == cell or nxt in first or nxt in blocked:
                    continue
                first[nxt] = action if cell == start else first[cell]
                depth[nxt] = depth[cell] + 1
                if nxt in goals:
                    return first[nxt], nxt, depth[nxt]
                queue.append(nxt)
        return None

    # ------------------------------------------------------------------ macros

    def targets(self, state: KitchenState, chef: int, macro: Macro) -> list[int] | str:
        """Tiles that fulfil ``macro`` now, or why the macro cannot be done now."""
        lay = self.layout
        kitchen = self.kitchen
        holding = state.held[chef]
        counters_with = lambda item: [  # noqa: E731
            c for c, it in zip(lay.counters, state.counters) if it == item
        ]
        pots = range(len(lay.pots)) if macro.pot is None else (macro.pot,)
        kind = macro.kind
        if kind in ("get_onion", "get_dish", "pick_up") and holding != NOTHING:
            return "your hands are full; put it down first"
        if kind == "get_onion":
            extra = [] if macro.dispenser_only else counters_with(ONION)
            return list(lay.onion_dispensers) + extra
        if kind == "get_dish":
            extra = [] if macro.dispenser_only else counters_with(DISH)
            return list(lay.dish_dispensers) + extra
        if kind == "pick_up":
            return [c for c, it in zip(lay.counters, state.counters) if it != NOTHING]
        if kind == "put_down":
            if holding == NOTHING:
                return "you hold nothing to put down"
            return counters_with(NOTHING)
        if kind == "hand_over":
            if holding == NOTHING:
                return "you hold nothing to hand over"
            return self.handoff_counters(state, chef)
        if kind == "put_onion":
            if holding != ONION:
                return "you are not holding an onion"
            return [
                lay.pots[p]
                for p in pots
                if state.pot_ticks[p] == IDLE and state.pot_onions[p] < MAX_ONIONS
            ]
        if kind == "pick_up_soup":
            if holding == DISH:
                return [lay.pots[p] for p in pots if kitchen.pot_status(state, p) == "ready"]
            if holding == NOTHING and macro.pot is None:
                return [c for c, it in zip(lay.counters, state.counters) if it in SOUP_ITEMS]
            return "you need a dish to pick up soup from a pot"
        if kind == "serve":
            if holding not in SOUP_ITEMS:
                return "you are not holding a soup"
            return list(lay.serving)
        if kind == "start_cooking":
            if kitchen.rules.cook_start != "interact":
                return "pots start cooking by themselves when the third onion goes in"
            if holding != NOTHING:
                return "your hands must be empty to start a pot"
            return [
                lay.pots[p] for p in pots if state.pot_ticks[p] == IDLE and state.pot_onions[p] > 0
            ]
        return f"unknown plan {kind!r}"

    def macro_step(self, state: KitchenState, chef: int, macro: Macro) -> tuple[int, str | None]:
        """``(action, problem)``: this step of ``macro``; ``problem`` is ``None`` when the
        plan can go on, else why it cannot (the action is then ``stay``)."""
        targets = self.targets(state, chef, macro)
        if isinstance(targets, str):
            return STAY, targets
        if not targets:
            return STAY, f"nothing to {macro.describe()} right now"
        step = self.step_towards(state, chef, targets)
        if step is None:
            return STAY, f"cannot reach anywhere to {macro.describe()} from here"
        return step[0], None


# ---------------------------------------------------------------------- greedy chef


def greedy_macro(planner: Planner, state: KitchenState, chef: int) -> Macro | None:
    """The scripted chef's choice of macro now (``None``: wait)."""
    lay = planner.layout
    kitchen = planner.kitchen
    cell = state.positions[chef]
    holding = state.held[chef]
    planner.region(cell)
    statuses = [kitchen.pot_status(state, p) for p in range(len(lay.pots))]
    my_pots = [p for p in range(len(lay.pots)) if planner.reachable_targets(cell, [lay.pots[p]])]
    others_held = [h for i, h in enumerate(state.held) if i != chef]

    def reach(cells: list[int] | tuple[int, ...]) -> bool:
        return bool(planner.reachable_targets(cell, cells))

    def counters_with(item_test) -> list[int]:
        return [c for c, it in zip(lay.counters, state.counters) if item_test(it)]

    def handoff_counters() -> list[int]:
        return planner.handoff_counters(state, chef)

    fillable = [p for p in my_pots if statuses[p] in ("empty", "filling")]
    if holding in SOUP_ITEMS:
        if reach(lay.serving):
            return Macro("serve")
        return Macro("hand_over") if handoff_counters() else None
    if holding == ONION:
        if fillable:
            # Prefer the fullest pot so soups start sooner.
            best = max(fillable, key=lambda p: state.pot_onions[p])
            return Macro("put_onion", best)
        if not my_pots and handoff_counters():
            return Macro("hand_over")
        if DISH not in others_held and any(s in ("cooking", "ready") for s in statuses):
            return Macro("put_down")
        return None
    if holding == DISH:
        ready = [p for p in my_pots if statuses[p] == "ready"]
        if ready:
            return Macro("pick_up_soup", ready[0])
        cooking = [p for p in my_pots if statuses[p] == "cooking"]
        if cooking:
            return Macro("pick_up_soup", cooking[0])  # walk there and wait
        if not my_pots and handoff_counters():
            return Macro("hand_over")
        return Macro("put_down")  # nothing to plate soon: free the hands (and the way)
    # Empty hands.
    if kitchen.rules.cook_start == "interact":
        full = [p for p in my_pots if statuses[p] == "filling" and state.pot_onions[p] == 3]
        if full:
            return Macro("start_cooking", full[0])
    if reach(counters_with(lambda it: it in SOUP_ITEMS)) and reach(lay.serving):
        return Macro("pick_up_soup")
    dish_sources = list(lay.dish_dispensers) + counters_with(lambda it: it == DISH)
    onion_sources = list(lay.onion_dispensers) + counters_with(lambda it: it == ONION)
    soon = [p for p in my_pots if statuses[p] in ("cooking", "ready")]
    if soon and DISH not in others_held and reach(dish_sources):
        return Macro("get_dish")
    if fillable and reach(onion_sources):
        return Macro("get_onion")
    if not my_pots:
        # A helper in another room: feed the hand-over counters with what the pots need.
        if not handoff_counters():
            return None
        onions_out = len(counters_with(lambda it: it == ONION)) + others_held.count(ONION)
        dishes_out = len(counters_with(lambda it: it == DISH)) + others_held.count(DISH)
        missing = sum(
            MAX_ONIONS - state.pot_onions[p]
            for p in range(len(lay.pots))
            if statuses[p] in ("empty", "filling")
        )
        busy = sum(1 for st in statuses if st in ("cooking", "ready"))
        if busy > dishes_out and reach(lay.dish_dispensers):
            return Macro("get_dish", dispenser_only=True)
        if missing > onions_out and reach(lay.onion_dispensers):
            return Macro("get_onion", dispenser_only=True)
        if dishes_out == 0 and reach(lay.dish_dispensers):
            return Macro("get_dish", dispenser_only=True)
        return None
    if soon and reach(dish_sources):
        return Macro("get_dish")
    if reach(onion_sources) and ONION not in others_held:
        return Macro("get_onion")
    return None


OSCILLATION_WINDOW = 6
"""Steps over which a chef that moves every step but visits at most two cells, holding the
same item, counts as stuck."""


class GreedyPolicy:
    """A scripted chef: :func:`greedy_macro` each step, carried out by the :class:`Planner`,
    with a random step when it is stuck: it did not leave its cell, or it has gone back and
    forth between two cells (two chefs dodging each other in step on a ring) for
    ``OSCILLATION_WINDOW`` steps. So two chefs never block each other for ever.
    Deterministic for a given seed."""

    def __init__(self, kitchen: Kitchen, chef: int, seed: int | None = 0) -> None:
        self.planner = Planner(kitchen)
        self.chef = chef
        self.rng = np.random.default_rng(seed)
        self._last: tuple[int, int] | None = None
        self._stuck = 0
        self._trail: deque[tuple[int, int, bool]] = deque(maxlen=OSCILLATION_WINDOW)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self._last = None
        self._stuck = 0
        self._trail.clear()

    def act(self, state: KitchenState) -> int:
        chef = self.chef
        cell = state.positions[chef]
        # Stuck: the last step was a move and the chef did not leave its cell.
        if self._last is not None and self._last[1] < 4 and self._last[0] == cell:
            self._stuck += 1
        else:
            self._stuck = 0
        # Or going back and forth: two chefs that dodge each other in step (each avoiding the
        # cell the other is leaving) swap between the same two cells for ever.
        moved = self._last is not None and self._last[1] < 4
        self._trail.append((cell, state.held[chef], moved))
        trail = self._trail
        if (
            len(trail) == OSCILLATION_WINDOW
            and all(m for _, _, m in trail)  # moving every step, not waiting at a pot
            and len({(c, h) for c, h, _ in trail}) <= 2
            and self._stuck == 0
        ):
            self._stuck = 2
        if self._stuck >= 2 and self.rng.random() < 0.5:
            action = int(self.rng.integers(0, 4))
        else:
            macro = greedy_macro(self.planner, state, chef)
            if macro is not None:
                action = self.planner.macro_step(state, chef, macro)[0]
            elif self.rng.random() < 0.3:
                action = int(self.rng.integers(0, 4))  # idle: wander, so as not to block
            else:
                action = STAY
        self._last = (cell, action)
        return action


def play_greedy(
    kitchen: Kitchen, seed: int = 0, steps: int | None = None
) -> tuple[int, list[tuple[int, ...]]]:
    """Play the greedy pair for ``steps`` (default: the horizon); ``(points, joint actions)``."""
    policies = [GreedyPolicy(kitchen, i, seed * 100 + i) for i in range(kitchen.layout.num_chefs)]
    state = kitchen.initial_state()
    points = 0
    actions = []
    for _ in range(kitchen.rules.horizon if steps is None else steps):
        joint = tuple(p.act(state) for p in policies)
        state, reward, _ = kitchen.transition(state, joint)
        points += reward
        actions.append(joint)
    return points, actions
