"""ExpandPair: two writers expand an abstract-like brief into the opening of an article.

| | |
|---|---|
| Id | `ExpandPair-v0` |
| Agents | `background`, `method` |
| API | AEC (`mallm_envs.make`), Parallel (`mallm_envs.make_parallel`) |
| Observation | `{"text": str, "turn": int}`: role, rules, the brief, feedback |
| Action | text: the agent's part (plain prose, at most 8,000 characters) |
| Reward | team, 0-4: the paper's gated levels (max 3) + coverage (max 1), times integrity (0-1) |
| Max turns | 1 (argument `max_turns`; the paper used 1) |

Description
-----------
The expansion task of Liu et al. (arXiv 2508.04652), where arXiv abstracts were grown
into introductions. Both writers see the same brief (a title and an abstract).
`background` writes the background and motivation: the problem, why it matters and what
was missing before. `method` writes the method and implications: what the work does, what
it finds and what follows. The two parts should read as one introduction: similar in
length and vocabulary, sharing key terms, joined by transition phrases, together covering
the brief without repeating each other or copying it.

The briefs are this project's own licence-clean corpus (`data="bundled"`, many fields,
fixed `train`/`test` splits); the paper's arXiv abstracts can be used instead.

Observation
-----------
As in `SummaryPair-v0`: the role and the partner's role, the word limits, what lowers the
score, the brief between `=== SOURCE ===` and `=== END SOURCE ===` lines, the turn, and from
the second turn on a feedback block (team reward, one explained line per component, the
agent's own and the partner's last texts). In the sequential schedule `method` also sees
the text `background` submitted in the same turn.

Actions and invalid actions
---------------------------
The whole action, stripped, is the agent's part. An empty text, or one the core refuses
(NUL bytes, lone surrogates, control characters, more than 8,000 characters), is unusable:
the turn's reward is 0 and `infos[agent]["invalid_reason"]` says why.

Rewards
-------
One team reward per turn (`mallm_envs.envs.writing.rewards`, preset `EXPANSION_REWARD`):

| Component | Range | What earns it |
|---|---|---|
| `structure` | 0 or 0.5 | both parts have 128-256 words |
| `length_ratio` | 0-1 | method/background characters in 1.0-1.3 (ramps from 0.8 and to 1.5) |
| `vocabulary` | 0-0.5 | distinct content words, method/background, in 0.7-1.3 (ramps from 0.5, to 1.7) |
| `style` | 0-1 | 0.4 x transition categories in both parts + 0.6 x content-word overlap (full at 0.23) |
| `gated` | 0-3 | the four levels above; a level scoring 0 stops the sum (the paper's rule) |
| `coverage` | 0-1 | key points and the brief's most frequent content words found in the pair |
| `repetition_factor` | 0-1 | falls from 8% to 40% repeated word trigrams in a part, or method repeating background in 6-word runs |
| `copy_factor` | 0-1 | falls from 20% to 70% of the words copied in 8-word runs from the brief |
| `topic_factor` | 0-1 | rises from 8% to 25% of a part's content words found in the brief, and from 30% to 70% of its words in on-topic sentences |
| `prose_factor` | 0-1 | falls when a part is a keyword list (few function words) or has no sentences |
| `integrity` | 0-1 | the product of the four factors |
| `total` | 0-4 | `integrity x (gated + coverage)`; coverage counts only if `structure` passed |

`infos[agent]["reward_explanation"]` gives one sentence per component and
`infos[agent]["reward_measurements"]` the raw numbers.

Episode end
-----------
Truncated after `max_turns` turns; there is no early termination.

Arguments
---------
- `data` (str, default `"bundled"`): `"bundled"`, `"file:PATH"` (JSON Lines in the bundled
  format), `"arxiv"` or `"arxiv:NAME_OR_FILE"` (the paper's data through the optional
  `datasets` package; default hub id `LovelyBuggies/arXiv_abstract`).
- `split` (str, default `"train"`): `"train"` or `"test"` (hub splits by their names).
  Evaluate on `"test"`.
- `data_limit` (int or None): keep the first N tasks of the split.
- `similarity` (`"lexical"` (default) or `"minilm"`): how the topic factor measures
  closeness to the brief; recorded in the spec.
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
from mallm_envs.envs.writing.presets import EXPANSION, TaskPreset
from mallm_envs.envs.writing.rewards import EXPANSION_REWARD


class ExpandPairEnv(PairWritingEnv):
    """See the module docstring (the v0 reward of :mod:`.rewards` on the expansion preset)."""

    metadata: ClassVar[dict] = writing_metadata("expand_pair_v0")
    preset: ClassVar[TaskPreset] = EXPANSION
    reward_config: ClassVar[Any] = EXPANSION_REWARD
