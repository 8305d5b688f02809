"""The family-agnostic core: text spaces, the cooperative text-env base, the episode loop."""

from mallm_envs.core.env import SCHEDULES, CoopTextEnv, TurnRecord, TurnResult
from mallm_envs.core.episode import (
    Episode,
    Step,
    atomic_open,
    atomic_write_bytes,
    first_difference,
    load_episodes,
    replay,
    run_episode,
    save_episodes,
)
from mallm_envs.core.parallel import TextParallelEnv
from mallm_envs.core.spaces import UnicodeText

__all__ = [
    "SCHEDULES",
    "CoopTextEnv",
    "Episode",
    "Step",
    "TextParallelEnv",
    "TurnRecord",
    "TurnResult",
    "UnicodeText",
    "atomic_open",
    "atomic_write_bytes",
    "first_difference",
    "load_episodes",
    "replay",
    "run_episode",
    "save_episodes",
]
