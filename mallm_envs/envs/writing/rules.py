"""Rules of collaborative writing, v1: normalisation, the reward levels and the pair score.

Pure functions (no PettingZoo, no Gymnasium, no model). A pair of texts, the source, its
key points and a :class:`RewardRules` preset in; a :class:`PairScore` out, made of small
:class:`Level` results, each with its score, the measure behind it and one sentence saying
why. The v0 reward lives on unchanged in :mod:`mallm_envs.envs.writing.rewards`.

Why v1 exists: under v0, texts with no meaning (a salad of the source's words opened by
transition phrases, function-word frames around frequent words, near-verbatim extracts
with deleted words, look-alike copies, partner copies) scored as well as honest pairs.
v1 keeps the paper's four gated levels and v0's coverage, repetition, copy, topic and prose
terms, and adds what those exploits lack:

- every measure reads the *normalised* text (:func:`normalize`): NFKC, format characters
  (zero-width, bidi controls) and combining marks removed, Cyrillic and Greek look-alike
  letters mapped to Latin; words that mixed scripts are counted (``script_factor``);
- ``novelty_factor``: share of the text's word 3-grams found in the source (catches
  extracts with deleted words, shuffled chunks and rotated clauses that dodge the 8-word
  copy check);
- ``fluency_factor``: word-order evidence. The share of a text's adjacent word pairs that
  occur somewhere in the reference corpus (every bundled document and brief) or in the
  source. English prose is mostly made of attested pairs; a shuffled salad of the source's
  own words, frames with invented words and gibberish are not;
- ``lexicon_factor``: share of words that neither the corpus nor the source knows;
- ``frame_factor``: repetition of the text's function-word skeleton (content words
  replaced by one placeholder), which frames cannot avoid;
- ``cross_copy_factor`` (both tasks): one part repeating the other in 4-word runs, or as
  the same word pairs in another order (adjacent words swapped);
- ``skeleton_factor``: the share of a part's sentence frames (function-word 6-grams) that
  are the source's own (the source with its content words swapped around);
- ``coherence_factor``: the share of neighbouring content-word pairs that also meet in one
  source sentence (source words poured into a fixed template, or shuffled);
- ``breadth_factor``: the share of the source's distinct content words the well-formed
  sentences use (a handful of key phrases in generic frames);
- the style level's transition credit is capped (full from 3 categories: honest text uses
  3-4), and in the expansion task the overlap half of style rewards *complementary* parts
  (some key terms shared, most not) instead of heavy overlap;
- ``coverage`` only counts words inside well-formed sentences (attested word order and
  enough function words), so a list of the source's frequent words collects none of it.

Every ratio is a quotient of integer counts and every threshold a fixed decimal, so the
reward is the same IEEE-754 computation on every machine: replay stays exact.

>>> from mallm_envs.envs.writing.rules import SUMMARY_RULES, score_pair
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
>>> result = score_pair(concise, detailed, source, ["blue wavelengths", "dust and smoke"], SUMMARY_RULES)
>>> result.passed_levels, round(result.total, 2)
(4, 3.58)
>>> normalize("co\\u200bpy \\u0441at").text
'copy cat'
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

from mallm_envs.envs.writing import text as T
from mallm_envs.envs.writing.rewards import TRANSITIONS, falling, rising, trapezoid
from mallm_envs.envs.writing.rewards import transition_categories as _categories

# ----------------------------------------------------------------------------- normalisation

#: Cyrillic and Greek letters that look like Latin ones (lower and upper case).
CONFUSABLES: Mapping[str, str] = {
    **dict(zip("авсдеһіјкмнорѕтухԁԛԝ", "abcdehijkmhopstyxdqw")),
    **dict(zip("АВСЕНІЈКМНОРЅТУХ", "ABCEHIJKMHOPSTYX")),
    **dict(zip("αβεικνορτυχ", "abeikvoptux")),
    **dict(zip("ΑΒΕΗΙΚΜΝΟΡΤΥΧΖ", "ABEHIKMNOPTYXZ")),
}
_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)


@dataclass(frozen=True)
class Normalized:
    """A text as every v1 measure reads it.

    Attributes:
        text: NFKC, format characters and combining marks removed, look-alikes mapped.
        removed: characters removed (format characters, combining marks, other controls).
        mixed_words: words that mixed Latin letters with Cyrillic or Greek ones.
        words: how many words the normalised text has.
    """

    text: str
    removed: int
    mixed_words: int
    words: int


_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Cs", "Co", "Cn"})
_FOREIGN_LETTER = re.compile("[\u0370-\u052f]")
_LATIN_LETTER = re.compile("[A-Za-z\u00c0-\u024f]")


class _DropTable(dict):
    """A ``str.translate`` table that drops combining marks, format characters (zero-width,
    bidi), surrogates, private-use and unassigned code points and controls other than
    newline and tab; each code point's category is looked up once per process."""

    def __missing__(self, code: int) -> int | None:
        category = unicodedata.category(chr(code))
        keep = category not in _DROPPED_CATEGORIES and (category != "Cc" or code in (9, 10))
        value = code if keep else None
        if len(self) < 1 << 16:
            self[code] = value
        return value


_DROP = _DropTable()


def normalize(text: str) -> Normalized:
    """The text every v1 measure reads (see :class:`Normalized`); linear in its length, and
    the per-character work runs in C (``str.translate`` with a memoised table).

    Latin letters are A-Z, a-z and U+00C0-U+024F; a *mixed* word holds one of them and a
    Greek or Cyrillic letter (U+0370-U+052F).

    >>> n = normalize("ﬁne caf\u00e9 \u202eevil\u202c mi\u0445ed")
    >>> n.text, n.removed, n.mixed_words
    ('fine cafe evil mixed', 3, 1)
    """
    decomposed = text if text.isascii() else unicodedata.normalize("NFKD", text)
    kept = decomposed.translate(_DROP)
    removed = len(decomposed) - len(kept)
    if kept.isascii():
        return Normalized(kept, removed, 0, len(T.words(kept)))
    composed = unicodedata.normalize("NFKC", kept)
    mixed = 0
    if _FOREIGN_LETTER.search(composed):
        mixed = sum(
            1
            for word in composed.split()
            if _FOREIGN_LETTER.search(word) and _LATIN_LETTER.search(word)
        )
    mapped = composed.translate(_CONFUSABLE_TABLE)
    return Normalized(mapped, removed, mixed, len(T.words(mapped)))


# ----------------------------------------------------------------------------- reference corpus


def word_class(word: str) -> str:
    """A word's class for the class-pair model: a function word is its own class; a content
    word is ``C`` plus its ending (``Cly``, ``Cing``, ``Ced``, ``Cs``); a number is ``#``.

    >>> [word_class(w) for w in ("the", "quickly", "baking", "baked", "bakers", "bread", "42")]
    ['the', 'Cly', 'Cing', 'Ced', 'Cs', 'C', '#']
    """
    if word in T.STOPWORDS:
        return word
    if word.isdigit():
        return "#"
    for ending in ("ly", "ing", "ed", "s"):
        if word.endswith(ending) and len(word) > len(ending) + 2:
            return "C" + ending
    return "C"


@dataclass(frozen=True)
class ReferenceCorpus:
    """What the bundled corpus says about word order (see :func:`reference_corpus`).

    Attributes:
        pairs: every adjacent word pair inside a sentence.
        vocabulary: every word.
        stems: the stem of every word.
        class_pairs: adjacent class pairs (:func:`word_class`) -> count.
        class_starts: class -> how many pairs it starts.
        class_ends: class -> how many pairs it ends.
    """

    pairs: frozenset[tuple[str, str]]
    vocabulary: frozenset[str]
    stems: frozenset[str]
    class_pairs: Mapping[tuple[str, str], int]
    class_starts: Mapping[str, int]
    class_ends: Mapping[str, int]


@lru_cache(maxsize=1)
def reference_corpus() -> ReferenceCorpus:
    """The reference corpus of the v1 fluency and lexicon checks: every summary document and
    expansion brief of ``mallm_envs/data/writing`` (all splits, titles included), read once
    per process.

    It is part of the v1 reward: changing the bundled corpus changes v1 scores, so it needs
    a new version, like any other data change.
    """
    import json

    pairs: set[tuple[str, str]] = set()
    vocabulary: set[str] = set()
    class_pairs: Counter = Counter()
    class_starts: Counter = Counter()
    class_ends: Counter = Counter()
    folder = resources.files("mallm_envs").joinpath("data", "writing")
    for name, field in (("summary_docs.jsonl", "text"), ("expansion_briefs.jsonl", "abstract")):
        for line in folder.joinpath(name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            for piece in (record.get("title", ""), record.get(field, "")):
                for sentence in T.sentences(piece):
                    words = T.words(sentence)
                    vocabulary.update(words)
                    pairs.update(itertools.pairwise(words))
                    classes = [word_class(w) for w in words]
                    class_pairs.update(itertools.pairwise(classes))
                    class_starts.update(classes[:-1])
                    class_ends.update(classes[1:])
    return ReferenceCorpus(
        frozenset(pairs),
        frozenset(vocabulary),
        frozenset(T.stem(w) for w in vocabulary),
        dict(class_pairs),
        dict(class_starts),
        dict(class_ends),
    )


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class RewardRules:
    """Every threshold of the v1 reward. :data:`SUMMARY_RULES` and :data:`EXPANSION_RULES`
    are the two presets; the v0 thresholds they keep are those of
    :class:`mallm_envs.envs.writing.rewards.PairRewardConfig`."""

    first_label: str = "concise"
    second_label: str = "detailed"
    min_tokens: int = 8
    max_tokens: int = 256
    length_window: tuple[float, float, float, float] = (1.1, 1.6, 3.2, 5.0)
    vocabulary_window: tuple[float, float, float, float] = (1.3, 2.0, float("inf"), float("inf"))
    transitions_in: Literal["second", "both"] = "second"
    transition_full: int = 3
    """Transition categories that earn the full transition credit (more earn nothing more)."""
    fit: Literal["shared_terms", "complementary"] = "shared_terms"
    """The overlap half of style: shared key terms (summary) or complementary parts."""
    jaccard_cap: float = 0.03
    """shared_terms: content-word Jaccard overlap that earns full credit."""
    complementary_window: tuple[float, float, float, float] = (0.02, 0.08, 0.45, 0.7)
    """complementary: share of the smaller part's content stems also in the other part."""
    salient_words: int = 12
    repetition_free: float = 0.08
    repetition_full: float = 0.4
    copy_ngram: int = 8
    copy_free: float = 0.2
    copy_full: float = 0.7
    novelty_free: float = 0.38
    """Share of a part's word 3-grams found in the source that costs nothing."""
    novelty_full: float = 0.6
    """Share of a part's word 3-grams found in the source at which the factor is 0."""
    fluency_zero: float = 0.72
    """Share of plausible word pairs (:func:`pair_counts`) at which the fluency factor is 0."""
    fluency_full: float = 0.85
    """Share of plausible word pairs from which the fluency factor is 1."""
    class_min_count: int = 3
    """A class pair is plausible from this many occurrences in the corpus ..."""
    class_share: int = 100
    """... and makes at least 1/class_share of the pairs its first class starts (or its
    second class ends)."""
    sentence_fluency: float = 0.6
    """A sentence is well-formed (counts for coverage) from this share of attested pairs."""
    sentence_function_share: float = 0.2
    """... and this share of function words."""
    lexicon_free: float = 0.08
    """Share of words unknown to the corpus and the source that costs nothing."""
    lexicon_full: float = 0.2
    frame_ngram: int = 5
    """Skeleton n-gram size for the frame check (content words are one placeholder)."""
    frame_free: float = 0.12
    frame_full: float = 0.3
    cross_ngram: int = 4
    cross_free: float = 0.45
    """Share of one part repeating the other (4-word runs or reordered word pairs), free
    (a concise summary shares many key terms with the detailed one)."""
    cross_full: float = 0.8
    skeleton_free: float = 0.35
    """Share of a part's skeleton 6-grams found in the source that costs nothing ..."""
    skeleton_full: float = 0.6
    """... and at which the skeleton factor is 0 (the source's frames refilled)."""
    coherence_zero: float = 0.4
    """Share of coherent neighbouring content-word pairs (:func:`coherence_counts`) at (or
    below) which the coherence factor is 0 ..."""
    coherence_full: float = 0.55
    """... and from which it is 1."""
    breadth_zero: float = 0.05
    """Share of the source's distinct content stems that the pair's well-formed sentences
    use, at (or below) which the breadth factor is 0 ..."""
    breadth_full: float = 0.2
    """... and from which it is 1 (a handful of key phrases in generic frames says little)."""
    script_free: float = 0.0
    """Share of mixed-script words that costs nothing."""
    script_full: float = 0.05
    topic_zero: float = 0.15
    topic_full: float = 0.4
    topic_sentence_zero: float = 0.3
    """Share of a part's words in on-topic sentences at which the topic factor is 0 (v0:
    0.5; v0's light stemmer misses plural forms, so honest summaries fell under it)."""
    topic_sentence_full: float = 0.6
    """... and from which it is 1 (v0: 0.85)."""
    prose_function_zero: float = 0.08
    prose_function_full: float = 0.22
    prose_sentence_full: float = 45.0
    prose_sentence_zero: float = 90.0

    @property
    def max_total(self) -> float:
        """The largest total these rules can give."""
        return MAX_TOTAL

    def __post_init__(self) -> None:
        problems = []
        for low, high in (
            ("repetition_free", "repetition_full"),
            ("copy_free", "copy_full"),
            ("novelty_free", "novelty_full"),
            ("fluency_zero", "fluency_full"),
            ("lexicon_free", "lexicon_full"),
            ("frame_free", "frame_full"),
            ("cross_free", "cross_full"),
            ("script_free", "script_full"),
            ("breadth_zero", "breadth_full"),
            ("skeleton_free", "skeleton_full"),
            ("coherence_zero", "coherence_full"),
            ("topic_zero", "topic_full"),
            ("topic_sentence_zero", "topic_sentence_full"),
            ("prose_function_zero", "prose_function_full"),
            ("prose_sentence_full", "prose_sentence_zero"),
        ):
            if not getattr(self, low) < getattr(self, high):
                problems.append(f"need {low} < {high}")
        for name in ("length_window", "vocabulary_window", "complementary_window"):
            window = getattr(self, name)
            if len(window) != 4 or list(window) != sorted(window):
                problems.append(f"{name} must be four non-decreasing numbers")
        if not 0 <= self.min_tokens <= self.max_tokens:
            problems.append("need 0 <= min_tokens <= max_tokens")
        if self.transition_full < 1 or self.frame_ngram < 2 or self.cross_ngram < 2:
            problems.append("transition_full >= 1, frame_ngram >= 2 and cross_ngram >= 2")
        if problems:
            raise ValueError("invalid RewardRules: " + "; ".join(problems))


MAX_TOTAL = 4.0
STRUCTURE, LENGTH, VOCABULARY, STYLE, COVERAGE = 0.5, 1.0, 0.5, 1.0, 1.0

#: Summary pair: concise then detailed (v0's levels and windows).
SUMMARY_RULES = RewardRules()

#: Expansion pair: background then method (v0's levels and windows; complementary style).
EXPANSION_RULES = RewardRules(
    first_label="background",
    second_label="method",
    min_tokens=128,
    max_tokens=256,
    length_window=(0.8, 1.0, 1.3, 1.5),
    vocabulary_window=(0.5, 0.7, 1.3, 1.7),
    transitions_in="both",
    fit="complementary",
    cross_free=0.25,
    cross_full=0.6,
    breadth_zero=0.4,
    breadth_full=0.65,
    coherence_zero=0.5,
    coherence_full=0.65,
    topic_zero=0.08,
    topic_full=0.25,
    topic_sentence_zero=0.15,
    topic_sentence_full=0.4,
    novelty_free=0.42,
    novelty_full=0.62,
)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Level:
    """One component of the reward: its score, the measure behind it and why."""

    name: str
    score: float
    measure: float
    reason: str


@dataclass(frozen=True)
class PairScore:
    """The v1 reward of one pair, explained (the env reports every level in infos)."""

    total: float
    levels: tuple[Level, ...]
    passed_levels: int
    measurements: Mapping[str, float]

    @property
    def components(self) -> dict[str, float]:
        return {level.name: level.score for level in self.levels}

    @property
    def explanations(self) -> dict[str, str]:
        return {level.name: level.reason for level in self.levels}

    def summary_lines(self) -> list[str]:
        """One line per component, ``name = value: explanation``."""
        return [f"{lv.name} = {lv.score:.3f}: {lv.reason}" for lv in self.levels]


# ----------------------------------------------------------------------------- measures

_stem = lru_cache(maxsize=1 << 16)(T.stem)
_TOKEN = re.compile(r"\S+")


def content_stems(text: str) -> list[str]:
    """:func:`mallm_envs.envs.writing.text.content_stems`, with the stems memoised."""
    return [_stem(w) for w in T.content_words(text)]


def cut_tokens(text: str, limit: int) -> str:
    """``text`` up to the end of its ``limit``-th whitespace token (layout kept).

    >>> cut_tokens("a b\\n\\nc d", 3)
    'a b\\n\\nc'
    """
    end = None
    for count, match in enumerate(_TOKEN.finditer(text), start=1):
        if count == limit:
            end = match.end()
            break
    return text if end is None else text[:end]


@dataclass(frozen=True)
class SourceProfile:
    """What the measures need from a source, computed once per source text."""

    text: str
    words: tuple[str, ...]
    pairs: frozenset[tuple[str, str]]
    trigrams: frozenset[tuple[str, ...]]
    stems: frozenset[str]
    subject: frozenset[str]
    salient: tuple[str, ...]
    stem_sentences: Mapping[str, frozenset[int]]
    skeletons: frozenset[tuple[str, ...]]


@lru_cache(maxsize=64)
def source_profile(source: str, salient_words: int) -> SourceProfile:
    """The :class:`SourceProfile` of ``source`` (normalised first)."""
    text = normalize(source).text
    words = T.words(text)
    pairs: set[tuple[str, str]] = set()
    for sentence in T.sentences(text):
        sentence_words = T.words(sentence)
        pairs.update(itertools.pairwise(sentence_words))
    stems = content_stems(text)
    counts = Counter(stems)
    title = text.strip().split("\n", 1)[0]
    subject = {s for s in stems if counts[s] >= 2} | set(content_stems(title))
    first_use: dict[str, int] = {}
    for index, stem in enumerate(stems):
        first_use.setdefault(stem, index)
    salient = sorted(counts, key=lambda s: (-counts[s], first_use[s]))[:salient_words]
    stem_sentences: dict[str, set[int]] = {}
    for index, sentence in enumerate(T.sentences(text)):
        for stem in content_stems(sentence):
            stem_sentences.setdefault(stem, set()).add(index)
    return SourceProfile(
        text,
        tuple(words),
        frozenset(pairs),
        frozenset(_ngrams(words, 3)),
        frozenset(stems),
        frozenset(subject),
        tuple(salient),
        {stem: frozenset(where) for stem, where in stem_sentences.items()},
        frozenset(skeleton_grams(words, SKELETON_NGRAM)),
    )


SKELETON_NGRAM = 6
"""Length of the skeleton n-grams compared with the source's (:func:`skeleton_grams`)."""


def skeleton_grams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The ``n``-grams of the text's skeleton (function words kept, each content word one
    ``_``) that hold at least three function words: the sentence frames of a text.

    >>> skeleton_grams("the cat sat on the mat and the dog".split(), 6)[0]
    ('the', '_', '_', 'on', 'the', '_')
    """
    skeleton = [w if w in T.STOPWORDS else "_" for w in words]
    return [g for g in _ngrams(skeleton, n) if sum(1 for w in g if w != "_") >= 3]


def skeleton_share(words: Sequence[str], profile: SourceProfile) -> float:
    """Share of the text's skeleton n-grams that the source has too (0 without any): the
    source's own sentences with other words poured into them."""
    grams = skeleton_grams(words, SKELETON_NGRAM)
    if not grams:
        return 0.0
    return sum(1 for g in grams if g in profile.skeletons) / len(grams)


def coherence_counts(text: str, profile: SourceProfile) -> tuple[int, int]:
    """(coherent, judged) pairs of neighbouring content words.

    Within each sentence of ``text``, each content word and the next one (function words
    skipped) form a pair when both stems occur in the source and differ; it is *coherent*
    when some source sentence holds both. Facts retold keep the words that belong together
    together; source words poured into a fixed template or shuffled do not.

    >>> p = source_profile("Bees dance to show food. Rivers flood in spring.", 12)
    >>> coherence_counts("Bees show food by dancing. Spring bees flood.", p)
    (3, 5)
    """
    judged = coherent = 0
    for sentence in T.sentences(text):
        stems = [s for s in content_stems(sentence) if s in profile.stem_sentences]
        for first, second in itertools.pairwise(stems):
            if first == second:
                continue
            judged += 1
            if profile.stem_sentences[first] & profile.stem_sentences[second]:
                coherent += 1
    return coherent, judged


def topicality(text: str, profile: SourceProfile) -> tuple[float, float]:
    """v0's two topic measures (share of content words whose stem the source has; share
    of words in on-topic sentences, :func:`mallm_envs.envs.writing.rewards.on_topic_sentence_share`)
    with memoised stems."""
    stems = content_stems(text)
    closeness = sum(1 for s in stems if s in profile.stems) / len(stems) if stems else 0.0
    total = on_topic = 0
    for sentence in T.sentences(text):
        size = len(T.words(sentence))
        sentence_stems = content_stems(sentence)
        hits = sum(1 for s in sentence_stems if s in profile.stems)
        total += size
        if hits >= 0.2 * len(sentence_stems) and any(s in profile.subject for s in sentence_stems):
            on_topic += size
    return closeness, (on_topic / total if total else 0.0)


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def source_ngram_share(
    words: Sequence[str], source_words: Sequence[str] | frozenset[tuple[str, ...]], n: int = 3
) -> float:
    """Share of the ``n``-grams of ``words`` that the source also has (0 without any).

    >>> source_ngram_share("the cat sat on a mat".split(), "the cat sat on the mat".split())
    0.5
    """
    grams = _ngrams(words, n)
    if not grams:
        return 0.0
    known = source_words if isinstance(source_words, frozenset) else set(_ngrams(source_words, n))
    return sum(1 for g in grams if g in known) / len(grams)


def pair_counts(
    text: str, source_pairs: set[tuple[str, str]], rules: RewardRules
) -> tuple[int, int]:
    """(plausible pairs, judged pairs) among the adjacent word pairs inside the sentences of
    ``text``. Pairs of two content words or with a number are not judged (the corpus is too
    small to know them). A judged pair is plausible when the corpus or the source has it,
    or when its class pair (:func:`word_class`) occurs at least ``class_min_count`` times in
    the corpus and makes at least 1/``class_share`` of the pairs its first class starts or
    of the pairs its second class ends.
    Integer comparisons only."""
    corpus = reference_corpus()
    judged = plausible = 0
    for sentence in T.sentences(text):
        words = T.words(sentence)
        for first, second in itertools.pairwise(words):
            a, b = word_class(first), word_class(second)
            if (a[0] == "C" and b[0] == "C") or "#" in (a, b):
                continue
            judged += 1
            if (first, second) in corpus.pairs or (first, second) in source_pairs:
                plausible += 1
                continue
            count = corpus.class_pairs.get((a, b), 0)
            if count >= rules.class_min_count and (
                count * rules.class_share >= corpus.class_starts.get(a, 0)
                or count * rules.class_share >= corpus.class_ends.get(b, 0)
            ):
                plausible += 1
    return plausible, judged


def unknown_word_share(words: Sequence[str], profile: SourceProfile) -> float:
    """Share of alphabetic words longer than two letters that neither the corpus nor the
    source knows (their stems compared too)."""
    corpus = reference_corpus()
    vocabulary = corpus.vocabulary
    known = set(profile.words)
    checked = [w for w in words if len(w) > 2 and w.isalpha()]
    if not checked:
        return 0.0
    unknown = sum(
        1
        for w in checked
        if w not in vocabulary
        and w not in known
        and _stem(w) not in corpus.stems
        and _stem(w) not in profile.stems
    )
    return unknown / len(checked)


def skeleton_repetition(words: Sequence[str], n: int) -> float:
    """Share of the text's skeleton ``n``-grams seen earlier in it; the skeleton keeps
    function words and turns every run of content words into one placeholder.

    >>> skeleton_repetition("the cat of the dog is in the box and the hat of the pen is in the cup".split(), 5)
    0.3333333333333333
    """
    skeleton: list[str] = []
    for word in words:
        if word in T.STOPWORDS:
            skeleton.append(word)
        elif not skeleton or skeleton[-1] != "_":
            skeleton.append("_")
    return T.repeated_ngram_share(skeleton, n)


def cross_copy_share(first: Sequence[str], second: Sequence[str], n: int) -> float:
    """How much one part repeats the other: the larger of (a) the share of the shorter
    part's words inside ``n``-word runs of the longer and (b) the share of the shorter
    part's adjacent content-word pairs that appear, in either order, within three content
    words of each other in the longer part (adjacent-word swaps, small reorderings).

    >>> cross_copy_share("alpha beta gamma delta epsilon".split(), "beta alpha delta gamma epsilon zeta".split(), 4)
    1.0
    """
    short, long = (first, second) if len(first) <= len(second) else (second, first)
    if len(short) < 2:
        return 0.0
    runs = T.shared_ngram_share(short, long, n)
    short_content = [w for w in short if T.is_content_word(w)]
    long_content = [w for w in long if T.is_content_word(w)]
    near: set[frozenset[str]] = set()
    for i, word in enumerate(long_content):
        for other in long_content[i + 1 : i + 4]:
            near.add(frozenset((word, other)))
    pairs = list(itertools.pairwise(short_content))
    reordered = sum(1 for a, b in pairs if frozenset((a, b)) in near) / len(pairs) if pairs else 0.0
    return max(runs, reordered)


def well_formed_text(text: str, source_pairs: set[tuple[str, str]], rules: RewardRules) -> str:
    """The sentences of ``text`` that read as prose: at least four words, a share of
    plausible word pairs of ``sentence_fluency`` and of function words of
    ``sentence_function_share`` (coverage only counts these)."""
    kept = []
    for sentence in T.sentences(text):
        words = T.words(sentence)
        if len(words) < 4:
            continue
        plausible, judged = pair_counts(sentence, source_pairs, rules)
        function = sum(1 for w in words if w in T.STOPWORDS)
        if (
            plausible >= rules.sentence_fluency * judged
            and function >= rules.sentence_function_share * len(words)
        ):
            kept.append(sentence)
    return "\n".join(kept)


# ----------------------------------------------------------------------------- levels


def structure_level(first: str, second: str, rules: RewardRules) -> Level:
    counts = (len(T.tokens(first)), len(T.tokens(second)))
    ok = all(rules.min_tokens <= c <= rules.max_tokens for c in counts)
    return Level(
        "structure",
        STRUCTURE if ok else 0.0,
        float(min(counts)),
        f"{rules.first_label} has {counts[0]} words, {rules.second_label} {counts[1]}; "
        f"each needs {rules.min_tokens}-{rules.max_tokens}",
    )


def length_level(first: str, second: str, rules: RewardRules) -> Level:
    a, b = len(T.normalized(first)), len(T.normalized(second))
    ratio = b / a if a else 0.0
    z0, f0, f1, z1 = rules.length_window
    return Level(
        "length_ratio",
        LENGTH * trapezoid(ratio, z0, f0, f1, z1) if a else 0.0,
        ratio,
        f"{rules.second_label}/{rules.first_label} length {ratio:.2f}x ({b}/{a} characters "
        f"after normalising); full for {f0}-{f1}x, none below {z0}x or above {z1}x",
    )


def vocabulary_level(first: str, second: str, rules: RewardRules) -> Level:
    a, b = len(set(T.content_words(first))), len(set(T.content_words(second)))
    ratio = b / a if a else 0.0
    z0, f0, f1, z1 = rules.vocabulary_window
    return Level(
        "vocabulary",
        VOCABULARY * trapezoid(ratio, z0, f0, f1, z1) if a else 0.0,
        ratio,
        f"{rules.second_label} uses {b} distinct content words, {rules.first_label} {a} "
        f"(ratio {ratio:.2f}); full from {f0}" + ("" if f1 == float("inf") else f"-{f1}"),
    )


def style_level(first: str, second: str, rules: RewardRules) -> Level:
    """0.4 x capped transition credit + 0.6 x fit (shared terms or complementary parts)."""
    where = second if rules.transitions_in == "second" else first + "\n" + second
    categories = _categories(where)
    transition = min(1.0, len(categories) / rules.transition_full)
    a, b = set(content_stems(first)), set(content_stems(second))
    if rules.fit == "shared_terms":
        union = a | b
        overlap = len(a & b) / len(union) if union else 0.0
        fit = min(overlap, rules.jaccard_cap) / rules.jaccard_cap
        fit_note = f"content-word overlap {overlap:.3f} (full from {rules.jaccard_cap})"
    else:
        smaller = min(len(a), len(b))
        overlap = len(a & b) / smaller if smaller else 0.0
        fit = trapezoid(overlap, *rules.complementary_window)
        z0, f0, f1, z1 = rules.complementary_window
        fit_note = (
            f"{overlap:.0%} of the smaller part's content words shared (complementary parts "
            f"share {f0:.0%}-{f1:.0%}; none below {z0:.0%} or from {z1:.0%})"
        )
    place = rules.second_label if rules.transitions_in == "second" else "both parts"
    return Level(
        "style",
        STYLE * (0.4 * transition + 0.6 * fit),
        overlap,
        f"{len(categories)} of {len(TRANSITIONS)} transition categories in {place} "
        f"(full credit from {rules.transition_full}, no more for more); {fit_note}",
    )


def coverage_level(
    pair_text: str,
    profile: SourceProfile,
    key_points: Sequence[str],
    rules: RewardRules,
    counted: bool,
) -> Level:
    """v0's coverage (key points and salient stems), counted in well-formed sentences only."""
    present = set(content_stems(pair_text))
    shares = []
    for point in key_points:
        stems = set(content_stems(point))
        if stems:
            shares.append(len(stems & present) / len(stems))
    salient = profile.salient
    salient_share = sum(1 for s in salient if s in present) / len(salient) if salient else 0.0
    point_share = sum(shares) / len(shares) if shares else salient_share
    raw = 0.5 * point_share + 0.5 * salient_share if shares else salient_share
    note = "" if counted else "; not added because the structure level failed"
    return Level(
        "coverage",
        COVERAGE * raw if counted else 0.0,
        raw,
        f"in well-formed sentences only: key points {point_share:.0%} covered, "
        f"{salient_share:.0%} of the source's {len(salient)} most frequent content words{note}",
    )


# ----------------------------------------------------------------------------- pair score


def score_pair(
    first: str, second: str, source: str, key_points: Sequence[str], rules: RewardRules
) -> PairScore:
    """The v1 team reward of a pair (see the module docstring and the env page).

    ``total = integrity x (gated + coverage)``, ``gated`` = the paper's four levels (a level
    scoring 0 stops the sum), ``integrity`` = the product of the factors (each 0-1).
    """
    raw_first, raw_second = normalize(first), normalize(second)
    structure = structure_level(raw_first.text, raw_second.text, rules)
    # A part longer than max_tokens scores 0 whatever else it does (structure fails), so the
    # other measures read at most max_tokens + 1 tokens: a huge text costs no more than a
    # pair of the longest allowed parts.
    limit = rules.max_tokens + 1
    a, b = cut_tokens(raw_first.text, limit), cut_tokens(raw_second.text, limit)
    profile = source_profile(source, rules.salient_words)
    source_words = list(profile.words)
    source_pairs = profile.pairs
    words_a, words_b = T.words(a), T.words(b)
    labels = (rules.first_label, rules.second_label)

    length = length_level(a, b, rules)
    vocabulary = vocabulary_level(a, b, rules)
    style = style_level(a, b, rules)
    gated = passed = 0
    for level in (structure, length, vocabulary):
        if level.score <= 0.0:
            break
        gated += level.score
        passed += 1
    if passed == 3:
        gated += style.score
        passed = 4
    gate_note = (
        "structure failed, so nothing is added",
        "length ratio failed, so only structure counts",
        "vocabulary failed, so style does not count",
        "all levels counted",
        "all levels counted",
    )[passed]

    covered_text = (
        well_formed_text(a, source_pairs, rules) + "\n" + well_formed_text(b, source_pairs, rules)
    )
    coverage = coverage_level(covered_text, profile, key_points, rules, structure.score > 0)

    def worst(values: tuple[float, float]) -> tuple[float, str]:
        index = 0 if values[0] >= values[1] else 1
        return values[index], labels[index]

    def least(values: tuple[float, float]) -> tuple[float, str]:
        index = 0 if values[0] <= values[1] else 1
        return values[index], labels[index]

    repetition, rep_where = worst(
        (T.repeated_ngram_share(words_a, 3), T.repeated_ngram_share(words_b, 3))
    )
    total_words = len(words_a) + len(words_b)
    copied = (
        (
            T.shared_ngram_share(words_a, source_words, rules.copy_ngram) * len(words_a)
            + T.shared_ngram_share(words_b, source_words, rules.copy_ngram) * len(words_b)
        )
        / total_words
        if total_words
        else 0.0
    )
    novelty, nov_where = worst(
        (
            source_ngram_share(words_a, profile.trigrams),
            source_ngram_share(words_b, profile.trigrams),
        )
    )
    plausible_a, judged_a = pair_counts(a, source_pairs, rules)
    plausible_b, judged_b = pair_counts(b, source_pairs, rules)
    judged = judged_a + judged_b
    fluency = (plausible_a + plausible_b) / judged if judged else 0.0
    unknown, unk_where = worst(
        (unknown_word_share(words_a, profile), unknown_word_share(words_b, profile))
    )
    frames, frame_where = worst(
        (
            skeleton_repetition(words_a, rules.frame_ngram),
            skeleton_repetition(words_b, rules.frame_ngram),
        )
    )
    cross = cross_copy_share(words_a, words_b, rules.cross_ngram)
    skeleton, skeleton_where = worst(
        (skeleton_share(words_a, profile), skeleton_share(words_b, profile))
    )
    coherent_a, judged_a = coherence_counts(a, profile)
    coherent_b, judged_b = coherence_counts(b, profile)
    judged_content = judged_a + judged_b
    coherence = (coherent_a + coherent_b) / judged_content if judged_content else 0.0
    used = set(content_stems(covered_text)) & profile.stems
    breadth = len(used) / len(profile.stems) if profile.stems else 0.0
    all_words = raw_first.words + raw_second.words
    mixed = (raw_first.mixed_words + raw_second.mixed_words) / all_words if all_words else 0.0
    topic_parts = []
    for piece in (a, b):
        closeness, sentence_share = topicality(piece, profile)
        topic_parts.append(
            (
                min(
                    rising(closeness, rules.topic_zero, rules.topic_full),
                    rising(sentence_share, rules.topic_sentence_zero, rules.topic_sentence_full),
                ),
                closeness,
                sentence_share,
            )
        )
    topic_index = 0 if topic_parts[0][0] <= topic_parts[1][0] else 1
    topic, closeness, sentence_share = topic_parts[topic_index]
    prose_parts = []
    for piece in (a, b):
        share = T.function_word_share(piece)
        mean_length = T.mean_sentence_words(piece)
        prose_parts.append(
            (
                min(
                    rising(share, rules.prose_function_zero, rules.prose_function_full),
                    falling(mean_length, rules.prose_sentence_full, rules.prose_sentence_zero),
                ),
                share,
                mean_length,
            )
        )
    prose = min(prose_parts[0][0], prose_parts[1][0])

    factors = (
        Level(
            "repetition_factor",
            falling(repetition, rules.repetition_free, rules.repetition_full),
            repetition,
            f"worst part ({rep_where}) repeats {repetition:.0%} of its word trigrams; free up "
            f"to {rules.repetition_free:.0%}, all lost at {rules.repetition_full:.0%}",
        ),
        Level(
            "copy_factor",
            falling(copied, rules.copy_free, rules.copy_full),
            copied,
            f"{copied:.0%} of the words sit in {rules.copy_ngram}-word runs copied from the "
            f"source; free up to {rules.copy_free:.0%}, all lost at {rules.copy_full:.0%}",
        ),
        Level(
            "novelty_factor",
            falling(novelty, rules.novelty_free, rules.novelty_full),
            novelty,
            f"{novelty:.0%} of the word trigrams of the {nov_where} part occur in the source "
            f"(near-verbatim text); free up to {rules.novelty_free:.0%}, all lost at "
            f"{rules.novelty_full:.0%}",
        ),
        Level(
            "fluency_factor",
            rising(fluency, rules.fluency_zero, rules.fluency_full),
            fluency,
            f"{fluency:.0%} of the pair's judged adjacent word pairs are plausible English word "
            f"order (seen in the reference corpus or the source, or a common class pair); 0 at "
            f"{rules.fluency_zero:.0%}, full from {rules.fluency_full:.0%}",
        ),
        Level(
            "lexicon_factor",
            falling(unknown, rules.lexicon_free, rules.lexicon_full),
            unknown,
            f"{unknown:.0%} of the words of the {unk_where} part are unknown to the corpus and "
            f"the source; free up to {rules.lexicon_free:.0%}, all lost at "
            f"{rules.lexicon_full:.0%}",
        ),
        Level(
            "frame_factor",
            falling(frames, rules.frame_free, rules.frame_full),
            frames,
            f"the {frame_where} part repeats {frames:.0%} of its function-word skeleton "
            f"{rules.frame_ngram}-grams (fill-in frames); free up to {rules.frame_free:.0%}, "
            f"all lost at {rules.frame_full:.0%}",
        ),
        Level(
            "cross_copy_factor",
            falling(cross, rules.cross_free, rules.cross_full),
            cross,
            f"one part repeats {cross:.0%} of the other (in {rules.cross_ngram}-word runs or "
            f"as the same word pairs reordered); free up to {rules.cross_free:.0%}, all lost "
            f"at {rules.cross_full:.0%}",
        ),
        Level(
            "skeleton_factor",
            falling(skeleton, rules.skeleton_free, rules.skeleton_full),
            skeleton,
            f"{skeleton:.0%} of the {skeleton_where} part's sentence frames (function-word "
            f"{SKELETON_NGRAM}-grams) are the source's own (its sentences with the words "
            f"swapped); free up to {rules.skeleton_free:.0%}, all lost at "
            f"{rules.skeleton_full:.0%}",
        ),
        Level(
            "coherence_factor",
            rising(coherence, rules.coherence_zero, rules.coherence_full),
            coherence,
            f"{coherence:.0%} of {judged_content} neighbouring content-word pairs also meet in "
            f"a sentence of the source (facts kept together); 0 at {rules.coherence_zero:.0%}, "
            f"full from {rules.coherence_full:.0%}",
        ),
        Level(
            "breadth_factor",
            rising(breadth, rules.breadth_zero, rules.breadth_full),
            breadth,
            f"the well-formed sentences use {len(used)} of the source's {len(profile.stems)} "
            f"distinct content words ({breadth:.0%}); 0 at {rules.breadth_zero:.0%}, full from "
            f"{rules.breadth_full:.0%}",
        ),
        Level(
            "script_factor",
            falling(mixed, rules.script_free, rules.script_full),
            mixed,
            f"{raw_first.mixed_words + raw_second.mixed_words} words mix Latin with Cyrillic or "
            f"Greek letters ({mixed:.1%}); all lost at {rules.script_full:.0%}; "
            f"{raw_first.removed + raw_second.removed} invisible or combining characters "
            "ignored before measuring",
        ),
        Level(
            "topic_factor",
            topic,
            closeness,
            f"least on-topic part ({labels[topic_index]}): {closeness:.2f} of its content "
            f"words in the source (0 at {rules.topic_zero}, full from {rules.topic_full}), "
            f"{sentence_share:.0%} of its words in on-topic sentences (0 at "
            f"{rules.topic_sentence_zero:.0%}, full from {rules.topic_sentence_full:.0%})",
        ),
        Level(
            "prose_factor",
            prose,
            min(prose_parts[0][1], prose_parts[1][1]),
            f"function words {prose_parts[0][1]:.0%} / {prose_parts[1][1]:.0%} (full from "
            f"{rules.prose_function_full:.0%}), words per sentence {prose_parts[0][2]:.0f} / "
            f"{prose_parts[1][2]:.0f} (full up to {rules.prose_sentence_full:g})",
        ),
    )
    integrity = 1.0
    for factor in factors:
        integrity *= factor.score
    total = integrity * (gated + coverage.score)
    levels = (
        structure,
        length,
        vocabulary,
        style,
        Level(
            "gated",
            gated,
            float(passed),
            f"paper levels, {passed} of 4 counted ({gate_note}); max 3",
        ),
        coverage,
        *factors,
        Level("integrity", integrity, integrity, "product of the factors; it scales everything"),
        Level("total", total, total, f"integrity x (gated + coverage); max {MAX_TOTAL:g}"),
    )
    measurements = {
        "first_tokens": float(len(T.tokens(a))),
        "second_tokens": float(len(T.tokens(b))),
        "removed_characters": float(raw_first.removed + raw_second.removed),
        "mixed_script_words": float(raw_first.mixed_words + raw_second.mixed_words),
        **{f"{level.name}_measure": level.measure for level in levels},
    }
    return PairScore(total, levels, passed, measurements)


def component_counts(scores: Iterable[PairScore]) -> Counter:
    """How often each factor was below 1 (a diagnostic for tests and reports)."""
    counts: Counter = Counter()
    for score in scores:
        for level in score.levels:
            if level.name.endswith("_factor") and level.score < 1.0:
                counts[level.name] += 1
    return counts
