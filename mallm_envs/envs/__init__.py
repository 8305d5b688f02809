"""Environment families. Importing this module registers every id."""

from mallm_envs.envs import (
    kitchen,  # noqa: F401  (registers Kitchen-v0, KitchenNumeric-v0)
    toy,  # noqa: F401  (registers CommonWord-v0)
    writing,  # noqa: F401  (registers SummaryPair-v0, ExpandPair-v0, SummarySingle-v0, ExpandSingle-v0)
)
