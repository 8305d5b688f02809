"""SummarySingle: one writer produces both summaries of `SummaryPair-v0`.

| | |
|---|---|
| Id | `SummarySingle-v0` |
| Agents | `writer` |
| API | AEC (`mallm_envs.make`), Parallel (`mallm_envs.make_parallel`) |
| Observation | `{"text": str, "turn": int}`: rules, the document, feedback |
| Action | text: a `CONCISE:` section and a `DETAILED:` section (at most 8,000 characters) |
| Reward | the same team reward as `SummaryPair-v0`, on the two sections (0-4) |
| Max turns | 1 (argument `max_turns`) |

Description
-----------
The paper's single-model baseline for the summary task: one (usually larger) model writes
both the concise and the detailed summary. Tasks, prompts' rules and reward are those of
`SummaryPair-v0`, so scores of the two ids compare directly.

Observation
-----------
The rules for both parts, the document between `=== SOURCE ===` and `=== END SOURCE ===`
lines, the turn, the answer format, and from the second turn on a feedback block with the
team reward, one explained line per component and the last turn's two sections.

Actions and invalid actions
---------------------------
The answer must contain the two sections, each started by a label line
(`mallm_envs.envs.writing.sections` has the full rule):

```
CONCISE:
<the concise summary>

DETAILED:
<the detailed summary>
```

Labels are matched case-insensitively and may carry Markdown decoration (`## Concise`,
`**Detailed summary:**`); a label must be the first word of its line and be followed by a
colon, a dash or the end of the line. Text before the first label is ignored. A missing,
repeated or empty section, or text the core refuses, makes the answer unusable: reward 0,
and `infos["writer"]["invalid_reason"]` says what is wrong.

Rewards
-------
Exactly `SummaryPair-v0`'s (preset `SUMMARY_REWARD`), applied to the concise and detailed
sections. Components and explanations are in `infos["writer"]`.

Episode end
-----------
Truncated after `max_turns` turns.

Arguments
---------
`data`, `split`, `data_limit`, `similarity`, `max_turns`, `schedule`, `render_mode`: as in
`SummaryPair-v0` (with a single agent both schedules behave the same).

Version history
---------------
- v0: initial version.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mallm_envs.envs.writing.base import SingleWritingEnv, writing_metadata
from mallm_envs.envs.writing.presets import SUMMARY, TaskPreset
from mallm_envs.envs.writing.rewards import SUMMARY_REWARD


class SummarySingleEnv(SingleWritingEnv):
    """See the module docstring (the v0 reward of :mod:`.rewards` on the summary preset)."""

    metadata: ClassVar[dict] = writing_metadata("summary_single_v0")
    preset: ClassVar[TaskPreset] = SUMMARY
    reward_config: ClassVar[Any] = SUMMARY_REWARD
