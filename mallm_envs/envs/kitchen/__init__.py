"""Kitchen: the Overcooked-style cooperative family (see :mod:`mallm_envs.envs.kitchen.env`).

Two ids, each taking the layout (and the other arguments) as keyword arguments:
``Kitchen-v0`` is the text env for language-model chefs, ``KitchenNumeric-v0`` the numeric
one (grid planes or features, ``Discrete(6)`` actions) for classic MARL, with a native
Parallel class. One id per mode rather than per layout keeps the registry short; a layout
is an argument like any other, recorded in every transcript's spec.
"""

from mallm_envs.registration import register

register(
    id="Kitchen-v0",
    entry_point="mallm_envs.envs.kitchen.env:KitchenEnv",
    kwargs={
        "layout": "cramped_room",
        "horizon": 400,
        "cook_start": "auto",
        "schedule": "simultaneous",
    },
    description="Overcooked-style kitchen in text: two chefs cook and serve onion soup (5 classic layouts).",
    agents=("chef_0", "chef_1"),
    family="kitchen",
    scripted_agent="mallm_envs.envs.kitchen.agents:GreedyChef",
    official_suite_size=10,  # 400-step episodes: fewer seeds
)

register(
    id="KitchenNumeric-v0",
    entry_point="mallm_envs.envs.kitchen.env:KitchenNumericEnv",
    parallel_entry_point="mallm_envs.envs.kitchen.env:KitchenNumericParallelEnv",
    kwargs={"layout": "cramped_room", "horizon": 400, "cook_start": "auto", "observation": "grid"},
    description="Overcooked-style kitchen with grid-plane or feature observations and Discrete(6) actions, for classic MARL.",
    agents=("chef_0", "chef_1"),
    family="kitchen",
    scripted_agent="mallm_envs.envs.kitchen.agents:GreedyChef",
    official_suite_size=10,  # 400-step episodes: fewer seeds
)
