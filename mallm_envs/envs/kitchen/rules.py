"""The kitchen's rules, pure: layouts, state and one transition function.

Nothing here imports PettingZoo or Gymnasium. The environments, the batched numpy core, the
planner and the scripted chefs are all built on this module, and the tests check them
against it.

The rules follow Overcooked-AI (``overcooked_ai_py/mdp/overcooked_mdp.py``, Carroll et al.
2019) so that scores compare:

* Six actions per chef, in Overcooked-AI's order: up, down, right, left, stay, interact.
  A move turns the chef to face that way; it steps only onto floor. ``stay`` and
  ``interact`` keep position and facing.
* Interacts are resolved first, chef by chef in index order, on the tile each chef faces
  (positions before the move). Then all moves at once: if any two chefs would end on the
  same cell or swap cells, *every* chef keeps its cell (facings still turn). Then the pots
  cook one tick, and the clock advances.
* Interact with: an onion dispenser or dish dispenser, empty-handed -> take an onion or a
  dish; an empty counter while holding something -> put it down; a counter holding
  something, empty-handed -> pick it up; a pot with fewer than three onions, not cooking,
  holding an onion -> the onion goes in; a ready pot holding a dish -> take the soup; the
  serving window holding a soup -> deliver it (20 points for a three-onion soup).
* Cooking takes 20 ticks. With ``cook_start="auto"`` (the default, and the classic
  Overcooked-AI rule of the 2019 paper) the third onion starts the pot; with
  ``cook_start="interact"`` (Overcooked-AI 1.1.0's default dynamics) an empty-handed
  interact starts a pot holding one to three onions, and soups of fewer than three onions
  are worth nothing.
* Shaped reward components, kept apart from the score: an onion into a pot 3, a useful dish
  pickup 3 (a dish is useful when no dish lies on a counter and the chefs hold fewer dishes
  than there are non-empty pots, as Overcooked-AI counts them), a soup picked up 5.

Cells are numbered in reading order, ``cell = y * width + x``; ``x`` grows to the right
and ``y`` downwards, as in Overcooked-AI.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Actions, in Overcooked-AI's index order.
UP, DOWN, RIGHT, LEFT, STAY, INTERACT = range(6)
NUM_ACTIONS = 6
ACTION_NAMES: tuple[str, ...] = ("up", "down", "right", "left", "stay", "interact")
DIRECTION_NAMES: tuple[str, ...] = ("up", "down", "right", "left")
DIRECTION_DELTAS: tuple[tuple[int, int], ...] = ((0, -1), (0, 1), (1, 0), (-1, 0))

# Tiles. The characters are the layout-file alphabet (the same as Overcooked-AI's).
FLOOR, COUNTER, POT, ONION_DISPENSER, DISH_DISPENSER, SERVING = range(6)
TILE_CHARS: tuple[str, ...] = (" ", "X", "P", "O", "D", "S")
TILE_NAMES: tuple[str, ...] = (
    "floor",
    "counter",
    "pot",
    "onion dispenser",
    "dish dispenser",
    "serving window",
)

# Items a chef holds or a counter carries. A soup remembers how many onions it has.
NOTHING, ONION, DISH, SOUP_1, SOUP_2, SOUP_3 = range(6)
NUM_ITEMS = 6
ITEM_NAMES: tuple[str, ...] = (
    "nothing",
    "onion",
    "dish",
    "soup (1 onion)",
    "soup (2 onions)",
    "soup",
)
SOUP_ITEMS = frozenset((SOUP_1, SOUP_2, SOUP_3))

MAX_ONIONS = 3
IDLE = -1  # pot tick of a pot that is not cooking

CookStart = Literal["auto", "interact"]

LAYOUT_DIR = Path(__file__).with_name("layouts")
CLASSIC_LAYOUTS: tuple[str, ...] = (
    "cramped_room",
    "asymmetric_advantages",
    "coordination_ring",
    "forced_coordination",
    "counter_circuit",
)


class LayoutError(ValueError):
    """A layout file or grid is malformed or unplayable; the message says where and why."""


class RuleError(ValueError):
    """The rules were called wrongly (wrong number of actions, an action out of range, a
    step after the horizon, a state that does not fit the layout)."""


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    """An immutable kitchen grid. Build it with :func:`parse_layout` or :func:`load_layout`.

    Attributes:
        name: identifier (the file stem for bundled layouts).
        title: human title.
        rows: the grid rows, chef starts replaced by floor.
        starts: start cell of each chef, chef 0 first (the ``1`` in the file).
        width, height: grid size.
    """

    name: str
    title: str
    rows: tuple[str, ...]
    starts: tuple[int, ...]
    width: int = field(init=False)
    height: int = field(init=False)
    tiles: tuple[int, ...] = field(init=False, repr=False)
    pots: tuple[int, ...] = field(init=False, repr=False)
    counters: tuple[int, ...] = field(init=False, repr=False)
    onion_dispensers: tuple[int, ...] = field(init=False, repr=False)
    dish_dispensers: tuple[int, ...] = field(init=False, repr=False)
    serving: tuple[int, ...] = field(init=False, repr=False)
    floor: tuple[int, ...] = field(init=False, repr=False)
    pot_index: dict[int, int] = field(init=False, repr=False, compare=False)
    counter_index: dict[int, int] = field(init=False, repr=False, compare=False)
    move_table: tuple[int, ...] = field(init=False, repr=False, compare=False)
    front_table: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rows = self.rows
        if not rows:
            raise LayoutError(f"layout {self.name!r}: the grid is empty")
        width = len(rows[0])
        for y, row in enumerate(rows):
            if len(row) != width:
                raise LayoutError(
                    f"layout {self.name!r}: row {y} has {len(row)} cells, row 0 has {width}; "
                    "the grid must be rectangular"
                )
            for x, char in enumerate(row):
                if char not in TILE_CHARS:
                    raise LayoutError(
                        f"layout {self.name!r}: unknown tile {char!r} at x={x}, y={y}; "
                        f"tiles are {' '.join(repr(c) for c in TILE_CHARS)} and chef starts 1-9"
                    )
        height = len(rows)
        tiles = tuple(TILE_CHARS.index(c) for row in rows for c in row)
        setattr_ = object.__setattr__
        setattr_(self, "width", width)
        setattr_(self, "height", height)
        setattr_(self, "tiles", tiles)

        def cells_of(kind: int) -> tuple[int, ...]:
            return tuple(i for i, t in enumerate(tiles) if t == kind)

        setattr_(self, "pots", cells_of(POT))
        setattr_(self, "counters", cells_of(COUNTER))
        setattr_(self, "onion_dispensers", cells_of(ONION_DISPENSER))
        setattr_(self, "dish_dispensers", cells_of(DISH_DISPENSER))
        setattr_(self, "serving", cells_of(SERVING))
        setattr_(self, "floor", cells_of(FLOOR))
        setattr_(self, "pot_index", {c: i for i, c in enumerate(self.pots)})
        setattr_(self, "counter_index", {c: i for i, c in enumerate(self.counters)})
        for x in range(width):
            for y in (0, height - 1):
                if tiles[y * width + x] == FLOOR:
                    raise LayoutError(
                        f"layout {self.name!r}: floor at the edge (x={x}, y={y}); the border "
                        "must be counters, pots, dispensers or serving windows"
                    )
        for y in range(height):
            for x in (0, width - 1):
                if tiles[y * width + x] == FLOOR:
                    raise LayoutError(
                        f"layout {self.name!r}: floor at the edge (x={x}, y={y}); the border "
                        "must be counters, pots, dispensers or serving windows"
                    )
        # move_table[cell * 6 + action] -> cell after the move (ignoring other chefs);
        # front_table[cell * 4 + direction] -> the cell faced.
        move, front = [], []
        for cell in range(width * height):
            x, y = cell % width, cell // width
            for dx, dy in DIRECTION_DELTAS:
                nx, ny = x + dx, y + dy
                inside = 0 <= nx < width and 0 <= ny < height
                target = ny * width + nx if inside else cell
                front.append(target)
                move.append(target if inside and tiles[target] == FLOOR else cell)
            move.extend((cell, cell))  # stay, interact
        setattr_(self, "move_table", tuple(move))
        setattr_(self, "front_table", tuple(front))
        self._validate()

    def _validate(self) -> None:
        name = self.name
        if not self.starts:
            raise LayoutError(f"layout {name!r}: no chef start (digits 1-9)")
        if len(set(self.starts)) != len(self.starts):
            raise LayoutError(f"layout {name!r}: two chefs start on one cell")
        for what, cells in (
            ("pot", self.pots),
            ("onion dispenser", self.onion_dispensers),
            ("dish dispenser", self.dish_dispensers),
            ("serving window", self.serving),
        ):
            if not cells:
                raise LayoutError(f"layout {name!r}: needs at least one {what}")
        reachable: set[int] = set()
        for start in self.starts:
            reachable |= self.reachable_floor(start)
        usable = {self.front_table[c * 4 + d] for c in reachable for d in range(4)}
        for what, cells in (
            ("pot", self.pots),
            ("onion dispenser", self.onion_dispensers),
            ("dish dispenser", self.dish_dispensers),
            ("serving window", self.serving),
        ):
            for cell in cells:
                if what == "pot" and cell not in usable:
                    x, y = self.xy(cell)
                    raise LayoutError(f"layout {name!r}: no chef can reach the pot at x={x}, y={y}")
            if not usable.intersection(cells):
                raise LayoutError(f"layout {name!r}: no chef can reach any {what}")

    @property
    def num_chefs(self) -> int:
        return len(self.starts)

    def xy(self, cell: int) -> tuple[int, int]:
        """``(x, y)`` of a cell index."""
        return cell % self.width, cell // self.width

    def cell(self, x: int, y: int) -> int:
        """Cell index of ``(x, y)``."""
        return y * self.width + x

    def reachable_floor(self, start: int) -> set[int]:
        """Floor cells a lone chef can walk to from ``start`` (breadth-first)."""
        seen = {start}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            for action in range(4):
                nxt = self.move_table[cell * 6 + action]
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return seen

    def to_text(self) -> str:
        """The layout in the file format that :func:`parse_layout` reads."""
        rows = [list(row) for row in self.rows]
        for chef, cell in enumerate(self.starts):
            x, y = self.xy(cell)
            rows[y][x] = str(chef + 1)
        grid = "\n".join("|" + "".join(r) + "|" for r in rows)
        return f"name: {self.name}\ntitle: {self.title}\ngrid:\n{grid}\n"


def parse_layout(text: str, *, name: str | None = None) -> Layout:
    """Parse a ``.layout`` file strictly.

    The format: ``#`` comment lines and blank lines, then ``key: value`` header lines
    (``name`` and ``title``; ``name`` may come from the argument), then a line ``grid:``
    followed by the grid rows, each wrapped in ``|`` so that trailing floor survives
    editors. Tiles: ``X`` counter, ``P`` pot, ``O`` onion dispenser, ``D`` dish dispenser,
    ``S`` serving window, space floor, ``1``-``9`` a chef's start on floor (chef 0 is ``1``;
    digits must run 1..n without gaps). Nothing is evaluated.
    """
    if not isinstance(text, str):
        raise LayoutError(f"layout text must be str, got {type(text).__name__}")
    header: dict[str, str] = {}
    grid: list[str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if grid is not None:
            if not line.strip():
                continue
            stripped = line.strip()
            if len(stripped) < 2 or stripped[0] != "|" or stripped[-1] != "|":
                raise LayoutError(f"line {number}: grid rows look like |XXPXX|, got {line!r}")
            grid.append(stripped[1:-1])
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            raise LayoutError(f"line {number}: expected 'key: value' or 'grid:', got {line!r}")
        if key == "grid":
            if value.strip():
                raise LayoutError(f"line {number}: the grid starts on the line after 'grid:'")
            grid = []
        elif key in ("name", "title"):
            if key in header:
                raise LayoutError(f"line {number}: {key!r} given twice")
            header[key] = value.strip()
        else:
            raise LayoutError(f"line {number}: unknown key {key!r} (known: name, title, grid)")
    if grid is None:
        raise LayoutError("no 'grid:' section")
    layout_name = header.get("name") or name
    if not layout_name:
        raise LayoutError("the layout has no name: add 'name: ...' or pass name=")
    if name is not None and header.get("name") not in (None, name):
        raise LayoutError(f"layout file names itself {header['name']!r}, expected {name!r}")
    starts: dict[int, int] = {}
    rows: list[str] = []
    width = len(grid[0]) if grid else 0
    for y, row in enumerate(grid):
        chars = []
        for x, char in enumerate(row):
            if char.isdigit() and char != "0":
                chef = int(char) - 1
                if chef in starts:
                    raise LayoutError(f"layout {layout_name!r}: chef start {char} appears twice")
                starts[chef] = y * width + x
                chars.append(" ")
            else:
                chars.append(char)
        rows.append("".join(chars))
    if sorted(starts) != list(range(len(starts))):
        raise LayoutError(
            f"layout {layout_name!r}: chef starts must be numbered 1..n without gaps, "
            f"got {sorted(c + 1 for c in starts)}"
        )
    return Layout(
        name=layout_name,
        title=header.get("title", layout_name),
        rows=tuple(rows),
        starts=tuple(starts[c] for c in range(len(starts))),
    )


_LAYOUT_CACHE: dict[str, Layout] = {}


def load_layout(name: str) -> Layout:
    """Load a bundled layout by name (see :data:`CLASSIC_LAYOUTS`)."""
    if not isinstance(name, str) or name not in CLASSIC_LAYOUTS:
        raise LayoutError(
            f"unknown layout {name!r}; the bundled layouts are {', '.join(CLASSIC_LAYOUTS)}"
        )
    if name not in _LAYOUT_CACHE:
        text = (LAYOUT_DIR / f"{name}.layout").read_text(encoding="utf-8")
        _LAYOUT_CACHE[name] = parse_layout(text, name=name)
    return _LAYOUT_CACHE[name]


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class KitchenState:
    """Everything that changes during an episode. Immutable; equal states compare equal.

    Attributes:
        positions: cell of each chef.
        orientations: direction each chef faces (0 up, 1 down, 2 right, 3 left).
        held: item each chef holds (``NOTHING``, ``ONION``, ``DISH``, ``SOUP_*``).
        counters: item on each counter, in ``layout.counters`` order.
        pot_onions: onions in each pot, in ``layout.pots`` order (reading order).
        pot_ticks: ``IDLE`` (-1) for a pot not cooking, else ticks cooked so far; a pot is
            ready when its ticks reach the cook time.
        timestep: steps taken so far.
    """

    positions: tuple[int, ...]
    orientations: tuple[int, ...]
    held: tuple[int, ...]
    counters: tuple[int, ...]
    pot_onions: tuple[int, ...]
    pot_ticks: tuple[int, ...]
    timestep: int = 0


Event = tuple[int, str]
"""``(chef index, event name)``. Names: ``onion_pickup``, ``dish_pickup``,
``useful_dish_pickup``, ``counter_pickup``, ``counter_drop``, ``onion_in_pot``,
``cook_start``, ``soup_pickup``, ``soup_delivery``."""

SHAPED_EVENTS: dict[str, str] = {
    "onion_in_pot": "onion_in_pot",
    "useful_dish_pickup": "dish_pickup",
    "soup_pickup": "soup_pickup",
}
"""Event name -> shaped reward component it pays."""


@dataclass(frozen=True)
class KitchenRules:
    """Rule constants (Overcooked-AI's defaults).

    Attributes:
        horizon: steps per episode.
        cook_time: ticks a pot cooks before the soup is ready.
        soup_value: points for delivering a three-onion soup.
        cook_start: ``"auto"`` (the third onion starts the pot) or ``"interact"``
            (an empty-handed interact starts it, Overcooked-AI 1.1.0's dynamics).
        onion_in_pot_reward, dish_pickup_reward, soup_pickup_reward: shaped components.
    """

    horizon: int = 400
    cook_time: int = 20
    soup_value: int = 20
    cook_start: CookStart = "auto"
    onion_in_pot_reward: float = 3.0
    dish_pickup_reward: float = 3.0
    soup_pickup_reward: float = 5.0

    def __post_init__(self) -> None:
        for name in ("horizon", "cook_time"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RuleError(f"{name} must be a positive int, got {value!r}")
        if self.cook_start not in ("auto", "interact"):
            raise RuleError(f"cook_start must be 'auto' or 'interact', got {self.cook_start!r}")

    @property
    def shaped_weights(self) -> dict[str, float]:
        return {
            "onion_in_pot": self.onion_in_pot_reward,
            "dish_pickup": self.dish_pickup_reward,
            "soup_pickup": self.soup_pickup_reward,
        }


def shaped_components(events: Sequence[Event], rules: KitchenRules) -> dict[str, float]:
    """Shaped reward of one step, by component, from its events.

    >>> shaped_components([(0, "onion_in_pot"), (1, "soup_pickup")], KitchenRules())
    {'onion_in_pot': 3.0, 'dish_pickup': 0.0, 'soup_pickup': 5.0}
    """
    weights = rules.shaped_weights
    out = dict.fromkeys(weights, 0.0)
    for _, name in events:
        component = SHAPED_EVENTS.get(name)
        if component is not None:
            out[component] += weights[component]
    return out


def _coerce_actions(joint_action: Sequence[object]) -> tuple[int, ...]:
    out = []
    for action in joint_action:
        if isinstance(action, bool) or not hasattr(action, "__index__"):
            raise RuleError(f"actions are ints 0-5 ({', '.join(ACTION_NAMES)}), got {action!r}")
        value = action.__index__()
        if not 0 <= value < NUM_ACTIONS:
            raise RuleError(f"actions are ints 0-5 ({', '.join(ACTION_NAMES)}), got {action!r}")
        out.append(value)
    return tuple(out)


class Kitchen:
    """A layout plus rules: the game. Pure: methods never mutate their arguments.

    >>> kitchen = Kitchen(load_layout("cramped_room"))
    >>> state = kitchen.initial_state()
    >>> state, points, events = kitchen.transition(state, (UP, RIGHT))
    >>> kitchen.layout.xy(state.positions[0]), points, events
    ((1, 1), 0, ())
    >>> state, points, events = kitchen.transition(state, (STAY, INTERACT))
    >>> ITEM_NAMES[state.held[1]], events
    ('onion', ((1, 'onion_pickup'),))
    """

    __slots__ = ("_dish_useful", "_interact_start", "layout", "rules")

    def __init__(self, layout: Layout, rules: KitchenRules | None = None) -> None:
        if not isinstance(layout, Layout):
            raise RuleError(f"layout must be a Layout, got {type(layout).__name__}")
        self.layout = layout
        self.rules = rules if rules is not None else KitchenRules()
        self._interact_start = self.rules.cook_start == "interact"
        # Overcooked-AI pays the useful-dish shaping only with exactly two chefs.
        self._dish_useful = layout.num_chefs == 2

    def initial_state(self) -> KitchenState:
        lay = self.layout
        n = lay.num_chefs
        return KitchenState(
            positions=lay.starts,
            orientations=(UP,) * n,
            held=(NOTHING,) * n,
            counters=(NOTHING,) * len(lay.counters),
            pot_onions=(0,) * len(lay.pots),
            pot_ticks=(IDLE,) * len(lay.pots),
            timestep=0,
        )

    def is_done(self, state: KitchenState) -> bool:
        return state.timestep >= self.rules.horizon

    def pot_status(self, state: KitchenState, pot: int) -> str:
        """``empty``, ``filling`` (1-2 onions, or 3 waiting to start), ``cooking``, ``ready``."""
        ticks = state.pot_ticks[pot]
        if ticks == IDLE:
            return "filling" if state.pot_onions[pot] else "empty"
        return "ready" if ticks >= self.rules.cook_time else "cooking"

    def check_state(self, state: KitchenState) -> None:
        """Raise :class:`RuleError` when ``state`` cannot belong to this kitchen."""
        lay = self.layout
        n = lay.num_chefs
        if not isinstance(state, KitchenState):
            raise RuleError(f"state must be a KitchenState, got {type(state).__name__}")
        if not (len(state.positions) == len(state.orientations) == len(state.held) == n):
            raise RuleError(f"state has the wrong number of chefs for {lay.name!r} ({n})")
        if len(set(state.positions)) != n:
            raise RuleError("two chefs share a cell")
        for cell in state.positions:
            if not (0 <= cell < len(lay.tiles)) or lay.tiles[cell] != FLOOR:
                raise RuleError(f"chef on a non-floor cell {cell}")
        if len(state.counters) != len(lay.counters) or len(state.pot_onions) != len(lay.pots):
            raise RuleError("counter or pot count does not match the layout")
        if len(state.pot_ticks) != len(lay.pots):
            raise RuleError("pot count does not match the layout")

    def transition(
        self, state: KitchenState, joint_action: Sequence[int]
    ) -> tuple[KitchenState, int, tuple[Event, ...]]:
        """One joint step: ``(next state, points scored, events)``.

        ``joint_action`` has one action index (0-5) per chef. Raises :class:`RuleError` for
        a wrong number of actions, an index out of range, or a state at the horizon.
        """
        lay = self.layout
        positions = state.positions
        n = len(positions)
        if len(joint_action) != n:
            raise RuleError(f"expected {n} actions (one per chef), got {len(joint_action)}")
        for action in joint_action:
            if action.__class__ is not int or not 0 <= action < NUM_ACTIONS:
                joint_action = _coerce_actions(joint_action)
                break
        if state.timestep >= self.rules.horizon:
            raise RuleError(
                f"the episode ended at the horizon ({self.rules.horizon}); start a new one"
            )
        orientations = state.orientations
        held = state.held
        counters = state.counters
        pot_onions = state.pot_onions
        pot_ticks = state.pot_ticks
        reward = 0
        events: list[Event] = []
        if INTERACT in joint_action:
            held, counters, pot_onions, pot_ticks, reward = self._interacts(
                state, joint_action, events
            )
        # Moves, all at once.
        move = lay.move_table
        new_positions = tuple(move[p * 6 + a] for p, a in zip(positions, joint_action))
        if new_positions != positions:
            if n == 2:
                a0, a1 = new_positions
                if a0 == a1 or (a0 == positions[1] and a1 == positions[0]):
                    new_positions = positions
            elif len(set(new_positions)) < n or any(
                new_positions[i] == positions[j] and new_positions[j] == positions[i]
                for i in range(n)
                for j in range(i + 1, n)
            ):
                new_positions = positions
        new_orientations = tuple(a if a < 4 else o for o, a in zip(orientations, joint_action))
        # Pots cook.
        cook_time = self.rules.cook_time
        for t in pot_ticks:
            if 0 <= t < cook_time:
                pot_ticks = tuple(t + 1 if 0 <= t < cook_time else t for t in pot_ticks)
                break
        next_state = KitchenState(
            new_positions,
            new_orientations,
            held,
            counters,
            pot_onions,
            pot_ticks,
            state.timestep + 1,
        )
        return next_state, reward, tuple(events)

    def _interacts(
        self, state: KitchenState, joint_action: Sequence[int], events: list[Event]
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], int]:
        lay = self.layout
        rules = self.rules
        cook_time = rules.cook_time
        held = list(state.held)
        counters = list(state.counters)
        pot_onions = list(state.pot_onions)
        pot_ticks = list(state.pot_ticks)
        reward = 0
        # Overcooked-AI takes the pot snapshot once, before any interact of this step.
        busy_pots = sum(
            1
            for onions, ticks in zip(pot_onions, pot_ticks)
            if ticks != IDLE or 0 < onions < MAX_ONIONS
        )
        tiles = lay.tiles
        front_table = lay.front_table
        for chef, action in enumerate(joint_action):
            if action != INTERACT:
                continue
            target = front_table[state.positions[chef] * 4 + state.orientations[chef]]
            tile = tiles[target]
            item = held[chef]
            if tile == COUNTER:
                slot = lay.counter_index[target]
                if item != NOTHING and counters[slot] == NOTHING:
                    counters[slot] = item
                    held[chef] = NOTHING
                    events.append((chef, "counter_drop"))
                elif item == NOTHING and counters[slot] != NOTHING:
                    held[chef] = counters[slot]
                    counters[slot] = NOTHING
                    events.append((chef, "counter_pickup"))
            elif tile == ONION_DISPENSER:
                if item == NOTHING:
                    held[chef] = ONION
                    events.append((chef, "onion_pickup"))
            elif tile == DISH_DISPENSER:
                if item == NOTHING:
                    events.append((chef, "dish_pickup"))
                    if self._dish_useful and DISH not in counters and held.count(DISH) < busy_pots:
                        events.append((chef, "useful_dish_pickup"))
                    held[chef] = DISH
            elif tile == POT:
                pot = lay.pot_index[target]
                ticks = pot_ticks[pot]
                onions = pot_onions[pot]
                if item == NOTHING:
                    if self._interact_start and ticks == IDLE and onions > 0:
                        pot_ticks[pot] = 0
                        events.append((chef, "cook_start"))
                elif item == DISH:
                    if ticks >= cook_time:
                        held[chef] = SOUP_1 - 1 + onions
                        pot_onions[pot] = 0
                        pot_ticks[pot] = IDLE
                        events.append((chef, "soup_pickup"))
                elif item == ONION and ticks == IDLE and onions < MAX_ONIONS:
                    held[chef] = NOTHING
                    pot_onions[pot] = onions + 1
                    events.append((chef, "onion_in_pot"))
                    if onions + 1 == MAX_ONIONS and not self._interact_start:
                        pot_ticks[pot] = 0
                        events.append((chef, "cook_start"))
            elif tile == SERVING and item in SOUP_ITEMS:
                held[chef] = NOTHING
                if item == SOUP_3:
                    reward += rules.soup_value
                events.append((chef, "soup_delivery"))
        return tuple(held), tuple(counters), tuple(pot_onions), tuple(pot_ticks), reward

    def replace(self, state: KitchenState, **changes: object) -> KitchenState:
        """A copy of ``state`` with fields changed (for tests and scenario set-up)."""
        return dataclasses.replace(state, **changes)
