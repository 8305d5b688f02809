"""Word-level text analysis shared by the writing rewards, parsers and scripted writers.

Pure functions, no dependencies beyond the standard library. Words are runs of Unicode
letters and digits (an inner apostrophe is kept: ``don't``), lower-cased. Tokens, as the
paper counts them, are whitespace-separated pieces.

>>> words("Light's path, at sunset, is LONGER.")
["light's", 'path', 'at', 'sunset', 'is', 'longer']
>>> content_words("The blue light is scattered by the air.")
['blue', 'light', 'scattered', 'air']
>>> [stem(w) for w in ["studies", "scattered", "running", "falling", "phases", "phase"]]
['study', 'scatter', 'run', 'fall', 'phas', 'phas']
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*[-*•]|\s*\d+[.)]\s)")

#: English function words: never counted as content words (vocabulary, Jaccard, coverage,
#: topicality), and their share of a text tells prose from a keyword list.
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did didn't
    do does doesn't doing don't down during each either else even ever every few for from
    further had hadn't has hasn't have haven't having he he'd he'll he's her here here's
    hers herself him himself his how how's however i i'd i'll i'm i've if in into is isn't
    it it's its itself just let's may me might more most much must mustn't my myself neither
    no nor not now of off often on once one only or other others ought our ours ourselves
    out over own per quite rather same shall shan't she she'd she'll she's should shouldn't
    so some such than that that's the their theirs them themselves then there there's these
    they they'd they'll they're they've this those though through thus to too under until
    up upon us very was wasn't we we'd we'll we're we've were weren't what what's when
    when's where where's whether which while who who's whom whose why why's will with within
    without won't would wouldn't yet you you'd you'll you're you've your yours yourself
    yourselves also many several still already almost enough
    """.split()  # noqa: SIM905 (a long word list reads best as text)
)


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (letters and digits; inner apostrophes kept)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def tokens(text: str) -> list[str]:
    """Whitespace-separated tokens, as the paper counts length."""
    return text.split()


def normalized(text: str) -> str:
    """``text`` with every run of whitespace collapsed to one space and the ends stripped.

    >>> normalized("  a \\n\\n b\\t c  ")
    'a b c'
    """
    return " ".join(text.split())


def is_content_word(word: str) -> bool:
    """A word that carries content: not a function word, and not a single letter."""
    return word not in STOPWORDS and (len(word) > 1 or word.isdigit())


def content_words(text: str) -> list[str]:
    """The content words of ``text``, in order (see :func:`is_content_word`)."""
    return [w for w in words(text) if is_content_word(w)]


def stem(word: str) -> str:
    """A light English stem: strips plural, ``-ing``, ``-ed`` and ``-ly`` endings and a final e.

    Good enough to match "scattering" with "scattered" and "wavelengths" with
    "wavelength"; it is not a linguistic stemmer.
    """
    word = word.removesuffix("'s").removesuffix("'")
    base = word
    for suffix, replacement in (
        ("ies", "y"),
        ("ied", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("edly", ""),
        ("ed", ""),
        ("ly", ""),
        ("es", "e"),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            base = word[: -len(suffix)] + replacement
            if suffix in ("ing", "ed", "edly") and (
                len(base) >= 3 and base[-1] == base[-2] and base[-1] not in "aeiouslz"
            ):
                base = base[:-1]
            break
    if len(base) > 3 and base.endswith("e"):
        base = base[:-1]
    return base


def content_stems(text: str) -> list[str]:
    """Stems of the content words of ``text``, in order."""
    return [stem(w) for w in content_words(text)]


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (full stops, question and exclamation marks, blank lines,
    list items); empty pieces are dropped.

    >>> sentences("One. Two? Three!\\n\\n- four\\n- five")
    ['One.', 'Two?', 'Three!', '- four', '- five']
    """
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece and piece.strip()]


def ngrams(items: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The ``n``-grams of ``items``, in order (none when there are fewer than ``n`` items)."""
    return [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]


def repeated_ngram_share(items: Sequence[str], n: int) -> float:
    """Share of the ``n``-grams of ``items`` that already occurred earlier in ``items``.

    >>> repeated_ngram_share("a b c a b c a b c".split(), 3)
    0.5714285714285714
    >>> repeated_ngram_share("the cat sat on the mat".split(), 3)
    0.0
    """
    grams = ngrams(items, n)
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for gram in grams:
        if gram in seen:
            repeats += 1
        seen.add(gram)
    return repeats / len(grams)


def shared_ngram_share(items: Sequence[str], reference: Sequence[str], n: int) -> float:
    """Share of ``items`` that lie inside an ``n``-gram also found in ``reference``.

    Measures verbatim copying: 1.0 means every word sits in a run of at least ``n`` words
    that ``reference`` contains too.

    >>> source = "the quick brown fox jumps over the lazy dog".split()
    >>> shared_ngram_share("a quick brown fox jumps here".split(), source, 4)
    0.6666666666666666
    >>> shared_ngram_share("a quick brown cat".split(), source, 4)
    0.0
    """
    if len(items) < n:
        return 0.0
    reference_grams = set(ngrams(reference, n))
    covered = [False] * len(items)
    for start, gram in enumerate(ngrams(items, n)):
        if gram in reference_grams:
            for i in range(start, start + n):
                covered[i] = True
    return sum(covered) / len(items)


def function_word_share(text: str) -> float:
    """Share of the words of ``text`` that are function words (0 for a text with no words).

    English prose sits around 0.4-0.55; keyword lists and word salad near 0.
    """
    all_words = words(text)
    if not all_words:
        return 0.0
    return sum(1 for w in all_words if w in STOPWORDS) / len(all_words)


def mean_sentence_words(text: str) -> float:
    """Mean number of words per sentence (0 for a text with no words)."""
    counts = [len(words(s)) for s in sentences(text)]
    counts = [c for c in counts if c]
    return sum(counts) / len(counts) if counts else 0.0


def salient_stems(text: str, count: int, *, extra: Iterable[str] = ()) -> list[str]:
    """The ``count`` most frequent content stems of ``text`` (ties broken by first use).

    Stems of ``extra`` texts (a title, say) count once more each.

    >>> salient_stems("Bees make honey. Bees dance. Honey is sweet and bees love it.", 2)
    ['bee', 'honey']
    """
    stems = content_stems(text)
    counts = Counter(stems)
    for piece in extra:
        counts.update(set(content_stems(piece)))
    first_use = {}
    for index, s in enumerate(stems):
        first_use.setdefault(s, index)
    ranked = sorted(counts, key=lambda s: (-counts[s], first_use.get(s, len(stems))))
    return ranked[:count]


#: Common verbs and adverbs that make poor key phrases on their own.
GENERIC_WORDS: frozenset[str] = frozenset(
    """
    see saw seen say said says mean means meant come comes came get gets got make makes made
    use uses used keep keeps kept take takes took back look looks looked day days year years
    first later sometimes something anything everything thing things way ways around long
    like want wanted know knew think thought went goes go going need needs put puts give gives
    gave tell told find found become became seem seems well even really lot lots
    """.split()  # noqa: SIM905 (a long word list reads best as text)
)


def key_phrases(text: str, count: int) -> list[str]:
    """Up to ``count`` key phrases of ``text`` (a RAKE-like extractor).

    Candidates are runs of 1-3 adjacent content words (common verbs and adverbs excluded)
    inside one sentence; in a longer phrase every word must occur at least twice in the
    text. A phrase scores the mean frequency of its words, times 1.6 for two words and 2.2
    for three. Phrases are taken best first, skipping any that shares a word stem with one
    already taken. Used when a data set gives no key points of its own.

    >>> key_phrases("Honey bees dance to share food. The dance tells other honey bees where "
    ...             "the food is. Food is scarce in winter.", 2)
    ['honey bees dance', 'food']
    """
    frequency = Counter(content_stems(text))
    scored: dict[str, tuple[float, int]] = {}
    for sentence in sentences(text):
        run: list[str] = []
        for word in [*words(sentence), ""]:
            if word and is_content_word(word) and not word.isdigit() and word not in GENERIC_WORDS:
                run.append(word)
                continue
            for size in (1, 2, 3):
                for start in range(len(run) - size + 1):
                    phrase_words = run[start : start + size]
                    counts = [frequency[stem(w)] for w in phrase_words]
                    if len(set(phrase_words)) < size or (size > 1 and min(counts) < 2):
                        continue
                    phrase = " ".join(phrase_words)
                    if phrase not in scored:
                        score = sum(counts) / size * (1 + 0.6 * (size - 1))
                        scored[phrase] = (score, len(scored))
            run = []
    ranked = sorted(scored, key=lambda p: (-scored[p][0], scored[p][1]))
    chosen: list[str] = []
    used: set[str] = set()
    for phrase in ranked:
        phrase_stems = {stem(w) for w in phrase.split()}
        if phrase_stems & used:
            continue
        chosen.append(phrase)
        used |= phrase_stems
        if len(chosen) == count:
            break
    return chosen
