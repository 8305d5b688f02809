"""Environment families. Importing this module registers every id."""

from mallm_envs.envs import (
    code,  # noqa: F401  (registers CodePair-v0, CoopCode-v0, CodeSolo-v0, CoopCodeSolo-v0)
    kitchen,  # noqa: F401  (registers Kitchen-v0, KitchenNumeric-v0)
    toy,  # noqa: F401  (registers CommonWord-v0)
    writing,  # noqa: F401  (registers SummaryPair-v0, ExpandPair-v0, SummarySingle-v0, ExpandSingle-v0)
)
