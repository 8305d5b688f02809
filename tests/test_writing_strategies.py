"""Cheap writing strategies that know nothing about meaning (the adversarial suite's players).

Each strategy sees only what a writer's observation holds, the title and the source text,
and returns the pair's two texts ``(first, second)`` for the task ``kind`` ("summary":
concise, detailed; "expansion": background, method). Every one is deterministic: its
random choices come from a generator seeded by the source text.

They are the exploits the issue found against the v0 reward (word salad, filler frames,
near-verbatim extracts, look-alike copies, padding, transition stuffing, partner copying,
word lists) plus a few found while building v1 (a bigram chain over the source's own word
pairs, sentence shuffles, combining-mark padding). ``tests/test_writing_adversarial.py``
scores all of them on the whole test split under v0 and v1.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections import Counter
from collections.abc import Callable

from mallm_envs.envs.writing import agents
from mallm_envs.envs.writing import text as T

TRANSITION_OPENERS = (
    "Moreover",
    "For example",
    "In other words",
    "Therefore",
    "However",
    "Finally",
    "Indeed",
    "In summary",
    "Similarly",
    "Nevertheless",
    "Otherwise",
    "Meanwhile",
)
#: Length targets (words) of the two parts, chosen to fit each task's length rules.
TARGETS = {"summary": (35, 90), "expansion": (165, 170)}
FRAMES = (
    "The {0} of the {1} is in the {2}, and the {3} is with the {4}.",
    "This {0} was the {1} for {2} and {3} in the {4}.",
    "In the {0}, the {1} and the {2} are what the {3} is to {4}.",
    "It is the {0} that the {1} has, so the {2} of {3} is {4}.",
    "When the {0} is on the {1}, a {2} is more {3} than the {4}.",
)
ZERO_WIDTH = "\u200b"
CYRILLIC = str.maketrans(
    {"a": "\u0430", "e": "\u0435", "o": "\u043e", "c": "\u0441", "p": "\u0440"}
)


def _rng(source: str, salt: str) -> random.Random:
    digest = hashlib.sha256((salt + "\n" + source).encode("utf-8", "replace")).hexdigest()
    return random.Random(int(digest[:16], 16))


def _raw_words(source: str) -> list[str]:
    return re.findall(r"[^\s]+", source)


def _frequent(source: str, count: int) -> list[str]:
    ranked = Counter(T.content_words(source)).most_common()
    return [word for word, _ in ranked[:count]] or ["thing"]


def _sentences_of(words: list[str], size: int, rng: random.Random) -> str:
    """Words cut into sentence-length runs, each opened by a transition phrase."""
    out = []
    for number, start in enumerate(range(0, len(words), size)):
        run = " ".join(w.strip(".,;:!?()\"'") for w in words[start : start + size])
        opener = TRANSITION_OPENERS[(number + rng.randrange(3)) % len(TRANSITION_OPENERS)]
        out.append(f"{opener}, {run}.")
    return " ".join(out)


def _fit(words: list[str], count: int) -> list[str]:
    if not words:
        return ["nothing"] * count
    while len(words) < count:
        words = words + words
    return words[:count]


def _delete_every(words: list[str], step: int) -> list[str]:
    return [w for i, w in enumerate(words) if (i + 1) % step]


def _pair_from_words(words: list[str], kind: str) -> tuple[str, str]:
    first, second = TARGETS[kind]
    if kind == "summary":
        return " ".join(_fit(words, first)), " ".join(_fit(words, second))
    return " ".join(_fit(words, first)), " ".join(_fit(words[first:] or words, second))


# ----------------------------------------------------------------------------- strategies


def word_salad(title: str, source: str, kind: str) -> tuple[str, str]:
    """The source's words in random order, in sentence-length runs opened by transitions."""
    rng = _rng(source, "salad")
    words = _raw_words(source)
    first, second = TARGETS[kind]
    a = words[:]
    rng.shuffle(a)
    b = words[:]
    rng.shuffle(b)
    return _sentences_of(_fit(a, first), 12, rng), _sentences_of(_fit(b, second), 12, rng)


def filler_frames(title: str, source: str, kind: str) -> tuple[str, str]:
    """The source's frequent words dropped into function-word frames."""
    rng = _rng(source, "frames")
    frequent = _frequent(source, 25)

    def part(count: int) -> str:
        out, size = [], 0
        while size < count:
            frame = FRAMES[rng.randrange(len(FRAMES))]
            sentence = frame.format(*(rng.choice(frequent) for _ in range(5)))
            out.append(sentence[0].upper() + sentence[1:])
            size += len(sentence.split())
        return " ".join(out)

    first, second = TARGETS[kind]
    return part(first), part(second)


def filler_frames_made_up(title: str, source: str, kind: str) -> tuple[str, str]:
    """Filler frames where half the slots hold made-up, pronounceable words."""
    rng = _rng(source, "madeup")
    frequent = _frequent(source, 25)
    consonants, vowels = "bdfgklmnprstv", "aeiou"

    def made_up() -> str:
        return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(3))

    def part(count: int) -> str:
        out, size = [], 0
        while size < count:
            frame = FRAMES[rng.randrange(len(FRAMES))]
            slots = [rng.choice(frequent) if rng.random() < 0.5 else made_up() for _ in range(5)]
            sentence = frame.format(*slots)
            out.append(sentence[0].upper() + sentence[1:])
            size += len(sentence.split())
        return " ".join(out)

    first, second = TARGETS[kind]
    return part(first), part(second)


def extract_head_deleted(title: str, source: str, kind: str) -> tuple[str, str]:
    """The source's opening, every 7th word deleted (the 8-word copy check never fires)."""
    words = _delete_every(_raw_words(source), 7)
    return _pair_from_words(words, kind)


def extract_tail_deleted(title: str, source: str, kind: str) -> tuple[str, str]:
    """The source's last sentences, every 6th word deleted."""
    words = _raw_words(source)
    first, second = TARGETS[kind]
    tail = _delete_every(words[-(first + second) * 6 // 5 :], 6)
    return _pair_from_words(tail, kind)


def shuffled_chunks(title: str, source: str, kind: str) -> tuple[str, str]:
    """The source cut into 7-word chunks, shuffled, each chunk ended with a full stop."""
    rng = _rng(source, "chunks")
    words = _raw_words(source)
    chunks = [" ".join(words[i : i + 7]).rstrip(".,;:") + "." for i in range(0, len(words), 7)]
    rng.shuffle(chunks)
    return _pair_from_words(" ".join(chunks).split(), kind)


def rotated_clauses(title: str, source: str, kind: str) -> tuple[str, str]:
    """Each source sentence's clauses (split at commas) rotated by one."""
    out = []
    for sentence in T.sentences(source):
        clauses = [c.strip(" .") for c in sentence.split(",") if c.strip(" .")]
        if len(clauses) > 1:
            clauses = clauses[1:] + clauses[:1]
        joined = ", ".join(clauses)
        out.append(joined[:1].upper() + joined[1:] + ".")
    return _pair_from_words(" ".join(out).split(), kind)


def zero_width_copy(title: str, source: str, kind: str) -> tuple[str, str]:
    """A verbatim copy with a zero-width space inside every third word."""
    words = [
        w[: len(w) // 2] + ZERO_WIDTH + w[len(w) // 2 :] if i % 3 == 0 and len(w) > 2 else w
        for i, w in enumerate(_raw_words(source))
    ]
    return _pair_from_words(words, kind)


def cyrillic_copy(title: str, source: str, kind: str) -> tuple[str, str]:
    """A verbatim copy with Cyrillic look-alike letters in every third word."""
    words = [w.translate(CYRILLIC) if i % 3 == 0 else w for i, w in enumerate(_raw_words(source))]
    return _pair_from_words(words, kind)


def zero_width_padding(title: str, source: str, kind: str) -> tuple[str, str]:
    """Short deleted-word extracts padded with zero-width spaces to buy length."""
    words = _delete_every(_raw_words(source), 7)
    first, _second = TARGETS[kind]
    a = " ".join(_fit(words, first))
    b = " ".join(_fit(words[first:] or words, first))
    return a, b + ZERO_WIDTH * (2 * len(a))


def combining_padding(title: str, source: str, kind: str) -> tuple[str, str]:
    """A deleted-word extract where every letter carries a combining mark (new)."""
    first, second = extract_head_deleted(title, source, kind)
    return first, re.sub(r"([A-Za-z])", "\\1\u0301", second)


def transition_stuffing(title: str, source: str, kind: str) -> tuple[str, str]:
    """A deleted-word extract whose every sentence opens with a phrase of a new category."""
    rng = _rng(source, "stuff")
    words = _delete_every(_raw_words(source), 7)
    first, second = TARGETS[kind]
    return (
        _sentences_of(_fit(words, first), 9, rng),
        _sentences_of(_fit(words[first:] or words, second), 9, rng),
    )


def partner_prefix(title: str, source: str, kind: str) -> tuple[str, str]:
    """Summary: the concise text is the opening of the detailed one (an extract with
    deletions); expansion: the method part is the background part again."""
    first, second = extract_head_deleted(title, source, kind)
    if kind == "summary":
        return " ".join(second.split()[: TARGETS[kind][0]]), second
    return first, first


def partner_swapped(title: str, source: str, kind: str) -> tuple[str, str]:
    """The second part is the first with adjacent words swapped (plus its own tail in the
    summary task, to reach the length ratio)."""
    base_first, base_second = extract_head_deleted(title, source, kind)
    words = base_first.split()
    swapped = []
    for i in range(0, len(words) - 1, 2):
        swapped += [words[i + 1], words[i]]
    if len(words) % 2:
        swapped.append(words[-1])
    if kind == "summary":
        return base_first, " ".join(swapped) + " " + " ".join(base_second.split()[35:])
    return base_first, " ".join(swapped)


def frequent_word_list(title: str, source: str, kind: str) -> tuple[str, str]:
    """The source's frequent words listed in sentences joined by 'and' and 'the'."""
    frequent = _frequent(source, 40)
    first, second = TARGETS[kind]

    def part(count: int, offset: int) -> str:
        words = _fit(frequent[offset:] + frequent[:offset], count // 2)
        out = []
        for i in range(0, len(words), 6):
            group = words[i : i + 6]
            out.append("The " + " and the ".join(group) + ".")
        return " ".join(out)

    return part(first, 0), part(second, 10)


def bigram_chain(title: str, source: str, kind: str) -> tuple[str, str]:
    """A random walk over the source's own adjacent word pairs (new): every word pair is
    attested in the source, but the text says nothing."""
    rng = _rng(source, "chain")
    words = [w.lower() for w in _raw_words(source)]
    following: dict[str, list[str]] = {}
    for a, b in itertools.pairwise(words):
        following.setdefault(a, []).append(b)

    def walk(count: int) -> str:
        out = [rng.choice(words)]
        while len(out) < count:
            options = following.get(out[-1])
            out.append(rng.choice(options) if options else rng.choice(words))
        text = " ".join(out)
        return text[:1].upper() + text[1:] + "."

    first, second = TARGETS[kind]
    return walk(first), walk(second)


def sentence_shuffle_deleted(title: str, source: str, kind: str) -> tuple[str, str]:
    """The source's sentences shuffled, every 5th word deleted (new)."""
    rng = _rng(source, "sentences")
    sentences = T.sentences(source)
    rng.shuffle(sentences)
    return _pair_from_words(_delete_every(" ".join(sentences).split(), 5), kind)


def title_and_salad(title: str, source: str, kind: str) -> tuple[str, str]:
    """The title as a sentence, then a salad of the source's content words in frames of
    'the ... of the ...' (coverage bait with a fluent-looking opening)."""
    rng = _rng(source, "title")
    content = T.content_words(source)
    rng.shuffle(content)
    first, second = TARGETS[kind]

    def part(count: int, offset: int) -> str:
        words = _fit(content[offset:] + content[:offset], count // 2)
        pieces = [f"the {a} of the {b}" for a, b in zip(words[::2], words[1::2])]
        body = ", ".join(pieces)
        return f"{title}. This is about {body}."

    return part(first, 0), part(second, 7)


TEMPLATE = (
    "In recent years the question of how people deal with everyday problems has become more "
    "important, and many of them now look for simple answers. The main idea is easy to "
    "follow: when one thing changes, the other parts of the system change with it, often in "
    "ways that nobody expected at first. For this reason the results matter for families, "
    "for local groups and for the people who make decisions about money and time. However, "
    "there are still some open questions, and the details depend on where and when the work "
    "is done."
)
TEMPLATE_TWO = (
    "Looking back, the story of this topic is told by many people in many places, and most "
    "of them agree on a few things. At the start there is usually a clear need, and the first "
    "step is to see what is going on and why it matters to the people involved. After that, "
    "the next part shows how the pieces fit together over time, which makes the whole "
    "picture much easier to understand for readers. Finally, what happens at the end depends "
    "on choices that were made along the way, so it is worth thinking about them carefully "
    "before acting."
)
_TOKEN_CORE = re.compile(r"^(\W*)(.*?)(\W*)$")


def _refill(tokens: list[str], pool: list[str], rng: random.Random) -> str:
    """``tokens`` with every content word replaced by a random word of ``pool``."""
    out = []
    for token in tokens:
        lead, core, tail = _TOKEN_CORE.match(token).groups()
        if T.is_content_word(core.lower()) and pool:
            core = rng.choice(pool)
        out.append(lead + core + tail)
    return " ".join(out)


def source_frames_refilled(title: str, source: str, kind: str) -> tuple[str, str]:
    """The source's own text with its content words shuffled among the content slots: every
    function word and punctuation mark stays where it was (new; it beat an early v1 draft at
    94% of the honest summaries)."""
    rng = _rng(source, "refill")
    tokens = _raw_words(source)
    pool = [
        w.strip(".,;:!?()\"'") for w in tokens if T.is_content_word(w.strip(".,;:!?()\"'").lower())
    ]
    first, second = TARGETS[kind]
    if kind == "summary":
        return _refill(tokens[:first], pool, rng), _refill(
            tokens[first : first + second], pool, rng
        )
    return _refill(_fit(tokens, first), pool, rng), _refill(_fit(tokens, second), pool, rng)


def sentence_words_shuffled(title: str, source: str, kind: str) -> tuple[str, str]:
    """Each source sentence with its own content words shuffled among its content slots
    (new)."""
    rng = _rng(source, "sentence-refill")
    sentences = []
    for sentence in T.sentences(source):
        tokens = sentence.split()
        pool = [_TOKEN_CORE.match(t).group(2) for t in tokens]
        pool = [w for w in pool if T.is_content_word(w.lower())]
        rng.shuffle(pool)
        out = []
        for token in tokens:
            lead, core, tail = _TOKEN_CORE.match(token).groups()
            if T.is_content_word(core.lower()) and pool:
                core = pool.pop()
            out.append(lead + core + tail)
        sentences.append(" ".join(out))
    words = " ".join(sentences).split()
    first, second = TARGETS[kind]
    if kind == "summary":
        return " ".join(words[:first]), " ".join(words[first : first + second])
    rng.shuffle(sentences)
    return " ".join(_fit(words, first)), " ".join(_fit(" ".join(sentences).split(), second))


def template_refilled(title: str, source: str, kind: str) -> tuple[str, str]:
    """A fixed, fluent generic paragraph whose content words are replaced by random content
    words of the source (new: frames no check of repetition sees, words of the source)."""
    rng = _rng(source, "template")
    pool = T.content_words(source)
    tokens = TEMPLATE.split()
    first, second = TARGETS[kind]
    if kind == "summary":
        return _refill(tokens[:first], pool, rng), _refill(tokens[:second], pool, rng)
    return (
        _refill(tokens, pool, rng) + " " + _refill(tokens, pool, rng),
        _refill(tokens, pool, rng) + " " + _refill(tokens, pool, rng),
    )


def _content_runs(source: str) -> list[str]:
    """The source's runs of adjacent content words, in order ("sodium chloride ions")."""
    runs: list[str] = []
    for sentence in T.sentences(source):
        run: list[str] = []
        for token in [*sentence.split(), "."]:
            core = _TOKEN_CORE.match(token).group(2)
            if core and T.is_content_word(core.lower()):
                run.append(core)
            elif run:
                runs.append(" ".join(run))
                run = []
    return runs or ["thing"]


def _fill_in_order(template: str, runs: list[str], start: int) -> tuple[str, int]:
    index, out = start, []
    for token in template.split():
        lead, core, tail = _TOKEN_CORE.match(token).groups()
        if T.is_content_word(core.lower()):
            core = runs[index % len(runs)]
            index += 1
        out.append(lead + core + tail)
    return " ".join(out), index


def template_source_phrases(title: str, source: str, kind: str) -> tuple[str, str]:
    """Fluent generic paragraphs whose content slots take the source's content-word runs in
    their original order (new; the closest miss of v1: every model-free check passes, the
    words that belong together stay together, only meaning is missing)."""
    runs = _content_runs(source)
    if kind == "summary":
        first, used = _fill_in_order(" ".join(TEMPLATE.split()[:35]), runs, 0)
        second, _ = _fill_in_order(TEMPLATE_TWO + " " + " ".join(TEMPLATE.split()[:20]), runs, used)
        return first, second
    first, used = _fill_in_order(TEMPLATE + " " + TEMPLATE_TWO, runs, 0)
    second, _ = _fill_in_order(TEMPLATE_TWO + " " + TEMPLATE, runs, used)
    return first, second


def key_phrase_frames(title: str, source: str, kind: str) -> tuple[str, str]:
    """The scripted reference writer (:class:`~mallm_envs.envs.writing.agents.KeyPhraseWriter`):
    the source's key phrases in fixed, fluent sentence frames (it scored 97% of the honest
    expansion pairs under an early v1 draft, which is why v1 has a breadth factor)."""
    parts = ("concise", "detailed") if kind == "summary" else ("background", "method")
    first, second = (agents.WRITERS[part](title, source) for part in parts)
    return first, second


STRATEGIES: dict[str, Callable[[str, str, str], tuple[str, str]]] = {
    "word_salad": word_salad,
    "filler_frames": filler_frames,
    "filler_frames_made_up": filler_frames_made_up,
    "extract_head_deleted": extract_head_deleted,
    "extract_tail_deleted": extract_tail_deleted,
    "shuffled_chunks": shuffled_chunks,
    "rotated_clauses": rotated_clauses,
    "zero_width_copy": zero_width_copy,
    "cyrillic_copy": cyrillic_copy,
    "zero_width_padding": zero_width_padding,
    "combining_padding": combining_padding,
    "transition_stuffing": transition_stuffing,
    "partner_prefix": partner_prefix,
    "partner_swapped": partner_swapped,
    "frequent_word_list": frequent_word_list,
    "bigram_chain": bigram_chain,
    "sentence_shuffle_deleted": sentence_shuffle_deleted,
    "title_and_salad": title_and_salad,
    "key_phrase_frames": key_phrase_frames,
    "source_frames_refilled": source_frames_refilled,
    "sentence_words_shuffled": sentence_words_shuffled,
    "template_refilled": template_refilled,
    "template_source_phrases": template_source_phrases,
}
