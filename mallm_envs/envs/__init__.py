"""Environment families. Importing this module registers every id."""

from mallm_envs.envs import toy  # noqa: F401  (registers CommonWord-v0)
