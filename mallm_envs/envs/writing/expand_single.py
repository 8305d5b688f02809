"""ExpandSingle: one writer produces both parts of `ExpandPair-v0`.

| | |
|---|---|
| Id | `ExpandSingle-v0` |
| Agents | `writer` |
| API | AEC (`mallm_envs.make`), Parallel (`mallm_envs.make_parallel`) |
| Observation | `{"text": str, "turn": int}`: rules, the brief, feedback |
| Action | text: a `BACKGROUND:` section and a `METHOD:` section (at most 8,000 characters) |
| Reward | the same team reward as `ExpandPair-v0`, on the two sections (0-4) |
| Max turns | 1 (argument `max_turns`) |

Description
-----------
The paper's single-model baseline for the expansion task: one model writes both the
background-and-motivation part and the method-and-implications part. Tasks, rules and
reward are those of `ExpandPair-v0`, so scores of the two ids compare directly.

Observation
-----------
The rules for both parts, the brief between `=== SOURCE ===` and `=== END SOURCE ===`
lines, the turn, the answer format, and from the second turn on a feedback block with the
team reward, one explained line per component and the last turn's two sections.

Actions and invalid actions
---------------------------
The answer must contain the two sections, each started by a label line
(`mallm_envs.envs.writing.sections` has the full rule):

```
BACKGROUND:
<background and motivation>

METHOD:
<method and implications>
```

Labels are matched case-insensitively and may carry Markdown decoration (`## Background`,
`**Method section:**`); a label must be the first word of its line and be followed by a
colon, a dash or the end of the line. Text before the first label is ignored. A missing,
repeated or empty section, or text the core refuses, makes the answer unusable: reward 0,
and `infos["writer"]["invalid_reason"]` says what is wrong.

Rewards
-------
Exactly `ExpandPair-v0`'s (preset `EXPANSION_REWARD`), applied to the two sections.
Components and explanations are in `infos["writer"]`.

Episode end
-----------
Truncated after `max_turns` turns.

Arguments
---------
`data`, `split`, `data_limit`, `similarity`, `max_turns`, `schedule`, `render_mode`: as in
`ExpandPair-v0` (with a single agent both schedules behave the same).

Version history
---------------
- v0: initial version.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mallm_envs.envs.writing.base import SingleWritingEnv, writing_metadata
from mallm_envs.envs.writing.presets import EXPANSION, TaskPreset
from mallm_envs.envs.writing.rewards import EXPANSION_REWARD


class ExpandSingleEnv(SingleWritingEnv):
    """See the module docstring (the v0 reward of :mod:`.rewards` on the expansion preset)."""

    metadata: ClassVar[dict] = writing_metadata("expand_single_v0")
    preset: ClassVar[TaskPreset] = EXPANSION
    reward_config: ClassVar[Any] = EXPANSION_REWARD
