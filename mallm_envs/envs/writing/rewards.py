"""The writing family's team reward: the paper's gated levels plus terms that stop exploits.

Pure functions (no PettingZoo, no Gymnasium, no model): a pair of texts, the source they
are written from, and a :class:`PairRewardConfig` in; a :class:`RewardBreakdown` out, with
every named component, the measurement behind it and one sentence that explains it.

How the total is made
---------------------
::

    total = integrity * (gated + coverage_weight * coverage)       (coverage only if the
                                                                     structure level passed)
    gated = structure [+ length_ratio [+ vocabulary [+ style]]]    (max 3.0, the paper's)
    integrity = repetition_factor * copy_factor * topic_factor * prose_factor   (0..1)

1. ``gated`` (0-3) is the reward of Liu et al. (arXiv 2508.04652) for the writing tasks:
   four levels, and a level that scores 0 stops the sum (later levels are still measured
   and reported, but not added):

   - ``structure`` (0.5): both texts have ``min_tokens``-``max_tokens`` whitespace tokens.
   - ``length_ratio`` (1.0): characters of the second text / the first, scored by a
     trapezoid (:func:`trapezoid`): full inside ``length_full``, linear ramps down to 0 at
     ``length_zero``.
   - ``vocabulary`` (0.5): unique content words of the second text / the first, same shape.
   - ``style`` (1.0): 0.4 x transition score (categories of transition phrases found) +
     0.6 x content-word Jaccard overlap of the two texts, capped at ``jaccard_cap`` and
     divided by it.

2. ``coverage`` (0-1, weight ``coverage_weight`` = 1.0): how much of the source's content
   the pair carries: half the mean share of each key point's content words found in the
   pair, half the share of the source's ``salient_words`` most frequent content words.
   The paper's levels never look at the source, so without this term a pair that says
   nothing about the document can score full marks.

3. ``integrity`` (0-1) multiplies everything, so no exploit keeps its reward:

   - ``repetition_factor``: falls from 1 to 0 as the worst text's share of repeated word
     trigrams goes from ``repetition_free`` to ``repetition_full`` (padding by repeating
     sentences or phrases); in the expansion task a second text that repeats the first
     text's long phrases counts too.
   - ``copy_factor``: falls as the share of the pair's words that sit in runs of
     ``copy_ngram`` words copied verbatim from the source goes from ``copy_free`` to
     ``copy_full``.
   - ``topic_factor``: the least on-topic text decides. It is the smaller of two ramps:
     closeness to the source rising from ``topic_zero`` to ``topic_full`` (lexical: share
     of the text's content words whose stem occurs in the source; semantic: cosine
     similarity of sentence embeddings), and the share of its words in on-topic sentences
     rising from ``topic_sentence_zero`` to ``topic_sentence_full`` (a sentence is on topic
     when it names one of the source's subject words, which catches whole sentences of
     generic padding that a word-level share only dilutes).
   - ``prose_factor``: falls when a text stops reading as prose: function words below
     ``prose_function_full`` of its words (keyword stuffing, lists of the source's content
     words that would buy coverage and vocabulary), or sentences averaging more than
     ``prose_sentence_full`` words (no sentence structure at all).

The maximum is ``3.0 + coverage_weight`` = 4.0. A sensible hand-written pair lands near
3.3-3.8; each exploit loses most of it (see ``tests/test_writing_rewards.py``).

Differences from the paper's code, all to close loopholes
---------------------------------------------------------
- Length ratio counts characters after collapsing whitespace (spaces do not pad).
- Transition phrases must match whole words ("so" inside "also" does not count), and the
  lists leave out words that occur in almost any sentence ("as", "if", "but", "when").
- Vocabulary counts unique content words (the paper's arXiv code did; its TLDR code
  counted every word).

>>> from mallm_envs.envs.writing.rewards import SUMMARY_REWARD, score_pair
>>> source = ("Sunlight is a mixture of colours. Air molecules scatter short blue wavelengths "
...           "more than red ones, so the midday sky looks blue. At sunset light crosses much "
...           "more air, the blue is scattered away, and the remaining reds and oranges colour "
...           "the clouds. Dust and smoke from fires deepen the reds.")
>>> concise = ("Sunsets look red because low evening sunlight crosses far more air, which "
...            "scatters the blue light away before it reaches us.")
>>> detailed = ("Air molecules scatter blue wavelengths far more strongly than red ones; therefore "
...             "the midday sky appears blue. At sunset, however, sunlight travels through much more "
...             "atmosphere, so most blue light is scattered out before reaching us and the "
...             "surviving reds and oranges light up the clouds. In addition, dust and smoke from "
...             "fires make those reds even deeper.")
>>> result = score_pair(concise, detailed, source, ["blue wavelengths", "dust and smoke"], SUMMARY_REWARD)
>>> result.passed_levels, round(result.components["gated"], 2), round(result.total, 2)
(4, 2.8, 3.67)
>>> copied = score_pair(source[:90], source, source, ["blue wavelengths"], SUMMARY_REWARD)
>>> round(copied.components["copy_factor"], 2), round(copied.total, 2)
(0.0, 0.0)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from mallm_envs.envs.writing import text as T

#: Categories of transition phrases (the paper counts 12), matched as whole words.
TRANSITIONS: Mapping[str, tuple[str, ...]] = {
    "addition": (
        "additionally",
        "furthermore",
        "moreover",
        "in addition",
        "besides",
        "what is more",
        "as well as",
        "not only",
        "along with",
    ),
    "example": (
        "for example",
        "for instance",
        "such as",
        "to illustrate",
        "namely",
        "in particular",
        "specifically",
        "notably",
    ),
    "clarification": (
        "in other words",
        "that is to say",
        "put simply",
        "to put it simply",
        "more precisely",
        "to clarify",
        "this means",
        "which means",
    ),
    "cause_effect": (
        "therefore",
        "consequently",
        "as a result",
        "hence",
        "accordingly",
        "for this reason",
        "because of this",
        "thereby",
        "this leads to",
        "due to",
    ),
    "contrast": (
        "however",
        "on the other hand",
        "in contrast",
        "by contrast",
        "conversely",
        "on the contrary",
        "instead",
        "whereas",
        "unlike",
    ),
    "sequence": (
        "first",
        "firstly",
        "second",
        "secondly",
        "third",
        "finally",
        "next",
        "to begin with",
        "after that",
        "lastly",
        "subsequently",
    ),
    "emphasis": (
        "indeed",
        "in fact",
        "above all",
        "certainly",
        "most importantly",
        "especially",
        "crucially",
        "undoubtedly",
    ),
    "summary": (
        "in summary",
        "in short",
        "overall",
        "in conclusion",
        "to sum up",
        "all in all",
        "in brief",
        "ultimately",
    ),
    "comparison": (
        "similarly",
        "likewise",
        "in the same way",
        "just as",
        "compared with",
        "compared to",
        "equally",
    ),
    "concession": (
        "nevertheless",
        "nonetheless",
        "even though",
        "although",
        "despite",
        "in spite of",
        "admittedly",
        "even so",
    ),
    "condition": (
        "unless",
        "provided that",
        "as long as",
        "otherwise",
        "in that case",
        "even if",
        "in case",
        "assuming that",
    ),
    "time": (
        "meanwhile",
        "afterwards",
        "eventually",
        "at the same time",
        "previously",
        "since then",
        "later on",
        "in the meantime",
        "until then",
    ),
}

_TRANSITION_PATTERNS: dict[str, re.Pattern[str]] = {
    category: re.compile(r"(?<![\w'])(?:" + "|".join(re.escape(p) for p in phrases) + r")(?![\w'])")
    for category, phrases in TRANSITIONS.items()
}

Similarity = Callable[[str, str], float]
"""A text similarity in [-1, 1] (cosine of sentence embeddings): ``similarity(text, source)``."""


# ----------------------------------------------------------------------------- shapes


def trapezoid(
    value: float, zero_low: float, full_low: float, full_high: float, zero_high: float
) -> float:
    """1 inside ``[full_low, full_high]``, linear ramps to 0 at ``zero_low`` and ``zero_high``.

    ``math.inf`` as ``full_high`` and ``zero_high`` gives a one-sided ramp.

    >>> [round(trapezoid(r, 1.1, 1.6, 3.2, 5.0), 3) for r in (1.0, 1.35, 2.0, 4.1, 6.0)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    >>> trapezoid(9.0, 1.3, 2.0, math.inf, math.inf)
    1.0
    """
    if full_low <= value <= full_high:
        return 1.0
    if value < full_low:
        if value <= zero_low or full_low == zero_low:
            return 0.0
        return (value - zero_low) / (full_low - zero_low)
    if value >= zero_high or zero_high == full_high:
        return 0.0
    return (zero_high - value) / (zero_high - full_high)


def falling(value: float, free: float, full: float) -> float:
    """A penalty factor: 1 up to ``free``, falling linearly to 0 at ``full`` and beyond.

    >>> [round(falling(x, 0.2, 0.6), 3) for x in (0.0, 0.2, 0.4, 0.6, 0.9)]
    [1.0, 1.0, 0.5, 0.0, 0.0]
    """
    if value <= free:
        return 1.0
    if value >= full:
        return 0.0
    return (full - value) / (full - free)


def rising(value: float, zero: float, full: float) -> float:
    """A factor that is 0 up to ``zero`` and rises linearly to 1 at ``full``.

    >>> [round(rising(x, 0.1, 0.3), 3) for x in (0.05, 0.2, 0.5)]
    [0.0, 0.5, 1.0]
    """
    if value >= full:
        return 1.0
    if value <= zero:
        return 0.0
    return (value - zero) / (full - zero)


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PairRewardConfig:
    """Every threshold of the writing reward (see the module docstring for how they combine).

    The defaults are the summary task's; :data:`SUMMARY_REWARD` and
    :data:`EXPANSION_REWARD` are the two presets the environments use.
    """

    first_label: str = "concise"
    """Name of the first text in explanations."""
    second_label: str = "detailed"
    """Name of the second text in explanations."""
    min_tokens: int = 8
    """Structure level: fewest whitespace tokens each text may have."""
    max_tokens: int = 256
    """Structure level: most whitespace tokens each text may have."""
    structure_weight: float = 0.5
    """Points for the structure level."""
    length_window: tuple[float, float, float, float] = (1.1, 1.6, 3.2, 5.0)
    """Length-ratio level (second / first, characters): zero_low, full_low, full_high, zero_high."""
    length_weight: float = 1.0
    """Points for the length-ratio level."""
    vocabulary_window: tuple[float, float, float, float] = (1.3, 2.0, math.inf, math.inf)
    """Vocabulary level (unique content words, second / first): the same four points."""
    vocabulary_weight: float = 0.5
    """Points for the vocabulary level."""
    transitions_in: Literal["second", "both"] = "second"
    """Where transition phrases are counted: in the second text, or in both."""
    transition_base: float = 0.4
    """Transition score for one category found."""
    transition_step: float = 0.05
    """Transition score added per further category (capped at 1)."""
    jaccard_cap: float = 0.03
    """Content-word Jaccard overlap that earns the full style-overlap score."""
    style_weight: float = 1.0
    """Points for the style level (0.4 transitions + 0.6 overlap, times this)."""
    coverage_weight: float = 1.0
    """Points for covering the source (added to the gated levels)."""
    salient_words: int = 12
    """How many of the source's most frequent content words coverage looks for."""
    repetition_ngram: int = 3
    """Word n-gram size for repetition inside one text."""
    repetition_free: float = 0.08
    """Share of repeated n-grams that costs nothing (natural prose repeats a few)."""
    repetition_full: float = 0.4
    """Share of repeated n-grams at which the repetition factor reaches 0."""
    cross_repetition_ngram: int | None = None
    """If set, n-gram size for the second text repeating the first (expansion task)."""
    copy_ngram: int = 8
    """Length of a word run shared with the source that counts as copied."""
    copy_free: float = 0.2
    """Share of copied words that costs nothing (a quoted phrase or two)."""
    copy_full: float = 0.7
    """Share of copied words at which the copy factor reaches 0."""
    topic_zero: float = 0.15
    """Lexical on-topic share at (or below) which the topic factor is 0."""
    topic_full: float = 0.4
    """Lexical on-topic share from which the topic factor is 1."""
    topic_sentence_zero: float = 0.5
    """Share of a text's words in on-topic sentences at which the topic factor is 0."""
    topic_sentence_full: float = 0.85
    """Share of a text's words in on-topic sentences from which the topic factor is 1."""
    semantic_topic_zero: float = 0.15
    """Cosine similarity to the source at which the topic factor is 0 (semantic mode)."""
    semantic_topic_full: float = 0.45
    """Cosine similarity to the source from which the topic factor is 1 (semantic mode)."""
    prose_function_zero: float = 0.08
    """Function-word share at (or below) which the prose factor is 0."""
    prose_function_full: float = 0.22
    """Function-word share from which the prose factor is 1."""
    prose_sentence_full: float = 45.0
    """Mean words per sentence up to which the prose factor is 1."""
    prose_sentence_zero: float = 90.0
    """Mean words per sentence at which the prose factor is 0."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.min_tokens <= self.max_tokens:
            problems.append("need 0 <= min_tokens <= max_tokens")
        for name in ("length_window", "vocabulary_window"):
            window = getattr(self, name)
            if len(window) != 4 or list(window) != sorted(window):
                problems.append(f"{name} must be four non-decreasing numbers")
        if self.transitions_in not in ("second", "both"):
            problems.append("transitions_in must be 'second' or 'both'")
        if not 0 < self.jaccard_cap <= 1:
            problems.append("jaccard_cap must be in (0, 1]")
        for low, high in (
            ("repetition_free", "repetition_full"),
            ("copy_free", "copy_full"),
            ("topic_zero", "topic_full"),
            ("topic_sentence_zero", "topic_sentence_full"),
            ("semantic_topic_zero", "semantic_topic_full"),
            ("prose_function_zero", "prose_function_full"),
            ("prose_sentence_full", "prose_sentence_zero"),
        ):
            if not getattr(self, low) < getattr(self, high):
                problems.append(f"need {low} < {high}")
        if self.repetition_ngram < 1 or self.copy_ngram < 1 or self.salient_words < 1:
            problems.append("n-gram sizes and salient_words must be >= 1")
        if problems:
            raise ValueError("invalid PairRewardConfig: " + "; ".join(problems))

    @property
    def max_total(self) -> float:
        """The largest total this configuration can give."""
        return (
            self.structure_weight
            + self.length_weight
            + self.vocabulary_weight
            + self.style_weight
            + self.coverage_weight
        )


#: The summary pair (paper: TLDR): concise then detailed, 8-256 tokens each, detailed
#: 1.6-3.2x as long with at least twice the vocabulary.
SUMMARY_REWARD = PairRewardConfig()

#: The expansion pair (paper: arXiv abstract -> introduction): background then method,
#: 128-256 tokens each, similar lengths and vocabularies, transitions counted in both.
EXPANSION_REWARD = PairRewardConfig(
    first_label="background",
    second_label="method",
    min_tokens=128,
    max_tokens=256,
    length_window=(0.8, 1.0, 1.3, 1.5),
    vocabulary_window=(0.5, 0.7, 1.3, 1.7),
    transitions_in="both",
    jaccard_cap=0.23,
    cross_repetition_ngram=6,
    topic_zero=0.08,
    topic_full=0.25,
    topic_sentence_zero=0.3,
    topic_sentence_full=0.7,
    semantic_topic_zero=0.1,
    semantic_topic_full=0.4,
)


# ----------------------------------------------------------------------------- levels


def structure_level(first: str, second: str, config: PairRewardConfig) -> tuple[float, str]:
    """The structure level: ``structure_weight`` when both texts have an allowed token count.

    >>> structure_level("one two three four five six seven eight", "too short", SUMMARY_REWARD)[0]
    0.0
    """
    counts = (len(T.tokens(first)), len(T.tokens(second)))
    ok = all(config.min_tokens <= c <= config.max_tokens for c in counts)
    score = config.structure_weight if ok else 0.0
    why = (
        f"{config.first_label} has {counts[0]} words, {config.second_label} {counts[1]}; "
        f"each needs {config.min_tokens}-{config.max_tokens}"
    )
    return score, why


def length_ratio_level(
    first: str, second: str, config: PairRewardConfig
) -> tuple[float, float, str]:
    """The length-ratio level: (score, ratio, explanation); characters after collapsing whitespace.

    >>> length_ratio_level("a" * 100, "b" * 250, SUMMARY_REWARD)[:2]
    (1.0, 2.5)
    """
    a, b = len(T.normalized(first)), len(T.normalized(second))
    ratio = b / a if a else 0.0
    z0, f0, f1, z1 = config.length_window
    score = config.length_weight * trapezoid(ratio, z0, f0, f1, z1) if a else 0.0
    why = (
        f"{config.second_label}/{config.first_label} length is {ratio:.2f}x ({b}/{a} characters); "
        f"full credit for {f0}-{f1}x, none below {z0}x or above {z1}x"
    )
    return score, ratio, why


def vocabulary_level(first: str, second: str, config: PairRewardConfig) -> tuple[float, float, str]:
    """The vocabulary level: (score, ratio of unique content words, explanation).

    >>> vocabulary_level("red blue green", "red blue green pink gold grey", SUMMARY_REWARD)[:2]
    (0.5, 2.0)
    """
    a, b = len(set(T.content_words(first))), len(set(T.content_words(second)))
    ratio = b / a if a else 0.0
    z0, f0, f1, z1 = config.vocabulary_window
    score = config.vocabulary_weight * trapezoid(ratio, z0, f0, f1, z1) if a else 0.0
    upper = "" if math.isinf(f1) else f"-{f1}"
    why = (
        f"{config.second_label} uses {b} distinct content words, {config.first_label} {a} "
        f"(ratio {ratio:.2f}); full credit from {f0}{upper}"
    )
    return score, ratio, why


def transition_categories(text: str) -> list[str]:
    """The transition categories whose phrases occur in ``text`` (whole words, any case).

    >>> transition_categories("First, we boil water. However, salt also helps; as a result it boils later on.")
    ['cause_effect', 'contrast', 'sequence', 'time']
    """
    lowered = T.normalized(text.lower().replace("’", "'"))
    return [c for c, pattern in _TRANSITION_PATTERNS.items() if pattern.search(lowered)]


def jaccard(first: str, second: str) -> float:
    """Jaccard overlap of the two texts' content-word sets (0 when both are empty).

    >>> jaccard("red apples and green pears", "green pears and yellow lemons")
    0.3333333333333333
    """
    a, b = set(T.content_words(first)), set(T.content_words(second))
    union = a | b
    return len(a & b) / len(union) if union else 0.0


def style_level(
    first: str, second: str, config: PairRewardConfig
) -> tuple[float, float, float, list[str], str]:
    """The style level: (score, transition score, overlap score, categories, explanation)."""
    where = second if config.transitions_in == "second" else first + "\n" + second
    categories = transition_categories(where)
    transition = (
        min(1.0, config.transition_base + config.transition_step * (len(categories) - 1))
        if categories
        else 0.0
    )
    overlap_raw = jaccard(first, second)
    overlap = min(overlap_raw, config.jaccard_cap) / config.jaccard_cap
    score = config.style_weight * (0.4 * transition + 0.6 * overlap)
    place = config.second_label if config.transitions_in == "second" else "both texts"
    why = (
        f"{len(categories)} of {len(TRANSITIONS)} transition categories in {place} "
        f"({', '.join(categories) or 'none'}); content-word overlap {overlap_raw:.3f} "
        f"(full credit from {config.jaccard_cap})"
    )
    return score, transition, overlap, categories, why


# ----------------------------------------------------------------------------- content terms


def coverage_score(
    pair_text: str, source: str, key_points: Sequence[str], config: PairRewardConfig
) -> tuple[float, float, float, str]:
    """Coverage of the source: (score, key-point share, salient-word share, explanation).

    Key-point share: for each key point, the share of its content-word stems found in the
    pair, averaged. Salient-word share: the share of the source's ``salient_words`` most
    frequent content stems found in the pair. Score: the mean of the two (the salient share
    alone when there are no key points).

    >>> coverage_score("Bees dance to show where flowers are.", "Bees dance. Bees find flowers.", ["bee dance"], SUMMARY_REWARD)[:3]
    (0.875, 1.0, 0.75)
    """
    present = set(T.content_stems(pair_text))
    point_shares = []
    for point in key_points:
        stems = set(T.content_stems(point))
        if stems:
            point_shares.append(len(stems & present) / len(stems))
    salient = T.salient_stems(source, config.salient_words)
    salient_share = sum(1 for s in salient if s in present) / len(salient) if salient else 0.0
    if point_shares:
        point_share = sum(point_shares) / len(point_shares)
        score = 0.5 * point_share + 0.5 * salient_share
    else:
        point_share = salient_share
        score = salient_share
    why = (
        f"key points {point_share:.0%} covered ({len(point_shares)} points), "
        f"{salient_share:.0%} of the source's {len(salient)} most frequent content words used"
    )
    return score, point_share, salient_share, why


def repetition_measure(first: str, second: str, config: PairRewardConfig) -> tuple[float, str]:
    """The pair's worst repetition share and which text it comes from.

    Inside each text: the share of its word ``repetition_ngram``-grams seen earlier in the
    same text. With ``cross_repetition_ngram``: also the share of the second text's words in
    runs of that many words that the first text already has.
    """
    first_words, second_words = T.words(first), T.words(second)
    shares = {
        config.first_label: T.repeated_ngram_share(first_words, config.repetition_ngram),
        config.second_label: T.repeated_ngram_share(second_words, config.repetition_ngram),
    }
    if config.cross_repetition_ngram:
        shares[f"{config.second_label} repeating {config.first_label}"] = T.shared_ngram_share(
            second_words, first_words, config.cross_repetition_ngram
        )
    worst = max(shares, key=lambda k: shares[k])
    return shares[worst], worst


def copy_measure(first: str, second: str, source: str, config: PairRewardConfig) -> float:
    """Share of the pair's words that lie in runs of ``copy_ngram`` words found in the source."""
    source_words = T.words(source)
    a, b = T.words(first), T.words(second)
    total = len(a) + len(b)
    if not total:
        return 0.0
    copied = T.shared_ngram_share(a, source_words, config.copy_ngram) * len(a)
    copied += T.shared_ngram_share(b, source_words, config.copy_ngram) * len(b)
    return copied / total


def lexical_topicality(text: str, source: str) -> float:
    """Share of the content words of ``text`` whose stem occurs in ``source`` (0 if none).

    >>> round(lexical_topicality("Blue light scatters in air; pizza is tasty.", "Air scatters blue light."), 3)
    0.667
    """
    stems = T.content_stems(text)
    if not stems:
        return 0.0
    vocabulary = set(T.content_stems(source))
    return sum(1 for s in stems if s in vocabulary) / len(stems)


def topic_stems(source: str) -> set[str]:
    """Stems that mark the source's subject: content stems used at least twice in it, or in
    its first line (the title)."""
    stems = T.content_stems(source)
    counts = Counter(stems)
    title = source.strip().split("\n", 1)[0]
    return {s for s in stems if counts[s] >= 2} | set(T.content_stems(title))


def on_topic_sentence_share(text: str, source: str, min_share: float = 0.2) -> float:
    """Share of the words of ``text`` that sit in on-topic sentences (0 for no words).

    A sentence is on topic when it names at least one of the source's subject words
    (:func:`topic_stems`) and at least ``min_share`` of its content-word stems occur in
    the source. This catches on-topic text padded with whole generic or unrelated
    sentences, which a word-level share only dilutes.

    >>> on_topic_sentence_share("Blue light scatters. I love baking bread at home.",
    ...                         "Air scatters blue light. Blue skies.")
    0.3333333333333333
    """
    vocabulary = set(T.content_stems(source))
    subject = topic_stems(source)
    total = on_topic = 0
    for sentence in T.sentences(text):
        size = len(T.words(sentence))
        stems = T.content_stems(sentence)
        hits = sum(1 for s in stems if s in vocabulary)
        total += size
        if hits >= min_share * len(stems) and any(s in subject for s in stems):
            on_topic += size
    return on_topic / total if total else 0.0


def prose_measure(text: str, config: PairRewardConfig) -> tuple[float, float, float]:
    """(prose factor, function-word share, mean words per sentence) of one text."""
    share = T.function_word_share(text)
    length = T.mean_sentence_words(text)
    factor = min(
        rising(share, config.prose_function_zero, config.prose_function_full),
        falling(length, config.prose_sentence_full, config.prose_sentence_zero),
    )
    return factor, share, length


# ----------------------------------------------------------------------------- total


@dataclass(frozen=True)
class RewardBreakdown:
    """The reward of one pair of texts, explained.

    Attributes:
        total: the team reward.
        components: named parts (levels, gated sum, coverage, the integrity factors).
        measurements: the raw numbers behind them (ratios, shares, counts).
        explanations: component name -> one sentence saying why it has its value.
        passed_levels: how many of the four gated levels counted (0-4).
    """

    total: float
    components: Mapping[str, float]
    measurements: Mapping[str, float]
    explanations: Mapping[str, str]
    passed_levels: int

    def summary_lines(self) -> list[str]:
        """One line per component, ``name = value: explanation`` (for prompts and logs)."""
        return [
            f"{name} = {self.components[name]:.3f}: {self.explanations[name]}"
            for name in self.explanations
        ]


def score_pair(
    first: str,
    second: str,
    source: str,
    key_points: Sequence[str],
    config: PairRewardConfig,
    *,
    similarity: Similarity | None = None,
) -> RewardBreakdown:
    """Score a pair of texts written from ``source`` (see the module docstring).

    Args:
        first: the first writer's text (concise summary / background).
        second: the second writer's text (detailed summary / method).
        source: the document or brief both were written from (title included).
        key_points: phrases the source's author marked as its key content (may be empty).
        config: thresholds and weights (:data:`SUMMARY_REWARD`, :data:`EXPANSION_REWARD`).
        similarity: ``similarity(text, source)`` in [-1, 1] for the semantic topic check;
            ``None`` uses the lexical check (the default of every registered id).
    """
    structure, structure_why = structure_level(first, second, config)
    length, length_ratio, length_why = length_ratio_level(first, second, config)
    vocabulary, vocabulary_ratio, vocabulary_why = vocabulary_level(first, second, config)
    style, transition, overlap, categories, style_why = style_level(first, second, config)

    gated = 0.0
    passed = 0
    for score in (structure, length, vocabulary):  # a level scoring 0 stops the sum
        if score <= 0.0:
            break
        gated += score
        passed += 1
    if passed == 3:  # style is the last level: it adds whatever it scores
        gated += style
        passed = 4

    pair_text = first + "\n" + second
    coverage, point_share, salient_share, coverage_why = coverage_score(
        pair_text, source, key_points, config
    )
    coverage_points = config.coverage_weight * coverage if structure > 0 else 0.0

    repetition, repetition_where = repetition_measure(first, second, config)
    repetition_factor = falling(repetition, config.repetition_free, config.repetition_full)

    copied = copy_measure(first, second, source, config)
    copy_factor = falling(copied, config.copy_free, config.copy_full)

    topic_factors: dict[str, float] = {}
    topic_notes: dict[str, str] = {}
    topicality: dict[str, float] = {}
    sentence_shares: dict[str, float] = {}
    for label, piece in ((config.first_label, first), (config.second_label, second)):
        if similarity is None:
            closeness = lexical_topicality(piece, source)
            zero, full, how = (
                config.topic_zero,
                config.topic_full,
                "of its content words in the source",
            )
        else:
            closeness = round(float(similarity(piece, source)), 4)
            zero, full = config.semantic_topic_zero, config.semantic_topic_full
            how = "cosine similarity to the source"
        sentence_share = on_topic_sentence_share(piece, source)
        topicality[label] = closeness
        sentence_shares[label] = sentence_share
        topic_factors[label] = min(
            rising(closeness, zero, full),
            rising(sentence_share, config.topic_sentence_zero, config.topic_sentence_full),
        )
        topic_notes[label] = (
            f"{label}: {closeness:.2f} {how} (0 at {zero}, full from {full}), "
            f"{sentence_share:.0%} of its words in on-topic sentences "
            f"(0 at {config.topic_sentence_zero:.0%}, full from {config.topic_sentence_full:.0%})"
        )
    least = min(topic_factors, key=lambda k: topic_factors[k])
    topic_factor = topic_factors[least]

    prose_first = prose_measure(first, config)
    prose_second = prose_measure(second, config)
    prose_factor = min(prose_first[0], prose_second[0])

    integrity = repetition_factor * copy_factor * topic_factor * prose_factor
    total = integrity * (gated + coverage_points)

    components = {
        "structure": structure,
        "length_ratio": length,
        "vocabulary": vocabulary,
        "style": style,
        "gated": gated,
        "coverage": coverage_points,
        "repetition_factor": repetition_factor,
        "copy_factor": copy_factor,
        "topic_factor": topic_factor,
        "prose_factor": prose_factor,
        "integrity": integrity,
        "total": total,
    }
    gate_note = {
        0: "structure failed, so nothing is added",
        1: "length ratio failed, so only structure counts",
        2: "vocabulary failed, so style does not count",
        3: "all levels counted",
        4: "all levels counted",
    }[passed]
    explanations = {
        "structure": structure_why,
        "length_ratio": length_why,
        "vocabulary": vocabulary_why,
        "style": style_why,
        "gated": f"paper levels, {passed} of 4 counted ({gate_note}); max {config.max_total - config.coverage_weight:g}",
        "coverage": coverage_why
        + ("" if structure > 0 else "; not added because the structure level failed"),
        "repetition_factor": (
            f"worst repetition {repetition:.0%} ({repetition_where}); free up to "
            f"{config.repetition_free:.0%}, all lost at {config.repetition_full:.0%}"
        ),
        "copy_factor": (
            f"{copied:.0%} of the words sit in {config.copy_ngram}-word runs copied from the "
            f"source; free up to {config.copy_free:.0%}, all lost at {config.copy_full:.0%}"
        ),
        "topic_factor": f"least on-topic text, {topic_notes[least]}",
        "prose_factor": (
            f"function words {prose_first[1]:.0%} / {prose_second[1]:.0%} "
            f"(full from {config.prose_function_full:.0%}), words per sentence "
            f"{prose_first[2]:.0f} / {prose_second[2]:.0f} (full up to {config.prose_sentence_full:g})"
        ),
        "integrity": "product of the four factors; it scales everything",
        "total": f"integrity x (gated + coverage); max {config.max_total:g}",
    }
    measurements = {
        "first_tokens": float(len(T.tokens(first))),
        "second_tokens": float(len(T.tokens(second))),
        "length_ratio": length_ratio,
        "vocabulary_ratio": vocabulary_ratio,
        "transition_score": transition,
        "transition_categories": float(len(categories)),
        "jaccard_score": overlap,
        "key_point_share": point_share,
        "salient_share": salient_share,
        "coverage_raw": coverage,
        "repetition_share": repetition,
        "copied_share": copied,
        "topicality_first": topicality[config.first_label],
        "topicality_second": topicality[config.second_label],
        "on_topic_sentences_first": sentence_shares[config.first_label],
        "on_topic_sentences_second": sentence_shares[config.second_label],
        "function_share_first": prose_first[1],
        "function_share_second": prose_second[1],
    }
    return RewardBreakdown(
        total=total,
        components=components,
        measurements=measurements,
        explanations=explanations,
        passed_levels=passed,
    )
