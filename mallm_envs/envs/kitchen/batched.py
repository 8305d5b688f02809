"""Many kitchens stepped together with numpy, for training throughput.

:class:`BatchedKitchen` holds ``num_envs`` copies of one :class:`~.rules.Kitchen` as arrays
and applies a ``(num_envs, num_chefs)`` array of actions to all of them at once, with the
same rules as :meth:`Kitchen.transition <mallm_envs.envs.kitchen.rules.Kitchen.transition>`
(the tests step both side by side on random actions and compare every state). Interacts
are resolved chef by chef in index order, vectorised over the batch; moves, collisions and
cooking are vectorised over everything.

>>> from mallm_envs.envs.kitchen.rules import Kitchen, load_layout
>>> batch = BatchedKitchen(Kitchen(load_layout("cramped_room")), num_envs=8)
>>> batch.reset()
>>> rewards, shaped, done = batch.step(np.zeros((8, 2), dtype=np.int64))
>>> rewards.shape, shaped.shape, bool(done.any())
((8,), (8, 3), False)

Pure numpy; imports neither PettingZoo nor Gymnasium.
"""

from __future__ import annotations

import numpy as np

from mallm_envs.envs.kitchen.rules import (
    COUNTER,
    DISH,
    DISH_DISPENSER,
    IDLE,
    INTERACT,
    MAX_ONIONS,
    NOTHING,
    NUM_ACTIONS,
    NUM_ITEMS,
    ONION,
    ONION_DISPENSER,
    POT,
    SERVING,
    SOUP_1,
    SOUP_3,
    Kitchen,
    KitchenState,
    RuleError,
)

SHAPED_COLUMNS: tuple[str, ...] = ("onion_in_pot", "dish_pickup", "soup_pickup")
"""Column order of the shaped-event counts that :meth:`BatchedKitchen.step` returns."""


class BatchedKitchen:
    """``num_envs`` kitchens of one layout, as arrays (see the module docstring).

    Attributes (all ``int64`` arrays, first axis the batch):
        positions, orientations, held: ``(B, chefs)``.
        counters: ``(B, counters)``; pot_onions, pot_ticks: ``(B, pots)``; timestep: ``(B,)``.
    """

    def __init__(self, kitchen: Kitchen, num_envs: int) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise RuleError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.kitchen = kitchen
        self.num_envs = num_envs
        lay = kitchen.layout
        self.num_chefs = lay.num_chefs
        self.move_table = np.asarray(lay.move_table, dtype=np.int64)
        self.front_table = np.asarray(lay.front_table, dtype=np.int64)
        self.tiles = np.asarray(lay.tiles, dtype=np.int64)
        cells = len(lay.tiles)
        self.counter_slot = np.full(cells, -1, dtype=np.int64)
        self.counter_slot[list(lay.counters)] = np.arange(len(lay.counters))
        self.pot_slot = np.full(cells, -1, dtype=np.int64)
        self.pot_slot[list(lay.pots)] = np.arange(len(lay.pots))
        self.cook_time = kitchen.rules.cook_time
        self.horizon = kitchen.rules.horizon
        self.soup_value = kitchen.rules.soup_value
        self.interact_start = kitchen.rules.cook_start == "interact"
        self.dish_useful = self.num_chefs == 2
        b, n = num_envs, self.num_chefs
        self.positions = np.zeros((b, n), dtype=np.int64)
        self.orientations = np.zeros((b, n), dtype=np.int64)
        self.held = np.zeros((b, n), dtype=np.int64)
        self.counters = np.zeros((b, len(lay.counters)), dtype=np.int64)
        self.pot_onions = np.zeros((b, len(lay.pots)), dtype=np.int64)
        self.pot_ticks = np.full((b, len(lay.pots)), IDLE, dtype=np.int64)
        self.timestep = np.zeros(b, dtype=np.int64)
        self._rows = np.arange(b)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Reset every kitchen, or those where ``mask`` is true."""
        start = self.kitchen.initial_state()
        rows = self._rows if mask is None else np.flatnonzero(mask)
        self.positions[rows] = start.positions
        self.orientations[rows] = start.orientations
        self.held[rows] = start.held
        self.counters[rows] = NOTHING
        self.pot_onions[rows] = 0
        self.pot_ticks[rows] = IDLE
        self.timestep[rows] = 0

    def get_state(self, index: int) -> KitchenState:
        """Kitchen ``index`` as a :class:`KitchenState`."""
        return KitchenState(
            positions=tuple(int(v) for v in self.positions[index]),
            orientations=tuple(int(v) for v in self.orientations[index]),
            held=tuple(int(v) for v in self.held[index]),
            counters=tuple(int(v) for v in self.counters[index]),
            pot_onions=tuple(int(v) for v in self.pot_onions[index]),
            pot_ticks=tuple(int(v) for v in self.pot_ticks[index]),
            timestep=int(self.timestep[index]),
        )

    def set_state(self, index: int, state: KitchenState) -> None:
        """Overwrite kitchen ``index`` with ``state``."""
        self.kitchen.check_state(state)
        self.positions[index] = state.positions
        self.orientations[index] = state.orientations
        self.held[index] = state.held
        self.counters[index] = state.counters
        self.pot_onions[index] = state.pot_onions
        self.pot_ticks[index] = state.pot_ticks
        self.timestep[index] = state.timestep

    # ------------------------------------------------------------------ step

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one joint action per kitchen.

        Args:
            actions: ``(num_envs, num_chefs)`` ints in 0-5.

        Returns:
            ``(points, shaped, done)``: points scored ``(B,)`` (deliveries), shaped event
            counts ``(B, 3)`` in :data:`SHAPED_COLUMNS` order (multiply by the weights in
            ``kitchen.rules.shaped_weights``), and ``done`` ``(B,)`` where the horizon is
            reached. Finished kitchens are not reset here; call :meth:`reset` with ``done``.
        """
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self.num_chefs):
            raise RuleError(
                f"actions must have shape {(self.num_envs, self.num_chefs)}, got {actions.shape}"
            )
        if actions.dtype != np.int64:
            if not np.issubdtype(actions.dtype, np.integer):
                raise RuleError(f"actions must be integers, got dtype {actions.dtype}")
            actions = actions.astype(np.int64)
        if actions.min() < 0 or actions.max() >= NUM_ACTIONS:
            raise RuleError("actions must be in 0-5")
        if (self.timestep >= self.horizon).any():
            raise RuleError("some kitchens reached the horizon; reset them first")
        b = self.num_envs
        points = np.zeros(b, dtype=np.int64)
        shaped = np.zeros((b, 3), dtype=np.int64)
        interacting = actions == INTERACT
        if interacting.any():
            self._interacts(interacting, points, shaped)
        positions = self.positions
        new_positions = self.move_table[positions * NUM_ACTIONS + actions]
        n = self.num_chefs
        if n == 2:
            p0, p1 = positions[:, 0], positions[:, 1]
            q0, q1 = new_positions[:, 0], new_positions[:, 1]
            blocked = (q0 == q1) | ((q0 == p1) & (q1 == p0))
        else:
            blocked = np.zeros(b, dtype=bool)
            for i in range(n):
                for j in range(i + 1, n):
                    blocked |= new_positions[:, i] == new_positions[:, j]
                    blocked |= (new_positions[:, i] == positions[:, j]) & (
                        new_positions[:, j] == positions[:, i]
                    )
        if blocked.any():
            new_positions[blocked] = positions[blocked]
        self.positions = new_positions
        moving = actions < 4
        self.orientations = np.where(moving, actions, self.orientations)
        ticks = self.pot_ticks
        ticks += (ticks >= 0) & (ticks < self.cook_time)
        self.timestep += 1
        return points, shaped, self.timestep >= self.horizon

    def _interacts(self, interacting: np.ndarray, points: np.ndarray, shaped: np.ndarray) -> None:
        held, counters = self.held, self.counters
        pot_onions, pot_ticks = self.pot_onions, self.pot_ticks
        busy = ((pot_ticks != IDLE) | ((pot_onions > 0) & (pot_onions < MAX_ONIONS))).sum(1)
        for chef in range(self.num_chefs):
            rows = np.flatnonzero(interacting[:, chef])
            if rows.size == 0:
                continue
            target = self.front_table[
                self.positions[rows, chef] * 4 + self.orientations[rows, chef]
            ]
            tile = self.tiles[target]
            item = held[rows, chef]

            m = tile == COUNTER
            if m.any():
                r, slot, it = rows[m], self.counter_slot[target[m]], item[m]
                on_counter = counters[r, slot]
                drop = (it != NOTHING) & (on_counter == NOTHING)
                take = (it == NOTHING) & (on_counter != NOTHING)
                counters[r[drop], slot[drop]] = it[drop]
                held[r[drop], chef] = NOTHING
                held[r[take], chef] = on_counter[take]
                counters[r[take], slot[take]] = NOTHING

            m = (tile == ONION_DISPENSER) & (item == NOTHING)
            if m.any():
                held[rows[m], chef] = ONION

            m = (tile == DISH_DISPENSER) & (item == NOTHING)
            if m.any():
                r = rows[m]
                if self.dish_useful:
                    useful = ~(counters[r] == DISH).any(1) & ((held[r] == DISH).sum(1) < busy[r])
                    shaped[r[useful], 1] += 1
                held[r, chef] = DISH

            m = tile == POT
            if m.any():
                r, slot, it = rows[m], self.pot_slot[target[m]], item[m]
                onions, ticks = pot_onions[r, slot], pot_ticks[r, slot]
                if self.interact_start:
                    start = (it == NOTHING) & (ticks == IDLE) & (onions > 0)
                    pot_ticks[r[start], slot[start]] = 0
                serve = (it == DISH) & (ticks >= self.cook_time)
                if serve.any():
                    held[r[serve], chef] = SOUP_1 - 1 + onions[serve]
                    pot_onions[r[serve], slot[serve]] = 0
                    pot_ticks[r[serve], slot[serve]] = IDLE
                    shaped[r[serve], 2] += 1
                add = (it == ONION) & (ticks == IDLE) & (onions < MAX_ONIONS)
                if add.any():
                    ra, sa = r[add], slot[add]
                    held[ra, chef] = NOTHING
                    pot_onions[ra, sa] = onions[add] + 1
                    shaped[ra, 0] += 1
                    if not self.interact_start:
                        full = onions[add] + 1 == MAX_ONIONS
                        pot_ticks[ra[full], sa[full]] = 0

            m = (tile == SERVING) & (item >= SOUP_1)
            if m.any():
                r = rows[m]
                held[r, chef] = NOTHING
                points[r] += np.where(item[m] == SOUP_3, self.soup_value, 0)


# ---------------------------------------------------------------------- features


class FeatureEncoder:
    """Flat, lossless feature vectors of every chef's view, batched.

    For chef ``i`` the vector lists the chefs with ``i`` first, then the others in index
    order; per chef: its cell (one-hot over floor cells), facing (one-hot 4), held item
    (one-hot 6). Then per pot: idle onions / 3, cooking, ready, ticks left / cook time.
    Then per counter: its item (one-hot over the 5 items). Last: time left / horizon.
    All values lie in [0, 1].
    """

    def __init__(self, kitchen: Kitchen) -> None:
        lay = kitchen.layout
        self.kitchen = kitchen
        self.num_chefs = n = lay.num_chefs
        self.floor_index = np.full(len(lay.tiles), 0, dtype=np.int64)
        self.floor_index[list(lay.floor)] = np.arange(len(lay.floor))
        self.num_floor = len(lay.floor)
        self.chef_size = self.num_floor + 4 + NUM_ITEMS
        self.num_pots = len(lay.pots)
        self.num_counters = len(lay.counters)
        self.size = n * self.chef_size + 4 * self.num_pots + (NUM_ITEMS - 1) * self.num_counters + 1
        self.order = np.array([[i] + [j for j in range(n) if j != i] for i in range(n)])
        self.cook_time = kitchen.rules.cook_time
        self.horizon = kitchen.rules.horizon

    def encode(
        self,
        positions: np.ndarray,
        orientations: np.ndarray,
        held: np.ndarray,
        counters: np.ndarray,
        pot_onions: np.ndarray,
        pot_ticks: np.ndarray,
        timestep: np.ndarray,
    ) -> np.ndarray:
        """``(B, chefs, size)`` float32 features from batched state arrays."""
        b, n = positions.shape
        chef = np.zeros((b, n, self.chef_size), dtype=np.float32)
        rows = np.arange(b)[:, None]
        cols = np.arange(n)[None, :]
        chef[rows, cols, self.floor_index[positions]] = 1.0
        chef[rows, cols, self.num_floor + orientations] = 1.0
        chef[rows, cols, self.num_floor + 4 + held] = 1.0
        chef_part = chef[:, self.order].reshape(b, n, n * self.chef_size)
        idle = pot_ticks == IDLE
        ready = pot_ticks >= self.cook_time
        pots = np.stack(
            [
                np.where(idle, pot_onions / MAX_ONIONS, 0.0),
                (~idle & ~ready),
                ready,
                np.where(idle, 0.0, (self.cook_time - np.maximum(pot_ticks, 0)) / self.cook_time),
            ],
            axis=-1,
        ).reshape(b, -1)
        counter = np.zeros((b, self.num_counters, NUM_ITEMS), dtype=np.float32)
        counter[np.arange(b)[:, None], np.arange(self.num_counters)[None, :], counters] = 1.0
        time_left = ((self.horizon - timestep) / self.horizon)[:, None]
        shared = np.concatenate(
            [pots.astype(np.float32), counter[:, :, 1:].reshape(b, -1), time_left], axis=1
        ).astype(np.float32)
        return np.concatenate([chef_part, np.repeat(shared[:, None, :], n, axis=1)], axis=2)

    def encode_batch(self, batch: BatchedKitchen) -> np.ndarray:
        return self.encode(
            batch.positions,
            batch.orientations,
            batch.held,
            batch.counters,
            batch.pot_onions,
            batch.pot_ticks,
            batch.timestep,
        )

    def encode_state(self, state: KitchenState) -> np.ndarray:
        """``(chefs, size)`` features of one state."""
        return self.encode(
            np.array([state.positions]),
            np.array([state.orientations]),
            np.array([state.held]),
            np.array([state.counters], dtype=np.int64).reshape(1, -1),
            np.array([state.pot_onions]),
            np.array([state.pot_ticks]),
            np.array([state.timestep]),
        )[0]
