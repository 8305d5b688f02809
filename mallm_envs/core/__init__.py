"""The family-agnostic core: text spaces, the cooperative text-env base, the episode loop.

The core knows no family and no registry (see ARCHITECTURE.md): :func:`replay` takes the
factory of the env to replay on; :func:`mallm_envs.replay` looks the env up for you.
"""

from mallm_envs.core.contract import TaskEnv
from mallm_envs.core.coop import CoopEnv
from mallm_envs.core.env import SCHEDULES, CoopTextEnv, TurnRecord, TurnResult
from mallm_envs.core.episode import (
    ActionRequest,
    Episode,
    Step,
    answer_requests,
    atomic_open,
    atomic_write_bytes,
    first_difference,
    load_episodes,
    play_episode,
    replay,
    run_episode,
    run_episodes,
    save_episodes,
)
from mallm_envs.core.parallel import CoopParallelEnv, TextParallelEnv
from mallm_envs.core.spaces import UnicodeText

__all__ = [
    "SCHEDULES",
    "ActionRequest",
    "CoopEnv",
    "CoopParallelEnv",
    "CoopTextEnv",
    "Episode",
    "Step",
    "TaskEnv",
    "TextParallelEnv",
    "TurnRecord",
    "TurnResult",
    "UnicodeText",
    "answer_requests",
    "atomic_open",
    "atomic_write_bytes",
    "first_difference",
    "load_episodes",
    "play_episode",
    "replay",
    "run_episode",
    "run_episodes",
    "save_episodes",
]
