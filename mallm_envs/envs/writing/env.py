"""Collaborative writing v1: two writers (or one) write complementary parts of one text.

| | |
|---|---|
| Ids | `SummaryPair-v1`, `ExpandPair-v1` (two writers), `SummarySingle-v1`, `ExpandSingle-v1` (one writer) |
| Agents | `concise`, `detailed` / `background`, `method` / `writer` |
| API | AEC (`mallm_envs.make`), Parallel (`mallm_envs.make_parallel`) |
| Observation | `{"text": str, "turn": int}`: role, rules, the source, feedback |
| Action | text: the agent's part; single-writer ids: two labelled sections (at most 8,000 characters) |
| Reward | team, 0-4: the paper's gated levels (max 3) + coverage (max 1), times integrity (0-1) |
| Max turns | 1 (argument `max_turns`; the paper used 1) |

Description
-----------
The two writing tasks of Liu et al. (arXiv 2508.04652) with a reward that text without
meaning cannot win. `SummaryPair-v1`: `concise` writes a short summary of a document's main
point and `detailed` a longer one covering the main points and how they connect.
`ExpandPair-v1`: both see a research brief; `background` writes the problem and why it
matters, `method` what the work does, finds and implies. The single-writer ids ask one
model for both parts (the paper's single-model baseline) under `CONCISE:`/`DETAILED:` or
`BACKGROUND:`/`METHOD:` labels. One env class per shape, parameterised by a task preset
(`mallm_envs.envs.writing.presets`, argument `task`); tasks, prompts and splits are those of
the v0 ids (`SummaryPair-v0` has the full description of the data and prompt layout).

Observation
-----------
As in v0: the role and the partner's role, the word limits, the source between
`=== SOURCE ===` and `=== END SOURCE ===` lines, the turn, and from the second turn on the
team reward with one explained line per component and both parts of the last turn. In the
sequential schedule the second writer also sees the first writer's text of the same turn.
Quoted texts lose bidi overrides, zero-width and other format characters and C0/C1 control
characters (v0 passed bidi overrides and C1 controls through to the partner).

Actions and invalid actions
---------------------------
Pair ids: the whole action, stripped, is the agent's part. Single-writer ids: two sections,
each started by a label line (`CONCISE:` or `## Concise` or `**Detailed summary:**`, the
rule of `mallm_envs.envs.writing.sections`), parsed in linear time
(`parse_sections_linear`: v0's parser took about a second on a line of 8,000 blanks). An
empty part, a missing, repeated or empty section, or text the core refuses (NUL bytes, lone
surrogates, C0 controls, more than 8,000 characters) is unusable: reward 0 and
`infos[agent]["invalid_reason"]` says why; the components are still computed and shown.

Rewards
-------
`total = integrity x (gated + coverage)`, max 4 (pure rules: `mallm_envs.envs.writing.rules`,
presets `SUMMARY_RULES` and `EXPANSION_RULES`). Every measure reads the normalised text:
NFKC, format characters (zero-width, bidi) and combining marks removed, Cyrillic and Greek
look-alike letters mapped to Latin. Each component is in `infos[agent]["reward_components"]`
with one sentence in `reward_explanation` and its measure in
`reward_measurements["<name>_measure"]`. Summary / expansion thresholds:

| Component | Range | What earns it |
|---|---|---|
| `structure` | 0 or 0.5 | both parts have 8-256 words / 128-256 words |
| `length_ratio` | 0-1 | second/first characters (normalised) in 1.6-3.2 (ramps 1.1, 5.0) / 1.0-1.3 (ramps 0.8, 1.5) |
| `vocabulary` | 0-0.5 | distinct content words, second/first, from 2.0 (ramp from 1.3) / in 0.7-1.3 (ramps 0.5, 1.7) |
| `style` | 0-1 | 0.4 x transition categories (in `detailed` / in both parts), full from 3 categories and **no more for more** + 0.6 x fit: summary, content-word Jaccard overlap full from 0.03 (shared key terms); expansion, **complementary** parts: 8-45% of the smaller part's content stems shared (ramps from 2% and to 70%) |
| `gated` | 0-3 | the four levels; a level scoring 0 stops the sum (the paper's rule) |
| `coverage` | 0-1 | half key points, half the source's 12 most frequent content stems, found **only in well-formed sentences** (>= 4 words, >= 60% plausible word pairs, >= 20% function words), so word lists collect none |
| `repetition_factor` | 0-1 | falls from 8% to 40% repeated word trigrams in a part |
| `copy_factor` | 0-1 | falls from 20% to 70% of the words in 8-word runs copied from the source |
| `novelty_factor` | 0-1 | falls from 38% to 60% / 42% to 62% of a part's word trigrams found in the source (extracts with deleted words, shuffled chunks, rotated clauses) |
| `fluency_factor` | 0-1 | rises from 72% to 85% of the pair's judged adjacent word pairs being plausible word order (below) |
| `lexicon_factor` | 0-1 | falls from 8% to 20% of a part's words unknown to the corpus and the source (made-up words) |
| `frame_factor` | 0-1 | falls from 12% to 30% repeated 5-grams of a part's function-word skeleton (fill-in frames) |
| `skeleton_factor` | 0-1 | falls from 35% to 60% of a part's sentence frames (function-word 6-grams holding >= 3 function words) found in the source (the source's sentences with their content words swapped) |
| `coherence_factor` | 0-1 | rises from 40% to 55% / 50% to 65% of neighbouring content-word pairs (function words skipped, both in the source) that also meet in one source sentence (source words poured into a template or shuffled) |
| `breadth_factor` | 0-1 | rises from 5% to 20% / 40% to 65% of the source's distinct content words used in well-formed sentences (a few key phrases in generic frames) |
| `cross_copy_factor` | 0-1 | falls from 45% to 80% / 25% to 60% of the shorter part repeated by the other, in 4-word runs or as the same content-word pairs reordered (partner copies, adjacent-word swaps) |
| `script_factor` | 0-1 | falls from 0 to 5% of words mixing Latin with Cyrillic or Greek letters |
| `topic_factor` | 0-1 | v0's: rises from 15% to 40% / 8% to 25% of a part's content words in the source, and from 30% to 60% / 15% to 40% of its words in on-topic sentences |
| `prose_factor` | 0-1 | v0's: falls when a part has few function words or no sentences |
| `integrity` | 0-1 | the product of the thirteen factors |
| `total` | 0-4 | `integrity x (gated + coverage)`; coverage counts only if `structure` passed |

Fluency is model-free and exact. The reference corpus is every bundled document and brief
(all splits). An adjacent word pair inside a sentence is *judged* unless both words are
content words or one is a number; it is *plausible* when the corpus or the source contains
it, or when its class pair (a function word is its own class; a content word is `C`, `Cly`,
`Cing`, `Ced` or `Cs` by its ending) occurs at least 3 times in the corpus and makes at
least 1% of the pairs its first class starts or its second class ends. Honest prose lands
at 86-100% (lower on topics far from the corpus), a salad of the source's words at 60-88%
(the coherence factor catches it too). Fluency does not judge meaning: a
chain of the source's own word pairs reads as fluent (the novelty and copy factors catch
it), and so do the source's sentences with their content words swapped (the skeleton
factor) or a fixed generic paragraph filled with source words (the coherence factor).
All measures are ratios of integer counts compared with fixed thresholds, so replay is
exact on any machine (no model, no tolerance).

How it measures (`tests/test_writing_adversarial.py`: 23 cheap strategies built only from
the observation, on the 26 test tasks, against 10 hand-written pairs per task): honest
pairs average 3.63 (summary) and 3.80 (expansion) of 4 under v1, against 3.23 and 2.93
under v0. Under v0, 10 strategies reached 90% of the honest mean on at least one task;
under v1 none does. The closest is `template_source_phrases` on the summary task (85%):
generic fluent paragraphs whose slots take the source's content-word runs in order. It
passes every model-free check and only a language model (or entailment) would see that it
means nothing; treat v1's summary scores above about 3.1 with that in mind.

Episode end
-----------
Truncated after `max_turns` turns; there is no early termination.

Arguments
---------
- `task` (`"summary"` or `"expansion"`): the preset; fixed by each registered id.
- `data`, `split`, `data_limit`, `max_turns`, `schedule`, `render_mode`: as in v0
  (`SummaryPair-v0`). v1 has no `similarity` argument: the reward is lexical only.

Version history
---------------
- v1: a reward that text without meaning cannot win (issue 15). Measures read normalised
  text (NFKC, format characters and combining marks removed, look-alike letters mapped,
  mixed-script words penalised); new novelty, fluency, lexicon, frame, cross-copy and
  script, skeleton, coherence and breadth factors; transition credit capped at 3 categories; expansion style rewards
  complementary parts instead of overlap; coverage counted in well-formed sentences only;
  on-topic sentence thresholds lowered (v0's stemmer missed plural forms and cost honest
  pairs); single-writer labels parsed in linear time; bidi overrides, format characters and
  C1 controls no longer reach the partner's prompt. v0 ids stay registered unchanged.
- v0: initial version (modules `summary_pair`, `expand_pair`, `summary_single`,
  `expand_single`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any, ClassVar

from mallm_envs.core.errors import EnvArgumentError
from mallm_envs.core.text import clean, shorten
from mallm_envs.envs.writing import rules
from mallm_envs.envs.writing.base import (
    QUOTE_CHARS,
    PairWritingEnv,
    SingleWritingEnv,
    WritingEnv,
    writing_metadata,
)
from mallm_envs.envs.writing.presets import PRESETS, TaskPreset
from mallm_envs.envs.writing.sections import parse_sections_linear


def safe_quote(text: str) -> str:
    """``text`` made safe to show another agent: format characters (bidi overrides,
    zero-width), C0 and C1 controls (but newlines and tabs) removed, then shortened.

    >>> safe_quote("ok\\u202eevil\\x85 x\\u200b")
    'okevil x'
    """
    text = clean(text)
    if not text.isascii():
        text = "".join(
            c
            for c in text
            if c in "\n\t" or unicodedata.category(c) not in ("Cf", "Cc", "Cs", "Co")
        )
    return shorten(text.strip(), QUOTE_CHARS) or "(empty)"


def _preset(task: Any) -> TaskPreset:
    if not isinstance(task, str) or task not in PRESETS:
        raise EnvArgumentError(f"task must be one of {tuple(PRESETS)}, got {task!r}")
    return PRESETS[task]


class _V1:
    """What the v1 envs share: the preset, the v1 rules and the safe quoting."""

    preset: TaskPreset

    def _set_preset(self, task: Any, kwargs: Mapping[str, Any]) -> None:
        if "similarity" in kwargs:
            raise EnvArgumentError(
                "the v1 writing envs take no 'similarity' argument: their reward is lexical "
                "only (the v0 ids offer similarity='minilm')"
            )
        preset = _preset(task)
        self.preset = preset
        self.task_name = preset.name
        self.reward_config = preset.rules

    def _score(self, texts: Mapping[str, str]) -> rules.PairScore:  # type: ignore[override]
        first, second = self.parts
        task = self.task  # type: ignore[attr-defined]
        return rules.score_pair(
            texts.get(first, ""),
            texts.get(second, ""),
            task.source,
            task.key_points,
            self.preset.rules,
        )

    def _quote_text(self, text: str) -> str:
        return safe_quote(text)


class WritingPairEnv(_V1, PairWritingEnv):
    """Two writers, one part each (``SummaryPair-v1``, ``ExpandPair-v1``); see the module
    docstring."""

    metadata: ClassVar[dict] = writing_metadata("writing_pair_v1")

    def __init__(self, *, task: str = "summary", **kwargs: Any) -> None:
        self._set_preset(task, kwargs)
        WritingEnv.__init__(self, **kwargs)
        rules.reference_corpus()  # read once here, so no step pays for it


class WritingSingleEnv(_V1, SingleWritingEnv):
    """One writer, both parts as labelled sections (``SummarySingle-v1``,
    ``ExpandSingle-v1``); see the module docstring."""

    metadata: ClassVar[dict] = writing_metadata("writing_single_v1")

    def __init__(self, *, task: str = "summary", **kwargs: Any) -> None:
        self._set_preset(task, kwargs)
        WritingEnv.__init__(self, **kwargs)
        rules.reference_corpus()  # read once here, so no step pays for it

    def _texts_of(self, actions: dict[str, str | None]) -> tuple[dict[str, str], dict[str, str]]:
        action = actions["writer"]
        if action is None:
            return {}, {}
        sections = parse_sections_linear(action, self.parts)
        if sections.problem is not None:
            return dict(sections.parts), {"writer": sections.problem}
        return dict(sections.parts), {}
