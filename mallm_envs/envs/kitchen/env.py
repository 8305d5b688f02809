"""Kitchen: an Overcooked-style cooperative cooking game, as text and as numbers.

| | |
|---|---|
| ids | ``Kitchen-v0`` (text), ``KitchenNumeric-v0`` (numbers, classic MARL) |
| agents | ``chef_0``, ``chef_1`` (one per start in the layout) |
| API | PettingZoo AEC (``mallm_envs.make``) and Parallel (``mallm_envs.make_parallel``; native classes for the numeric mode) |
| observation | text: ``{"text": str, "turn": int}``; numeric: ``Box`` grid planes ``(channels, height, width)`` or a flat feature vector |
| actions | text: ``up``/``down``/``left``/``right``/``stay``/``interact``, ``continue``, or a plan such as ``get onion``; numeric: ``Discrete(6)`` |
| reward | 20 per three-onion soup delivered, shared; optional shaped terms (onion in pot 3, useful dish pickup 3, soup pickup 5) |
| max turns | the horizon, 400 joint steps |

Description
-----------
Two chefs share a kitchen (the five classic Overcooked-AI layouts: ``cramped_room``,
``asymmetric_advantages``, ``coordination_ring``, ``forced_coordination``,
``counter_circuit``). Onions come from onion dispensers ``O``; three onions in a pot ``P``
start it cooking; after 20 steps the soup is ready; a chef holding a dish from the dish
dispenser ``D`` takes it out, and a delivery at the serving window ``S`` scores 20 points.
Counters ``X`` hold one item each and let chefs pass things across. The rules, movement and
collisions follow Overcooked-AI (see :mod:`mallm_envs.envs.kitchen.rules`), so scores
compare with the literature; the tests replay trajectories recorded from
``overcooked-ai`` 1.1.0 and match every state.

Each turn of the text env is one joint step: every chef submits an action and the kitchen
advances once (``schedule="simultaneous"``: nobody sees the partner's action of this step;
``"sequential"``: chef_1 sees chef_0's text first).

Observation
-----------
Text mode: a prompt with the layout, the grid (chefs drawn as ``1``, ``2``; items on
counters as ``o`` onion, ``d`` dish, ``s`` soup), every chef's position, facing and held
item, every pot's state, the items on counters, the score, the steps left, what the chef did
last step (and why it was refused) and its current plan.

Numeric mode (``observation="grid"``, the default): lossless planes, float32, shape
``(5 * chefs + 13, height, width)``, for the observing chef first: the chefs' positions
(observer first), their facings (4 per chef), then pots, counters, onion dispensers, dish
dispensers, serving windows, onions in idle pots, onions in cooking or finished soups, cook
ticks left, soup ready, dishes, onions, urgency (fewer than 40 steps left) and the fraction
of the episode left. ``observation="features"``: a flat vector in [0, 1] (see
:class:`~mallm_envs.envs.kitchen.batched.FeatureEncoder`), the same one the batched core
gives for training. ``state()`` is chef_0's view.

Actions and invalid actions
---------------------------
Text mode, case-insensitive: ``up``, ``down``, ``left``, ``right`` (move, or turn when
blocked), ``stay``, ``interact`` (with the tile faced); a plan, carried out by a
breadth-first planner one step per turn until its interact happens: ``get onion``,
``get dish``, ``put onion in pot N``, ``pick up soup [from pot N]``, ``serve soup``,
``put down``, ``hand over`` (put the item on a counter another chef can reach), ``pick up``,
``start cooking pot N`` (only with ``cook_start="interact"``); ``continue`` carries on with
the current plan. Anything else, a plan that does not fit (``serve soup`` with empty hands),
a target that cannot be reached, or text the core refuses (NUL bytes, lone surrogates,
over-long) makes the chef ``stay`` this step, with the reason in
``infos[agent]["invalid_reason"]``. Numeric mode: an int 0-5 (up, down, right, left, stay,
interact, Overcooked-AI's order); anything else raises
:class:`~mallm_envs.core.errors.ActionTypeError`.

Rewards
-------
Every chef gets the team reward: ``delivery`` points (20 per three-onion soup). With
``shaped_reward=True`` the shaped terms are added too. Every component is in
``infos[agent]["reward_components"]`` (``delivery``, ``onion_in_pot``, ``dish_pickup``,
``soup_pickup``) whether or not it is paid.

Episode end
-----------
Truncation after ``horizon`` joint steps (400). There is no terminal state.

Arguments
---------
``layout`` (one of the five names), ``horizon`` (400), ``cook_start`` (``"auto"``: the third
onion starts the pot, the classic rule; ``"interact"``: Overcooked-AI 1.1.0's explicit
start), ``shaped_reward`` (False), ``render_mode`` (``"ansi"``, ``"rgb_array"``, text mode
also ``"human"``); text mode: ``schedule``; numeric mode: ``observation`` (``"grid"`` or
``"features"``).

Version history
---------------
* v0: first version.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

from mallm_envs.core import CoopTextEnv, TurnResult
from mallm_envs.core.errors import (
    ActionTypeError,
    EnvArgumentError,
    EpisodeOverError,
    NotYourTurnError,
    ResetNeededError,
    UnknownAgentError,
)
from mallm_envs.envs.kitchen import render as kitchen_render
from mallm_envs.envs.kitchen.batched import FeatureEncoder
from mallm_envs.envs.kitchen.planner import MACRO_HELP, Macro, Planner, parse_macro
from mallm_envs.envs.kitchen.rules import (
    ACTION_NAMES,
    CLASSIC_LAYOUTS,
    DIRECTION_NAMES,
    DISH,
    DISH_DISPENSER,
    IDLE,
    INTERACT,
    ITEM_NAMES,
    NOTHING,
    NUM_ACTIONS,
    ONION,
    ONION_DISPENSER,
    POT,
    SERVING,
    SOUP_1,
    SOUP_ITEMS,
    STAY,
    Kitchen,
    KitchenRules,
    KitchenState,
    LayoutError,
    RuleError,
    load_layout,
    shaped_components,
)

COMPONENTS = ("delivery", "onion_in_pot", "dish_pickup", "soup_pickup")

_EVENT_TEXT = {
    "onion_pickup": "took an onion",
    "dish_pickup": "took a dish",
    "counter_pickup": "picked up an item from a counter",
    "counter_drop": "put an item on a counter",
    "onion_in_pot": "put an onion in a pot",
    "cook_start": "started a pot cooking",
    "soup_pickup": "took a soup out of a pot",
    "soup_delivery": "delivered a soup",
}


def build_kitchen(layout: str, horizon: int, cook_start: str) -> Kitchen:
    """The :class:`Kitchen` for env arguments, with typed errors for bad values."""
    if not isinstance(layout, str) or layout not in CLASSIC_LAYOUTS:
        raise EnvArgumentError(
            f"layout must be one of {', '.join(CLASSIC_LAYOUTS)}; got {layout!r}"
        )
    try:
        return Kitchen(load_layout(layout), KitchenRules(horizon=horizon, cook_start=cook_start))
    except (RuleError, LayoutError) as err:
        raise EnvArgumentError(str(err)) from None


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


_PRIMITIVES = {
    "up": 0,
    "north": 0,
    "move up": 0,
    "go up": 0,
    "down": 1,
    "south": 1,
    "move down": 1,
    "go down": 1,
    "right": 2,
    "east": 2,
    "move right": 2,
    "go right": 2,
    "left": 3,
    "west": 3,
    "move left": 3,
    "go left": 3,
    "stay": STAY,
    "wait": STAY,
    "noop": STAY,
    "do nothing": STAY,
    "interact": INTERACT,
    "use": INTERACT,
}


def normalise_action(text: str) -> str:
    """Lower-case, single spaces, no surrounding quotes or final full stop."""
    text = " ".join(text.strip().lower().split())
    text = text.strip("\"'`").rstrip(".!").strip()
    return text


class KitchenEnv(CoopTextEnv):
    """The text kitchen (see the module docstring)."""

    official_suite_size: ClassVar[int] = 10  # leaderboard episodes (400 steps each)
    metadata: ClassVar[dict[str, Any]] = {
        "name": "kitchen_v0",
        "render_modes": ["ansi", "human", "rgb_array"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        *,
        layout: str = "cramped_room",
        horizon: int = 400,
        cook_start: str = "auto",
        shaped_reward: bool = False,
        schedule: str = "simultaneous",
        render_mode: str | None = None,
    ) -> None:
        self.kitchen = build_kitchen(layout, horizon, cook_start)
        if not isinstance(shaped_reward, bool):
            raise EnvArgumentError(f"shaped_reward must be a bool, got {shaped_reward!r}")
        self.shaped_reward = shaped_reward
        self.planner = Planner(self.kitchen)
        agents = tuple(f"chef_{i}" for i in range(self.kitchen.layout.num_chefs))
        super().__init__(
            agents=agents,
            schedule=schedule,
            max_turns=horizon,
            max_action_chars=500,
            max_observation_chars=8_000,
            render_mode=render_mode,
        )
        self.game_state: KitchenState = self.kitchen.initial_state()

    # ------------------------------------------------------------------ hooks

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        self.game_state = self.kitchen.initial_state()
        self.plans: dict[str, Macro | None] = dict.fromkeys(self.possible_agents)
        self.last_notes: dict[str, str] = dict.fromkeys(self.possible_agents, "")
        self.score = 0
        self.soups = 0

    def _choose(self, agent: str, text: str | None) -> tuple[int, str, str | None]:
        """``(primitive action, note for the chef, invalid reason)``."""
        chef = self.possible_agents.index(agent)
        if text is None:
            self.plans[agent] = None
            return STAY, "your text could not be used, so you stayed", "refused by the core"
        words = normalise_action(text)
        if words in _PRIMITIVES:
            self.plans[agent] = None
            action = _PRIMITIVES[words]
            return action, f'you did "{ACTION_NAMES[action]}"', None
        if words in ("continue", "go on", "keep going"):
            macro = self.plans[agent]
            if macro is None:
                return STAY, "you stayed", "there is no plan to continue; give an action or a plan"
        else:
            parsed = parse_macro(words, len(self.kitchen.layout.pots))
            if isinstance(parsed, str):
                self.plans[agent] = None
                return STAY, "you stayed", parsed
            macro = parsed
        action, problem = self.planner.macro_step(self.game_state, chef, macro)
        if problem is not None:
            self.plans[agent] = None
            return STAY, f'you stayed: cannot "{macro.describe()}"', problem
        self.plans[agent] = None if action == INTERACT else macro
        note = f'plan "{macro.describe()}": {ACTION_NAMES[action]}'
        if action == INTERACT:
            note += " (plan done)"
        return action, note, None

    def _play_turn(self, actions: dict[str, str | None]) -> TurnResult:
        joint, invalid = [], {}
        for agent in self.possible_agents:
            action, note, problem = self._choose(agent, actions[agent])
            joint.append(action)
            if problem is not None:
                invalid[agent] = problem
                note += f" (invalid: {problem})"
            self.last_notes[agent] = note
        state, points, events = self.kitchen.transition(self.game_state, tuple(joint))
        self.game_state = state
        shaped = shaped_components(events, self.kitchen.rules)
        components = {"delivery": float(points), **shaped}
        reward = float(points) + (sum(shaped.values()) if self.shaped_reward else 0.0)
        self.score += points
        self.soups += sum(1 for _, name in events if name == "soup_delivery")
        event_text = tuple(
            f"{self.possible_agents[chef]} {_EVENT_TEXT[name]}"
            for chef, name in events
            if name in _EVENT_TEXT
        )
        agent_infos = {
            agent: {"action": ACTION_NAMES[joint[i]], "plan": _plan_name(self.plans[agent])}
            for i, agent in enumerate(self.possible_agents)
        }
        return TurnResult(
            reward=reward,
            components=components,
            events=event_text,
            invalid=invalid,
            agent_infos=agent_infos,
        )

    def _prompt(self, agent: str) -> str:
        kitchen = self.kitchen
        lay = kitchen.layout
        lines = [
            f'You are {agent} in the kitchen "{lay.title}", cooking onion soup with '
            f"{len(self.possible_agents) - 1} partner chef(s). Three onions in a pot start it "
            f"cooking ({kitchen.rules.cook_time} steps); take the soup out with a dish and "
            f"deliver it at a serving window S for {kitchen.rules.soup_value} points.",
            f"Score: {self.score} ({self.soups} soups delivered).",
        ]
        if kitchen.rules.cook_start == "interact":
            lines[0] = lines[0].replace(
                "Three onions in a pot start it cooking",
                "Interact empty-handed with a pot of three onions to start it cooking",
            )
        lines += describe_state(kitchen, self.game_state, self.possible_agents)
        if self.last_notes.get(agent):
            lines.append(f"Last step: {self.last_notes[agent]}.")
        plan = self.plans.get(agent)
        lines.append(f"Your plan: {plan.describe() if plan else 'none'}.")
        for other, text in self.visible_actions(agent).items():
            lines.append(f"{other} chose this step: {text[:200]!r}")
        lines.append(
            "Answer with one action: up, down, left, right, stay, interact; continue (keep "
            f"following your plan); or a plan: {MACRO_HELP}."
        )
        return "\n".join(lines)

    def _state_text(self) -> str:
        lines = [
            f'Kitchen "{self.kitchen.layout.title}". Score: {self.score} ({self.soups} soups).'
        ]
        lines += describe_state(self.kitchen, self.game_state, self.possible_agents)
        for agent in self.possible_agents:
            plan = self.plans.get(agent)
            lines.append(f"{agent} plan: {plan.describe() if plan else 'none'}.")
        return "\n".join(lines)

    # ------------------------------------------------------------------ rendering

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        self._require_reset()
        if self.render_mode == "rgb_array":
            return kitchen_render.rgb(self.kitchen, self.game_state)
        text = kitchen_render.ansi(self.kitchen, self.game_state)
        if self.render_mode == "human":
            print(text)
            return None
        return text


def _plan_name(macro: Macro | None) -> str | None:
    return None if macro is None else macro.describe()


# ---------------------------------------------------------------------- numeric mode


class IntDiscrete(spaces.Discrete):
    """``Discrete`` whose samples are Python ints (so transcripts stay plain JSON)."""

    def sample(self, mask: Any = None, probability: Any = None) -> int:  # type: ignore[override]
        return int(super().sample(mask=mask, probability=probability))


class GridEncoder:
    """Lossless grid planes of one state, per chef (see the module docstring)."""

    def __init__(self, kitchen: Kitchen) -> None:
        lay = kitchen.layout
        self.kitchen = kitchen
        n = self.num_chefs = lay.num_chefs
        self.channels = 5 * n + 13
        self.shape = (self.channels, lay.height, lay.width)
        self.plane = lay.height * lay.width
        base = np.zeros(self.shape, dtype=np.float32)
        flat = base.reshape(self.channels, -1)
        for offset, kind in enumerate((POT, 1, ONION_DISPENSER, DISH_DISPENSER, SERVING)):
            for cell, tile in enumerate(lay.tiles):
                if tile == kind:
                    flat[5 * n + offset, cell] = 1.0
        self.base = base
        self.high = np.ones(self.shape, dtype=np.float32)
        self.high[5 * n + 5] = 3
        self.high[5 * n + 6] = 3
        self.high[5 * n + 7] = kitchen.rules.cook_time
        self.orders = [[i] + [j for j in range(n) if j != i] for i in range(n)]
        self.ch_objects = 5 * n + 5

    def encode(self, state: KitchenState) -> list[np.ndarray]:
        kitchen = self.kitchen
        lay = kitchen.layout
        plane = self.plane
        n = self.num_chefs
        c0 = self.ch_objects
        cook_time = kitchen.rules.cook_time
        index: list[int] = []
        value: list[float] = []

        def put(channel: int, cell: int, v: float) -> None:
            index.append(channel * plane + cell)
            value.append(v)

        def item_at(cell: int, item: int) -> None:
            if item == ONION:
                put(c0 + 5, cell, 1.0)
            elif item == DISH:
                put(c0 + 4, cell, 1.0)
            elif item in SOUP_ITEMS:
                put(c0 + 1, cell, float(item - SOUP_1 + 1))
                put(c0 + 3, cell, 1.0)

        for cell, item in zip(lay.counters, state.counters):
            if item != NOTHING:
                item_at(cell, item)
        for cell, item in zip(state.positions, state.held):
            if item != NOTHING:
                item_at(cell, item)
        for pot, cell in enumerate(lay.pots):
            onions, ticks = state.pot_onions[pot], state.pot_ticks[pot]
            if ticks == IDLE:
                if onions:
                    put(c0, cell, float(onions))
            else:
                put(c0 + 1, cell, float(onions))
                put(c0 + 2, cell, float(cook_time - ticks))
                if ticks >= cook_time:
                    put(c0 + 3, cell, 1.0)
        left = kitchen.rules.horizon - state.timestep
        out = []
        for order in self.orders:
            obs = self.base.copy()
            flat = obs.reshape(-1)
            idx = list(index)
            for rank, chef in enumerate(order):
                cell = state.positions[chef]
                idx.append(rank * plane + cell)
                idx.append((n + 4 * rank + state.orientations[chef]) * plane + cell)
            flat[idx] = value + [1.0] * (2 * n)
            if left < 40:
                obs[c0 + 6] = 1.0
            obs[c0 + 7] = left / kitchen.rules.horizon
            out.append(obs)
        return out


class _NumericCore:
    """What the numeric AEC and Parallel classes share: the game, the spaces, encoding."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "kitchen_numeric_v0",
        "render_modes": ["ansi", "rgb_array"],
        "is_parallelizable": True,
    }

    def _setup(
        self,
        layout: str,
        horizon: int,
        cook_start: str,
        observation: str,
        shaped_reward: bool,
        render_mode: str | None,
    ) -> None:
        self.kitchen = build_kitchen(layout, horizon, cook_start)
        if observation not in ("grid", "features"):
            raise EnvArgumentError(f"observation must be 'grid' or 'features', got {observation!r}")
        if not isinstance(shaped_reward, bool):
            raise EnvArgumentError(f"shaped_reward must be a bool, got {shaped_reward!r}")
        if render_mode is not None and render_mode not in ("ansi", "rgb_array"):
            raise EnvArgumentError(
                f"render_mode must be 'ansi', 'rgb_array' or None, got {render_mode!r}"
            )
        self.observation_mode = observation
        self.shaped_reward = shaped_reward
        self.render_mode = render_mode
        self.possible_agents = [f"chef_{i}" for i in range(self.kitchen.layout.num_chefs)]
        if observation == "grid":
            self.encoder: Any = GridEncoder(self.kitchen)
            space = spaces.Box(0.0, self.encoder.high, dtype=np.float32)
        else:
            self.encoder = FeatureEncoder(self.kitchen)
            space = spaces.Box(0.0, 1.0, shape=(self.encoder.size,), dtype=np.float32)
        self.observation_spaces = {a: space for a in self.possible_agents}
        self.action_spaces = {a: IntDiscrete(NUM_ACTIONS) for a in self.possible_agents}
        self.state_space = space
        self.game_state = self.kitchen.initial_state()
        self._observations: list[np.ndarray] = []
        self._has_reset = False

    def observation_space(self, agent: str) -> spaces.Space:
        try:
            return self.observation_spaces[agent]
        except KeyError:
            raise UnknownAgentError(
                f"unknown agent {agent!r}; agents: {self.possible_agents}"
            ) from None

    def action_space(self, agent: str) -> spaces.Space:
        try:
            return self.action_spaces[agent]
        except KeyError:
            raise UnknownAgentError(
                f"unknown agent {agent!r}; agents: {self.possible_agents}"
            ) from None

    def _encode(self) -> None:
        if self.observation_mode == "grid":
            self._observations = self.encoder.encode(self.game_state)
        else:
            self._observations = list(self.encoder.encode_state(self.game_state))

    def _check_action(self, agent: str, action: Any) -> int:
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise ActionTypeError(
                f"numeric kitchen actions are ints 0-5 ({', '.join(ACTION_NAMES)}); "
                f"{agent!r} gave {type(action).__name__}"
            )
        if not 0 <= int(action) < NUM_ACTIONS:
            raise ActionTypeError(f"action of {agent!r} must be in 0-5, got {action}")
        return int(action)

    def _advance(self, joint: tuple[int, ...]) -> tuple[float, dict[str, float], list[str]]:
        state, points, events = self.kitchen.transition(self.game_state, joint)
        self.game_state = state
        shaped = shaped_components(events, self.kitchen.rules)
        reward = float(points) + (sum(shaped.values()) if self.shaped_reward else 0.0)
        components = {"delivery": float(points), **shaped}
        names = [f"{self.possible_agents[chef]} {name}" for chef, name in events]
        self._encode()
        return reward, components, names

    def state(self) -> np.ndarray:
        if not self._has_reset:
            raise ResetNeededError("call reset() before state()")
        return self._observations[0]

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        if not self._has_reset:
            raise ResetNeededError("call reset() before render()")
        if self.render_mode == "rgb_array":
            return kitchen_render.rgb(self.kitchen, self.game_state)
        return kitchen_render.ansi(self.kitchen, self.game_state)

    def close(self) -> None:
        pass


class KitchenNumericParallelEnv(_NumericCore, ParallelEnv):
    """Native Parallel API of the numeric kitchen (see the module docstring)."""

    def __init__(
        self,
        *,
        layout: str = "cramped_room",
        horizon: int = 400,
        cook_start: str = "auto",
        observation: str = "grid",
        shaped_reward: bool = False,
        render_mode: str | None = None,
    ) -> None:
        self._setup(layout, horizon, cook_start, observation, shaped_reward, render_mode)
        self.agents: list[str] = []
        self.spec = None

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        self.game_state = self.kitchen.initial_state()
        self.agents = list(self.possible_agents)
        self._has_reset = True
        self._encode()
        return dict(zip(self.agents, self._observations)), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self._has_reset:
            raise ResetNeededError("call reset() before step()")
        if not self.agents:
            raise EpisodeOverError("the episode is over; call reset() to start a new one")
        agents = self.agents
        try:
            joint = tuple(self._check_action(a, actions[a]) for a in agents)
        except KeyError:
            missing = [a for a in agents if a not in actions]
            raise NotYourTurnError(
                f"step() needs an action for every live agent; missing {missing}"
            ) from None
        for agent in actions:
            if agent not in self.possible_agents:
                raise UnknownAgentError(f"unknown agent {agent!r}; agents: {self.possible_agents}")
        reward, components, events = self._advance(joint)
        done = self.kitchen.is_done(self.game_state)
        observations = dict(zip(agents, self._observations))
        rewards = dict.fromkeys(agents, reward)
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, done)
        infos = {a: {"reward_components": dict(components), "events": list(events)} for a in agents}
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos


class KitchenNumericEnv(_NumericCore, AECEnv):
    """Native AEC API of the numeric kitchen: chefs act in turn, the kitchen steps once the
    last chef has acted (simultaneous moves)."""

    official_suite_size: ClassVar[int] = 10  # leaderboard episodes (400 steps each)

    def __init__(
        self,
        *,
        layout: str = "cramped_room",
        horizon: int = 400,
        cook_start: str = "auto",
        observation: str = "grid",
        shaped_reward: bool = False,
        render_mode: str | None = None,
    ) -> None:
        AECEnv.__init__(self)
        self._setup(layout, horizon, cook_start, observation, shaped_reward, render_mode)
        self.agents = []
        self.spec = None

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.game_state = self.kitchen.initial_state()
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {"reward_components": {}, "events": []} for a in self.agents}
        self._pending: list[int] = []
        self.agent_selection = self.agents[0]
        self._has_reset = True
        self._encode()

    def observe(self, agent: str) -> np.ndarray:
        if not self._has_reset:
            raise ResetNeededError("call reset() before observe()")
        if agent not in self.possible_agents:
            raise UnknownAgentError(f"unknown agent {agent!r}; agents: {self.possible_agents}")
        return self._observations[self.possible_agents.index(agent)]

    def step(self, action: Any) -> None:
        if not self._has_reset:
            raise ResetNeededError("call reset() before step()")
        if not self.agents:
            raise EpisodeOverError("the episode is over; call reset() to start a new one")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            if action is not None:
                raise ActionTypeError(f"agent {agent!r} is done; step(None) removes it")
            self._was_dead_step(action)
            return
        self._pending.append(self._check_action(agent, action))
        self._cumulative_rewards[agent] = 0.0
        index = self.possible_agents.index(agent)
        if index + 1 < len(self.possible_agents):
            self.rewards = dict.fromkeys(self.agents, 0.0)
            self.agent_selection = self.possible_agents[index + 1]
            return
        reward, components, events = self._advance(tuple(self._pending))
        self._pending = []
        done = self.kitchen.is_done(self.game_state)
        for a in self.agents:
            self.rewards[a] = reward
            self.truncations[a] = done
            self.infos[a] = {"reward_components": dict(components), "events": list(events)}
        self._accumulate_rewards()
        self.agent_selection = self.possible_agents[0]
