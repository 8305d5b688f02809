"""The peer side of ``bench_kitchen.py``: runs inside the overcooked-ai 1.1.0 venv.

Not imported by mallm_envs; it imports only overcooked_ai_py and numpy, and prints one JSON
object. Modes:

* ``bench``: joint steps/s of ``OvercookedGridworld.get_state_transition`` and of the gym
  env ``Overcooked`` with the lossless encoding, random joint actions, cramped room.
* ``record``: random-action trajectories on the five classic layouts, every state after
  every step, for the differential test in ``tests/test_kitchen_rules.py``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from overcooked_ai_py.mdp.actions import Action  # noqa: E402
from overcooked_ai_py.mdp.overcooked_env import Overcooked, OvercookedEnv  # noqa: E402
from overcooked_ai_py.mdp.overcooked_mdp import OvercookedGridworld  # noqa: E402

LAYOUTS = {
    "cramped_room": "cramped_room",
    "asymmetric_advantages": "asymmetric_advantages",
    "coordination_ring": "coordination_ring",
    "forced_coordination": "forced_coordination",
    "counter_circuit": "counter_circuit_o_1order",
}
SOUP_CODES = {1: 3, 2: 4, 3: 5}


def bench(seconds: float) -> dict:
    mdp = OvercookedGridworld.from_layout_name("cramped_room")
    rng = np.random.default_rng(0)
    actions = [
        (Action.INDEX_TO_ACTION[a], Action.INDEX_TO_ACTION[b])
        for a, b in rng.integers(0, 6, size=(4096, 2))
    ]
    state = mdp.get_standard_start_state()
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(400):
            state, _ = mdp.get_state_transition(state, actions[(steps + i) % 4096])
        steps += 400
        state = mdp.get_standard_start_state()
    transition = steps / (time.perf_counter() - start)

    base_env = OvercookedEnv.from_mdp(mdp, horizon=400, info_level=0)
    # 1.1.0's gym wrapper reads two attributes its own mdp no longer defines; give them the
    # layout's values (cook time 20, three onions) so the wrapper can start at all.
    mdp.soup_cooking_time = 20
    mdp.num_items_for_soup = 3
    env = Overcooked()
    env.custom_init(base_env, featurize_fn=lambda _mdp, s: base_env.lossless_state_encoding_mdp(s))
    env.reset()
    index_actions = [tuple(int(x) for x in a) for a in rng.integers(0, 6, size=(4096, 2))]
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, done, _ = env.step(index_actions[steps % 4096])
        steps += 1
        if done:
            env.reset()
    gym_env = steps / (time.perf_counter() - start)
    return {"transition_steps_per_s": transition, "gym_lossless_steps_per_s": gym_env}


def summarise(mdp, state) -> list:
    width = mdp.width
    chefs = []
    for player in state.players:
        x, y = player.position
        obj = player.held_object
        if obj is None:
            item = 0
        elif obj.name == "onion":
            item = 1
        elif obj.name == "dish":
            item = 2
        else:
            item = SOUP_CODES[len(obj.ingredients)]
        chefs.append([y * width + x, Action.ACTION_TO_INDEX[player.orientation], item])
    counters, pots = [], []
    for (x, y), obj in sorted(state.objects.items()):
        cell = y * width + x
        if mdp.get_terrain_type_at_pos((x, y)) == "P":
            pots.append([cell, len(obj.ingredients), obj._cooking_tick])
        else:
            name = obj.name
            item = {"onion": 1, "dish": 2}.get(name) or SOUP_CODES[len(obj.ingredients)]
            counters.append([cell, item])
    return [chefs, sorted(counters), sorted(pots)]


def record(steps: int, seed: int) -> dict:
    out = {}
    for ours, theirs in LAYOUTS.items():
        mdp = OvercookedGridworld.from_layout_name(theirs)
        rng = np.random.default_rng(seed)
        # Interact-heavy random play so that pickups, potting, cooking and deliveries happen.
        probs = np.array([0.14, 0.14, 0.14, 0.14, 0.04, 0.40])
        state = mdp.get_standard_start_state()
        actions, states, sparse, shaped = [], [], [], []
        for _ in range(steps):
            joint = [int(a) for a in rng.choice(6, size=2, p=probs)]
            state, info = mdp.get_state_transition(
                state, tuple(Action.INDEX_TO_ACTION[a] for a in joint)
            )
            actions.append(joint)
            states.append(summarise(mdp, state))
            sparse.append(int(sum(info["sparse_reward_by_agent"])))
            shaped.append(int(sum(info["shaped_reward_by_agent"])))
        out[ours] = {"actions": actions, "states": states, "sparse": sparse, "shaped": shaped}
    return out


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "bench"
    if mode == "bench":
        print(json.dumps(bench(float(sys.argv[2]) if len(sys.argv) > 2 else 5.0)))
    elif mode == "record":
        print(json.dumps(record(int(sys.argv[2]), int(sys.argv[3])), separators=(",", ":")))
    else:
        raise SystemExit(f"unknown mode {mode!r}: use bench or record")
