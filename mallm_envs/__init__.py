"""mallm-envs: cooperative multi-agent text environments for LLM agents (PettingZoo API).

>>> import mallm_envs
>>> env = mallm_envs.make("CommonWord-v0")
>>> env.reset(seed=0)
>>> sorted(env.possible_agents)
['agent_0', 'agent_1']
"""

from mallm_envs import envs as _envs  # noqa: F401  (registers the bundled ids)
from mallm_envs.core.errors import MallmError
from mallm_envs.registration import (
    EnvSpec,
    make,
    make_parallel,
    register,
    registry,
    replay,
    spec,
)

__version__ = "0.1.0"

__all__ = [
    "EnvSpec",
    "MallmError",
    "__version__",
    "make",
    "make_parallel",
    "register",
    "registry",
    "replay",
    "spec",
]
