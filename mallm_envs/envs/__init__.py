"""Environment families. Importing this module registers every id."""

from mallm_envs.envs import toy  # noqa: F401  (registers CommonWord-v0)
from mallm_envs.envs import kitchen  # noqa: F401  (registers Kitchen-v0, KitchenNumeric-v0)
