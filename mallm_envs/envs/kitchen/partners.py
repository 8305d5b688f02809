"""Held-out kitchen partners for cross-play: scripted chefs of clearly different styles.

Cross-play (``mallm evaluate ENV --agent SPEC --cross-play``) pairs an agent with each
partner of its env's population. The kitchen's population is four scripted chefs that
play both kitchen envs (text and numeric), every layout and either chef seat:

``onion-fetcher``
    only carries onions to the pots; it never touches a dish or a soup, so its partner must
    plate and serve.
``plate-server``
    only fetches dishes, plates ready soup and serves it; its partner must fill the pots.

(In a split kitchen, where some chef cannot reach a pot, a dispenser or the pass by itself
(forced coordination), a specialist could only make the team score nothing whoever its
partner is; there both play as the greedy chef.)
``greedy-alt``
    the greedy chef's priorities with other conventions: it fills the emptiest pot first
    (the reference chef the fullest), prefers onions to dishes when both would do, and
    breaks path ties in another direction order, so it walks other routes.
``slow-noisy``
    the greedy chef that hesitates: it stays put on about a quarter of its steps and takes
    a random step on about a tenth.

Every partner is deterministic given the seed that the episode loop gives its ``reset``
(the seed of the episode and the seat), so ``mallm verify`` re-runs it and compares its
actions with the record. Changing what a partner does changes the population's frozen
fingerprints, hence the cross-play suite's digest: a new suite version (see
``docs/cross-play.md``). Pure Python; no PettingZoo, Gymnasium or torch import.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mallm_envs.envs.kitchen.planner import (
    Macro,
    Planner,
    greedy_macro,
)
from mallm_envs.envs.kitchen.rules import (
    ACTION_NAMES,
    DISH,
    DOWN,
    INTERACT,
    LEFT,
    NOTHING,
    ONION,
    RIGHT,
    SOUP_ITEMS,
    STAY,
    UP,
    KitchenState,
)

KITCHEN_IDS = ("Kitchen-v0", "KitchenNumeric-v0")
ROLES = ("chef_0", "chef_1")
CROSS_PLAY_EPISODES = {"Kitchen-v0": 2, "KitchenNumeric-v0": 1}
"""Suite episodes each (partner, seat) pair plays. A kitchen episode is 400 steps (a text
transcript about 1 MB, a numeric one 2.5 MB), so the cross-play suite takes the first
episodes of the official suite only: the submission must stay within the verifier's limits."""


class _ScriptedPartner:
    """Shared plumbing: the env's state in, an action name (text env) or index out."""

    name = ""
    style = ""

    def __init__(self, env: Any, agent: str) -> None:
        base = env.unwrapped
        self.env = base
        self.agent = agent
        self.chef = list(base.possible_agents).index(agent)
        self.planner = self.make_planner(base.kitchen)
        self.text = not hasattr(base, "observation_mode")
        self.rng = np.random.default_rng(0)
        self._last: tuple[int, int] | None = None
        self._stuck = 0

    def make_planner(self, kitchen: Any) -> Planner:
        return Planner(kitchen)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self._last = None
        self._stuck = 0

    def choose(self, state: KitchenState) -> int:
        raise NotImplementedError

    def split_kitchen(self, state: KitchenState) -> bool:
        """Whether some chef cannot reach a pot, a dispenser or the pass by itself (forced
        coordination): a specialist cannot keep to one job there, or nobody could cook."""
        lay = self.planner.layout
        needs = (lay.pots, lay.onion_dispensers, lay.dish_dispensers, lay.serving)
        return any(
            not self.planner.reachable_targets(cell, tiles)
            for cell in state.positions
            for tiles in needs
        )

    def act(self, observation: Any = None, info: Any = None) -> Any:
        state = self.env.game_state
        cell = state.positions[self.chef]
        if self._last is not None and self._last[1] < 4 and self._last[0] == cell:
            self._stuck += 1
        else:
            self._stuck = 0
        if self._stuck >= 2 and self.rng.random() < 0.5:
            action = int(self.rng.integers(0, 4))  # blocked: step aside at random
        else:
            action = self.choose(state)
        self._last = (cell, action)
        return ACTION_NAMES[action] if self.text else action

    def _macro_action(self, state: KitchenState, macro: Macro | None) -> int:
        if macro is None:
            return int(self.rng.integers(0, 4)) if self.rng.random() < 0.2 else STAY
        return self.planner.macro_step(state, self.chef, macro)[0]

    def describe(self) -> dict[str, Any]:
        return {"class": "partner", "partner": self.name, "style": self.style, "chef": self.chef}


def _pots_reachable(planner: Planner, state: KitchenState, chef: int) -> list[int]:
    cell = state.positions[chef]
    pots = planner.layout.pots
    return [p for p in range(len(pots)) if planner.reachable_targets(cell, [pots[p]])]


class OnionFetcher(_ScriptedPartner):
    """Carries onions to the pots and nothing else (see the module docstring)."""

    name = "onion-fetcher"
    style = "fetches onions only; never plates or serves"

    def choose(self, state: KitchenState) -> int:
        planner, chef = self.planner, self.chef
        if self.split_kitchen(state):
            return self._macro_action(state, greedy_macro(planner, state, chef))
        lay = planner.layout
        holding = state.held[chef]
        statuses = [planner.kitchen.pot_status(state, p) for p in range(len(lay.pots))]
        mine = _pots_reachable(planner, state, chef)
        fillable = [p for p in mine if statuses[p] in ("empty", "filling")]
        if holding == ONION:
            if fillable:
                return self._macro_action(
                    state, Macro("put_onion", max(fillable, key=lambda p: state.pot_onions[p]))
                )
            return self._macro_action(state, None)
        if holding != NOTHING:  # something it does not handle: set it down
            return self._macro_action(state, Macro("put_down"))
        if planner.kitchen.rules.cook_start == "interact":
            full = [p for p in mine if statuses[p] == "filling" and state.pot_onions[p] == 3]
            if full:
                return self._macro_action(state, Macro("start_cooking", full[0]))
        if fillable:
            return self._macro_action(state, Macro("get_onion"))
        return self._macro_action(state, None)


class PlateServer(_ScriptedPartner):
    """Fetches dishes, plates soup and serves it, and nothing else (see the module docstring)."""

    name = "plate-server"
    style = "plates and serves only; never carries onions"

    def choose(self, state: KitchenState) -> int:
        planner, chef = self.planner, self.chef
        if self.split_kitchen(state):
            return self._macro_action(state, greedy_macro(planner, state, chef))
        lay = planner.layout
        cell = state.positions[chef]
        holding = state.held[chef]
        statuses = [planner.kitchen.pot_status(state, p) for p in range(len(lay.pots))]
        mine = _pots_reachable(planner, state, chef)
        others = [h for i, h in enumerate(state.held) if i != chef]
        if holding in SOUP_ITEMS:
            if planner.reachable_targets(cell, lay.serving):
                return self._macro_action(state, Macro("serve"))
            if planner.handoff_counters(state, chef):
                return self._macro_action(state, Macro("hand_over"))
            return self._macro_action(state, None)
        if holding == DISH:
            ready = [p for p in mine if statuses[p] == "ready"]
            cooking = [p for p in mine if statuses[p] == "cooking"]
            if ready or cooking:
                return self._macro_action(state, Macro("pick_up_soup", (ready or cooking)[0]))
            if not mine and planner.handoff_counters(state, chef):
                return self._macro_action(state, Macro("hand_over"))
            return self._macro_action(state, None)  # hold the plate and wait
        if holding != NOTHING:
            return self._macro_action(state, Macro("put_down"))
        soups = [c for c, it in zip(lay.counters, state.counters) if it in SOUP_ITEMS]
        if planner.reachable_targets(cell, soups) and planner.reachable_targets(cell, lay.serving):
            return self._macro_action(state, Macro("pick_up_soup"))
        busy = [p for p in range(len(lay.pots)) if statuses[p] in ("cooking", "ready")]
        filling = [p for p in range(len(lay.pots)) if state.pot_onions[p] > 0]
        dishes_out = others.count(DISH) + sum(it == DISH for it in state.counters)
        wanted = (busy or filling) and dishes_out < max(1, len(busy))
        if wanted and planner.reachable_targets(cell, lay.dish_dispensers):
            return self._macro_action(state, Macro("get_dish", dispenser_only=not mine))
        return self._macro_action(state, None)


class _ReversedPlanner(Planner):
    """The planner with another direction order for its breadth-first search (other
    routes where two paths are as short)."""

    search_order = (LEFT, RIGHT, DOWN, UP)


class GreedyAlt(_ScriptedPartner):
    """The greedy chef with other conventions (see the module docstring)."""

    name = "greedy-alt"
    style = "greedy; emptiest pot first, onions before dishes, other path tie-breaks"

    def make_planner(self, kitchen: Any) -> Planner:
        return _ReversedPlanner(kitchen)

    def choose(self, state: KitchenState) -> int:
        planner, chef = self.planner, self.chef
        macro = greedy_macro(planner, state, chef)
        lay = planner.layout
        statuses = [planner.kitchen.pot_status(state, p) for p in range(len(lay.pots))]
        mine = _pots_reachable(planner, state, chef)
        fillable = [p for p in mine if statuses[p] in ("empty", "filling")]
        if macro is not None and macro.kind == "put_onion" and fillable:
            emptiest = min(fillable, key=lambda p: (state.pot_onions[p], -p))
            macro = Macro("put_onion", emptiest)
        elif (
            macro is not None
            and macro.kind == "get_dish"
            and state.held[chef] == NOTHING
            and fillable
            and not any(statuses[p] == "ready" for p in mine)
            and planner.reachable_targets(state.positions[chef], lay.onion_dispensers)
        ):
            macro = Macro("get_onion")
        return self._macro_action(state, macro)


class SlowNoisy(_ScriptedPartner):
    """The greedy chef that hesitates (see the module docstring)."""

    name = "slow-noisy"
    style = "greedy, but stays on ~25% of steps and moves at random on ~10%"

    def choose(self, state: KitchenState) -> int:
        draw = self.rng.random()
        if draw < 0.25:
            return STAY
        if draw < 0.35:
            return int(self.rng.choice((UP, DOWN, RIGHT, LEFT, INTERACT)))
        return self._macro_action(state, greedy_macro(self.planner, state, self.chef))


PARTNERS: dict[str, tuple[str, str]] = {
    OnionFetcher.name: ("mallm_envs.envs.kitchen.partners:OnionFetcher", OnionFetcher.style),
    PlateServer.name: ("mallm_envs.envs.kitchen.partners:PlateServer", PlateServer.style),
    GreedyAlt.name: ("mallm_envs.envs.kitchen.partners:GreedyAlt", GreedyAlt.style),
    SlowNoisy.name: ("mallm_envs.envs.kitchen.partners:SlowNoisy", SlowNoisy.style),
}


def population(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The held-out partners of ``env_id`` played with ``env_kwargs`` (``None`` for an id this
    family does not cover).

    ``{"episodes_per_seat": n, "partners": [{"name", "factory", "roles", "description"}]}``:
    ``factory`` is ``"module:Class"``, built as ``Class(env, role)``; ``roles`` are the seats
    it can take; each (partner, seat) pair plays the first ``n`` episodes of the suite. The
    scripted chefs play every layout; a frozen MAPPO policy of seed 2 joins where one was
    trained for the layout (:class:`MappoPartner`).
    """
    if env_id not in KITCHEN_IDS:
        return None
    partners = [
        {"name": name, "factory": factory, "roles": list(ROLES), "description": style}
        for name, (factory, style) in PARTNERS.items()
    ]
    layout = (env_kwargs or {}).get("layout", "cramped_room")
    if (POLICIES_DIR / f"{MappoPartner.algorithm}_{layout}_seed{MappoPartner.seed}.json").exists():
        partners.append(
            {
                "name": MappoPartner.name,
                "factory": f"{__name__}:MappoPartner",
                "roles": list(ROLES),
                "description": "the MAPPO baseline's policy of seed 2 (sampled actions)",
            }
        )
    return {"episodes_per_seat": CROSS_PLAY_EPISODES[env_id], "partners": partners}


# ---------------------------------------------------------------------- frozen policies

POLICY_FORMAT = "mallm-kitchen-policy/1"
POLICIES_DIR = Path(__file__).with_name("policies")


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """A float32 array as JSON: its shape and its little-endian bytes in base64."""
    data = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(data.shape), "float32_base64": base64.b64encode(data.tobytes()).decode()}


def decode_array(item: Mapping[str, Any]) -> np.ndarray:
    raw = base64.b64decode(item["float32_base64"])
    return np.frombuffer(raw, dtype="<f4").reshape(item["shape"]).astype(np.float64)


def save_policy(
    path: str | Path,
    layers: list[tuple[np.ndarray, np.ndarray]],
    *,
    algorithm: str,
    layout: str,
    seed: int,
    training: Mapping[str, Any],
) -> Path:
    """Write an MLP policy (``tanh`` between the layers, logits out) as a small JSON file."""
    record = {
        "format": POLICY_FORMAT,
        "algorithm": algorithm,
        "layout": layout,
        "seed": seed,
        "observation": "features",
        "activation": "tanh",
        "layers": [
            {"weight": encode_array(weight), "bias": encode_array(bias)} for weight, bias in layers
        ],
        "training": dict(training),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, sort_keys=True, indent=1) + "\n")
    tmp.replace(path)
    return path


class FrozenPolicy:
    """A trained kitchen policy from its JSON file: features in, action probabilities out.

    Computed with numpy in float64, so the same features give the same probabilities on
    any CPU (up to the last bit of a float64 sum, far below a float32 policy's precision).
    """

    def __init__(self, path: str | Path) -> None:
        record = json.loads(Path(path).read_text())
        if record.get("format") != POLICY_FORMAT:
            raise ValueError(f"{path}: not a kitchen policy ({record.get('format')!r})")
        self.path = Path(path)
        self.record = record
        self.layout = str(record["layout"])
        self.layers = [
            (decode_array(x["weight"]), decode_array(x["bias"])) for x in record["layers"]
        ]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        hidden = np.asarray(features, dtype=np.float64)
        for index, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight.T + bias
            if index < len(self.layers) - 1:
                hidden = np.tanh(hidden)
        shifted = np.exp(hidden - hidden.max())
        return shifted / shifted.sum()


_POLICY_CACHE: dict[Path, FrozenPolicy] = {}


def load_policy(name: str) -> FrozenPolicy:
    """A policy shipped in ``mallm_envs/envs/kitchen/policies/<name>.json`` (cached)."""
    path = POLICIES_DIR / f"{name}.json"
    if path not in _POLICY_CACHE:
        if not path.is_file():
            shipped = sorted(p.stem for p in POLICIES_DIR.glob("*.json"))
            raise ValueError(f"no kitchen policy {name!r}; shipped: {', '.join(shipped) or 'none'}")
        _POLICY_CACHE[path] = FrozenPolicy(path)
    return _POLICY_CACHE[path]


class PolicyChef:
    """A chef played by a frozen policy trained on this layout (either kitchen env).

    It encodes the env's state as the trainers' feature vector (its own chef first) and
    samples its action from the policy's probabilities with a generator seeded by
    ``reset``: deterministic given the seed, as the policy played in training.
    """

    algorithm = ""
    seed = 1

    def __init__(self, env: Any, agent: str, policy: FrozenPolicy | None = None) -> None:
        from mallm_envs.envs.kitchen.batched import FeatureEncoder

        base = env.unwrapped
        self.env = base
        self.agent = agent
        self.chef = list(base.possible_agents).index(agent)
        layout = base.kitchen.layout.name
        if policy is None:
            policy = load_policy(f"{self.algorithm}_{layout}_seed{self.seed}")
        if policy.layout != layout:
            raise ValueError(f"{policy.path.name} was trained on {policy.layout}, not {layout}")
        self.policy = policy
        self.encoder = FeatureEncoder(base.kitchen)
        self.text = not hasattr(base, "observation_mode")
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: Any = None, info: Any = None) -> Any:
        features = self.encoder.encode_state(self.env.game_state)[self.chef]
        probabilities = self.policy.probabilities(features)
        action = int(
            np.searchsorted(np.cumsum(probabilities), self.rng.random() * probabilities.sum())
        )
        action = min(action, len(probabilities) - 1)
        return ACTION_NAMES[action] if self.text else action

    def describe(self) -> dict[str, Any]:
        return {
            "class": "frozen-policy",
            "policy": self.policy.path.name,
            "algorithm": self.policy.record["algorithm"],
            "chef": self.chef,
        }


class MappoChef(PolicyChef):
    """The MAPPO baseline's policy (seed 1) for this layout (``baselines/kitchen_mappo.py``)."""

    algorithm = "mappo"


class PpoChef(PolicyChef):
    """The SB3 PPO baseline's policy (seed 1) for this layout (``baselines/kitchen_ppo_sb3.py``)."""

    algorithm = "sb3ppo"


class MappoPartner(PolicyChef):
    """The MAPPO baseline trained with another seed (2): a held-out partner."""

    algorithm = "mappo"
    seed = 2
    name = "mappo-seed2"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "class": "partner", "partner": self.name}


AGENT_FACTORIES = ("MappoChef", "PpoChef")
"""Classes of this module that submissions may name as their agent spec
(``mallm_envs.envs.kitchen.partners:MappoChef``); the verifier rebuilds them to reproduce."""
