"""Kitchen: an Overcooked-style cooperative cooking game, as text and as numbers.

| | |
|---|---|
| ids | ``Kitchen-v0`` (text), ``KitchenNumeric-v0`` (numbers, classic MARL) |
| agents | ``chef_0``, ``chef_1`` (one per start in the layout) |
| API | PettingZoo AEC (``mallm_envs.make``) and Parallel (``mallm_envs.make_parallel``); both modes run on the core's turn machine |
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
interact, Overcooked-AI's order), as a Python int, a numpy integer or a 0-d integer array
(what stable-baselines3's ``predict`` returns; ``Discrete.contains`` takes all three);
anything else, bools included, raises :class:`~mallm_envs.core.errors.ActionTypeError`.

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

from mallm_envs.core.coop import CoopEnv, TurnResult
from mallm_envs.core.env import CoopTextEnv
from mallm_envs.core.errors import ActionTypeError, EnvArgumentError
from mallm_envs.core.parallel import CoopParallelEnv
from mallm_envs.envs.kitchen import render as kitchen_render
from mallm_envs.envs.kitchen.encoders import FeatureEncoder, GridEncoder, describe_state
from mallm_envs.envs.kitchen.planner import MACRO_HELP, Macro, Planner, parse_macro
from mallm_envs.envs.kitchen.rules import (
    ACTION_NAMES,
    CLASSIC_LAYOUTS,
    INTERACT,
    NUM_ACTIONS,
    STAY,
    Kitchen,
    KitchenRules,
    KitchenState,
    LayoutError,
    RuleError,
    load_layout,
    shaped_components,
)

__all__ = [
    "COMPONENTS",
    "GridEncoder",
    "IntDiscrete",
    "KitchenEnv",
    "KitchenNumericEnv",
    "KitchenNumericParallelEnv",
    "build_kitchen",
    "describe_state",
    "normalise_action",
]

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


def kitchen_reward(
    kitchen: Kitchen, points: int, events: Any, shaped_reward: bool
) -> tuple[float, dict[str, float]]:
    """``(team reward, components)`` of one transition: delivery points, plus the shaped
    terms when ``shaped_reward``; every component is reported either way."""
    shaped = shaped_components(events, kitchen.rules)
    reward = float(points) + (sum(shaped.values()) if shaped_reward else 0.0)
    return reward, {"delivery": float(points), **shaped}


def render_kitchen(env: Any) -> Any:
    """The frame of either kitchen env: an RGB image, or the grid in ANSI colours."""
    if env.render_mode == "rgb_array":
        return kitchen_render.rgb(env.kitchen, env.game_state)
    return kitchen_render.ansi(env.kitchen, env.game_state)


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
        reward, components = kitchen_reward(self.kitchen, points, events, self.shaped_reward)
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

    def _render(self) -> Any:
        return render_kitchen(self)


def _plan_name(macro: Macro | None) -> str | None:
    return None if macro is None else macro.describe()


# ---------------------------------------------------------------------- numeric mode


class IntDiscrete(spaces.Discrete):
    """``Discrete`` whose samples are Python ints (so transcripts stay plain JSON)."""

    def sample(self, mask: Any = None, probability: Any = None) -> int:  # type: ignore[override]
        return int(super().sample(mask=mask, probability=probability))


def action_index(agent: str, action: Any) -> int:
    """The action as a Python int 0-5, from an int, a numpy integer or a 0-d integer array
    (what stable-baselines3's ``predict`` gives for one observation; ``Discrete.contains``
    takes all three). Anything else, bools included, raises ActionTypeError."""
    if type(action) is int:
        value = action
    elif isinstance(action, np.integer) or (
        isinstance(action, np.ndarray)
        and action.shape == ()
        and np.issubdtype(action.dtype, np.integer)
    ):
        value = int(action)
    else:
        kind = type(action).__name__
        if isinstance(action, np.ndarray):
            kind += f" of shape {action.shape} and dtype {action.dtype}"
        raise ActionTypeError(
            f"numeric kitchen actions are ints 0-5 ({', '.join(ACTION_NAMES)}); "
            f"{agent!r} gave {kind}"
        )
    if not 0 <= value < NUM_ACTIONS:
        raise ActionTypeError(f"action of {agent!r} must be in 0-5, got {action}")
    return value


class KitchenNumericEnv(CoopEnv):
    """Native AEC API of the numeric kitchen: chefs act in turn, the kitchen steps once the
    last chef has acted (simultaneous moves). The turn machine is the core's; this class
    only encodes states and checks action indices."""

    keep_history: ClassVar[bool] = False  # nothing reads it; 400 records per episode cost
    metadata: ClassVar[dict[str, Any]] = {
        "name": "kitchen_numeric_v0",
        "render_modes": ["ansi", "rgb_array"],
        "is_parallelizable": True,
    }

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
        self.kitchen = build_kitchen(layout, horizon, cook_start)
        if observation not in ("grid", "features"):
            raise EnvArgumentError(f"observation must be 'grid' or 'features', got {observation!r}")
        if not isinstance(shaped_reward, bool):
            raise EnvArgumentError(f"shaped_reward must be a bool, got {shaped_reward!r}")
        agents = [f"chef_{i}" for i in range(self.kitchen.layout.num_chefs)]
        super().__init__(agents=agents, max_turns=horizon, render_mode=render_mode)
        self.observation_mode = observation
        self.shaped_reward = shaped_reward
        self.encoder: GridEncoder | FeatureEncoder
        if observation == "grid":
            self.encoder = GridEncoder(self.kitchen)
            space = spaces.Box(0.0, self.encoder.high, dtype=np.float32)
        else:
            self.encoder = FeatureEncoder(self.kitchen)
            space = spaces.Box(0.0, 1.0, shape=(self.encoder.size,), dtype=np.float32)
        self.observation_spaces = {a: space for a in agents}
        self.action_spaces = {a: IntDiscrete(NUM_ACTIONS) for a in agents}
        self.state_space = space
        self._chef = {agent: chef for chef, agent in enumerate(agents)}
        self.game_state = self.kitchen.initial_state()
        self._observations: list[np.ndarray] = []
        # Most steps change no score: they share one (immutable) result.
        self._quiet_turn = TurnResult(*kitchen_reward(self.kitchen, 0, [], shaped_reward))

    def _encode(self) -> None:
        if isinstance(self.encoder, GridEncoder):
            self._observations = self.encoder.encode(self.game_state)
        else:
            self._observations = list(self.encoder.encode_state(self.game_state))

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        self.game_state = self.kitchen.initial_state()
        self._encode()

    def _take_action(self, agent: str, action: Any) -> tuple[int, None]:
        if type(action) is int and 0 <= action < NUM_ACTIONS:
            return action, None
        return action_index(agent, action), None

    def _play_turn(self, actions: dict[str, Any]) -> TurnResult:
        agents = self.possible_agents
        state, points, events = self.kitchen.transition(
            self.game_state, tuple([actions[agent] for agent in agents])
        )
        self.game_state = state
        self._encode()
        done = self.kitchen.is_done(state)
        if not events and not points and not done:
            return self._quiet_turn
        reward, components = kitchen_reward(self.kitchen, points, events, self.shaped_reward)
        return TurnResult(
            reward=reward,
            components=components,
            events=tuple([f"{agents[chef]} {name}" for chef, name in events]),
            truncated=done,
        )

    def _observe(self, agent: str) -> np.ndarray:
        return self._observations[self._chef[agent]]

    def _state(self) -> np.ndarray:
        return self._observations[0]

    def _render(self) -> Any:
        return render_kitchen(self)


class KitchenNumericParallelEnv(CoopParallelEnv):
    """Parallel API of the numeric kitchen: the core's adapter around
    :class:`KitchenNumericEnv` (one ``step`` is one joint step of the kitchen)."""

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
        super().__init__(
            KitchenNumericEnv(
                layout=layout,
                horizon=horizon,
                cook_start=cook_start,
                observation=observation,
                shaped_reward=shaped_reward,
                render_mode=render_mode,
            )
        )
