"""Writing tasks and where they come from.

A :class:`WritingTask` is one source to write from: a document to summarise, or an
abstract-like brief to expand. Sources, chosen with the environments' ``data`` argument:

``"bundled"`` (default)
    the project's own licence-clean corpus, shipped in ``mallm_envs/data/writing/``
    (``summary_docs.jsonl`` and ``expansion_briefs.jsonl``), read lazily; fixed
    ``train``/``test`` splits recorded in each record.
``"file:PATH"``
    a local JSON Lines file in the bundled format (one record per line with ``id``,
    ``title``, ``text`` or ``abstract``, ``key_points`` and ``split``).
``"pydoc"`` (summary only)
    the topic pages of Python's own documentation (``pydoc_data.topics``), offline; a
    page goes to ``test`` when the first hex digit of the SHA-256 of its name is below 4
    (a quarter), else to ``train``.
``"tldr"`` / ``"tldr:NAME_OR_FILE"`` (summary only, needs the ``datasets`` package)
    the paper's summary data (default hub id ``trl-lib/tldr``; columns ``prompt`` with
    ``SUBREDDIT:``/``TITLE:``/``POST:`` parts and ``completion``, the author's TL;DR, whose
    key phrases become the task's key points); a ``.jsonl``/``.json``/``.parquet`` file
    with those columns works too.
``"arxiv"`` / ``"arxiv:NAME_OR_FILE"`` (expansion only, needs ``datasets``)
    the paper's expansion data (default hub id ``LovelyBuggies/arXiv_abstract``; columns
    ``article_id`` and ``abstract_text``, a list of sentences or one string).

Hub ids are fetched only because the user named that source; nothing is downloaded
otherwise. ``data_limit`` keeps the first N records of the split (the paper used 1,000).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from mallm_envs.core.errors import MallmError
from mallm_envs.envs.writing import text as T

Kind = Literal["summary", "expansion"]
KINDS: tuple[str, ...] = ("summary", "expansion")
BUNDLED_FILES: Mapping[str, str] = {
    "summary": "summary_docs.jsonl",
    "expansion": "expansion_briefs.jsonl",
}
TLDR_HUB_ID = "trl-lib/tldr"
ARXIV_HUB_ID = "LovelyBuggies/arXiv_abstract"
AUTO_KEY_POINTS = 5
#: Longest source text kept (characters); longer sources are cut at a sentence boundary.
MAX_SOURCE_CHARS = 8_000


class WritingDataError(MallmError, ValueError):
    """Task data is missing, malformed, or cannot be loaded (the message says which and how)."""


@dataclass(frozen=True)
class WritingTask:
    """One source to write from.

    Attributes:
        id: unique within its data source.
        kind: ``"summary"`` (a document) or ``"expansion"`` (an abstract-like brief).
        title: the source's title (may be empty).
        text: the document, or the brief's abstract.
        key_points: phrases naming the source's key content (for the coverage reward).
        split: ``"train"``, ``"test"`` (or a hub split name).
        topic: topic or field, when known.
    """

    id: str
    kind: str
    title: str
    text: str
    key_points: tuple[str, ...]
    split: str
    topic: str = ""

    @property
    def source(self) -> str:
        """The text the reward compares against: title and body."""
        return f"{self.title}\n\n{self.text}" if self.title else self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "text": self.text,
            "key_points": list(self.key_points),
            "split": self.split,
            "topic": self.topic,
        }


def data_hash(tasks: Sequence[WritingTask]) -> str:
    """A short SHA-256 of the tasks (canonical JSON), so a score names the data it used."""
    payload = json.dumps([t.to_dict() for t in tasks], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()[:16]


# ----------------------------------------------------------------------------- records


def _cut(text: str, limit: int = MAX_SOURCE_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind(".\n"))
    return head[: end + 1] if end > limit // 2 else head


def _string(record: Mapping[str, Any], name: str, where: str, *, required: bool = True) -> str:
    value = record.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise WritingDataError(f"{where}: field {name!r} must be a non-empty string")
    return value


def task_from_bundled_record(record: Mapping[str, Any], kind: str, where: str) -> WritingTask:
    """A task from one record of the bundled format, validated strictly.

    Summary records have ``id, title, topic, text, key_points, split``; expansion records
    ``id, title, field, abstract, key_points, split``. Every key point must occur in the
    text (case-insensitive).
    """
    if not isinstance(record, Mapping):
        raise WritingDataError(f"{where}: a record must be a JSON object")
    body_field = "text" if kind == "summary" else "abstract"
    body = record.get(body_field, record.get("text"))
    if not isinstance(body, str) or not body.strip():
        raise WritingDataError(f"{where}: field {body_field!r} must be a non-empty string")
    task_id = _string(record, "id", where)
    title = _string(record, "title", where, required=False)
    split = _string(record, "split", where)
    topic = record.get("topic", record.get("field", "")) or ""
    if not isinstance(topic, str):
        raise WritingDataError(f"{where}: field 'topic'/'field' must be a string")
    points = record.get("key_points")
    if not isinstance(points, list) or not all(isinstance(p, str) and p.strip() for p in points):
        raise WritingDataError(f"{where}: 'key_points' must be a list of non-empty strings")
    lowered = T.normalized(body.lower())
    missing = [p for p in points if T.normalized(p.lower()) not in lowered]
    if missing:
        raise WritingDataError(f"{where}: key points not found in the text: {missing}")
    if not points:
        points = T.key_phrases(body, AUTO_KEY_POINTS)
    return WritingTask(
        id=task_id,
        kind=kind,
        title=title.strip(),
        text=_cut(body),
        key_points=tuple(points),
        split=split,
        topic=topic,
    )


_TLDR_PART = re.compile(r"^(SUBREDDIT|TITLE|POST):[ \t]*", re.M)


def task_from_tldr_record(record: Mapping[str, Any], index: int, split: str) -> WritingTask:
    """A summary task from a ``trl-lib/tldr`` record (``prompt`` and ``completion``).

    The prompt's ``TITLE:`` part becomes the title and its ``POST:`` part the text (the
    whole prompt when it has no such parts); the key points are the key phrases of the
    author's own TL;DR (``completion``), or of the post when there is none.
    """
    where = f"tldr record {index}"
    prompt = _string(record, "prompt", where)
    parts: dict[str, str] = {}
    matches = list(_TLDR_PART.finditer(prompt))
    for number, match in enumerate(matches):
        end = matches[number + 1].start() if number + 1 < len(matches) else len(prompt)
        parts[match.group(1)] = prompt[match.end() : end].strip()
    post = parts.get("POST", prompt)
    post = re.sub(r"\s*TL;DR:\s*$", "", post).strip()
    if not post:
        raise WritingDataError(f"{where}: the post is empty")
    reference = record.get("completion")
    reference = reference.strip() if isinstance(reference, str) else ""
    points = T.key_phrases(reference, AUTO_KEY_POINTS) if reference else []
    if not points:
        points = T.key_phrases(post, AUTO_KEY_POINTS)
    subreddit = parts.get("SUBREDDIT", "")
    return WritingTask(
        id=f"tldr-{split}-{index:06d}",
        kind="summary",
        title=parts.get("TITLE", ""),
        text=_cut(post),
        key_points=tuple(points),
        split=split,
        topic=subreddit,
    )


def task_from_arxiv_record(record: Mapping[str, Any], index: int, split: str) -> WritingTask:
    """An expansion task from an arXiv-abstract record (``article_id``, ``abstract_text``).

    ``abstract_text`` may be a list of sentences (``<S>``/``</S>`` sentence tags are
    removed) or one string; ``abstract`` is accepted too.
    """
    where = f"arxiv record {index}"
    raw = record.get("abstract_text", record.get("abstract"))
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        raw = " ".join(raw)
    if not isinstance(raw, str):
        raise WritingDataError(f"{where}: 'abstract_text' must be a string or a list of strings")
    abstract = T.normalized(re.sub(r"</?s>", " ", raw, flags=re.I))
    if not abstract:
        raise WritingDataError(f"{where}: the abstract is empty")
    article = record.get("article_id", record.get("id"))
    task_id = (
        f"arxiv-{article}" if isinstance(article, str) and article else f"arxiv-{split}-{index:06d}"
    )
    title = record.get("title") if isinstance(record.get("title"), str) else ""
    return WritingTask(
        id=task_id,
        kind="expansion",
        title=title,
        text=_cut(abstract),
        key_points=tuple(T.key_phrases(abstract, AUTO_KEY_POINTS)),
        split=split,
    )


# ----------------------------------------------------------------------------- sources


def _read_jsonl(lines: Iterable[str], name: str) -> list[tuple[str, Any]]:
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            records.append((where, json.loads(line)))
        except json.JSONDecodeError as err:
            raise WritingDataError(f"{where}: not valid JSON ({err.msg})") from None
    return records


def _bundled_tasks_from_lines(
    lines: Iterable[str], kind: str, name: str
) -> tuple[WritingTask, ...]:
    tasks = tuple(task_from_bundled_record(r, kind, where) for where, r in _read_jsonl(lines, name))
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise WritingDataError(f"{name}: duplicate task id {task.id!r}")
        seen.add(task.id)
    return tasks


@lru_cache(maxsize=4)
def bundled_tasks(kind: str) -> tuple[WritingTask, ...]:
    """Every task of the bundled corpus of ``kind`` (read once per process)."""
    name = BUNDLED_FILES[kind]
    resource = resources.files("mallm_envs").joinpath("data", "writing", name)
    try:
        content = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WritingDataError(
            f"the bundled corpus file mallm_envs/data/writing/{name} is missing; "
            "reinstall mallm-envs or pass data='file:PATH' with your own tasks"
        ) from None
    return _bundled_tasks_from_lines(content.splitlines(), kind, f"bundled {name}")


def file_tasks(path: str, kind: str) -> tuple[WritingTask, ...]:
    """Every task of a local JSON Lines file in the bundled format."""
    try:
        content = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise WritingDataError(f"cannot read task file {path!r}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise WritingDataError(f"task file {path!r} is not UTF-8 text") from None
    return _bundled_tasks_from_lines(content.splitlines(), kind, path)


def _pydoc_split(name: str) -> str:
    return "test" if hashlib.sha256(name.encode()).hexdigest()[0] in "0123" else "train"


@lru_cache(maxsize=1)
def pydoc_tasks() -> tuple[WritingTask, ...]:
    """Summary tasks from the topic pages of Python's bundled documentation.

    Pages of 120 to 1,200 words are kept (code-heavy fragments and huge pages are not good
    summary sources); the key points are extracted automatically.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip it
        raise WritingDataError("this Python has no pydoc_data.topics module") from None
    tasks = []
    for name in sorted(topics):
        lines = topics[name].strip().splitlines()
        title = name
        if len(lines) > 1 and lines[1].strip() and set(lines[1].strip()) <= set("*=-~^"):
            title, lines = lines[0].strip(), lines[2:]
        body = "\n".join(lines).strip()
        count = len(T.words(body))
        if not 120 <= count <= 1200:
            continue
        tasks.append(
            WritingTask(
                id=f"pydoc-{name}",
                kind="summary",
                title=title,
                text=_cut(body),
                key_points=tuple(T.key_phrases(body, AUTO_KEY_POINTS)),
                split=_pydoc_split(name),
                topic="python",
            )
        )
    return tuple(tasks)


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise WritingDataError(
            "this data source needs the optional 'datasets' package (pip install datasets); "
            "the bundled corpus (data='bundled') needs nothing"
        ) from None
    return datasets


def hub_records(name_or_file: str, split: str, limit: int | None) -> list[Mapping[str, Any]]:
    """Records of a split of a hub data set, or of a local ``.jsonl``/``.json``/``.parquet``
    file (read with the ``datasets`` library)."""
    datasets = _import_datasets()
    suffix = Path(name_or_file).suffix.lower()
    try:
        if suffix in (".jsonl", ".json", ".parquet"):
            if not Path(name_or_file).is_file():
                raise WritingDataError(f"no such data file: {name_or_file!r}")
            builder = "parquet" if suffix == ".parquet" else "json"
            dataset = datasets.load_dataset(builder, data_files={split: name_or_file}, split=split)
        else:
            dataset = datasets.load_dataset(name_or_file, split=split)
    except WritingDataError:
        raise
    except Exception as err:
        raise WritingDataError(
            f"could not load {name_or_file!r} split {split!r} with datasets: {type(err).__name__}: {err}"
        ) from err
    count = len(dataset) if limit is None else min(limit, len(dataset))
    return [dataset[i] for i in range(count)]


def load_source(
    data: str, kind: str, split: str, limit: int | None = None
) -> tuple[tuple[WritingTask, ...], tuple[WritingTask, ...]]:
    """(every task of the source, the tasks of ``split``) for the source ``data``.

    Bundled, file and pydoc sources hold every split; a hub source is read one split at a
    time, so there both are the split's tasks. ``limit`` keeps the first N tasks of the
    split. Raises :class:`WritingDataError` for an unknown source, a source of the wrong
    kind, a missing optional package or malformed data, and when the split has no task.
    """
    if kind not in KINDS:
        raise WritingDataError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(data, str):
        raise WritingDataError(f"data must be a string, got {type(data).__name__}")
    scheme, _, argument = data.partition(":")
    if scheme == "bundled" and not argument:
        tasks: Sequence[WritingTask] = bundled_tasks(kind)
    elif scheme == "file" and argument:
        tasks = file_tasks(argument, kind)
    elif scheme == "pydoc" and not argument:
        if kind != "summary":
            raise WritingDataError("data='pydoc' gives summary tasks only")
        tasks = pydoc_tasks()
    elif scheme == "tldr":
        if kind != "summary":
            raise WritingDataError("data='tldr' gives summary tasks only")
        records = hub_records(argument or TLDR_HUB_ID, split, limit)
        tasks = [task_from_tldr_record(r, i, split) for i, r in enumerate(records)]
    elif scheme == "arxiv":
        if kind != "expansion":
            raise WritingDataError("data='arxiv' gives expansion tasks only")
        records = hub_records(argument or ARXIV_HUB_ID, split, limit)
        tasks = [task_from_arxiv_record(r, i, split) for i, r in enumerate(records)]
    else:
        raise WritingDataError(
            f"unknown data source {data!r}; use 'bundled', 'file:PATH', 'pydoc', "
            "'tldr[:NAME_OR_FILE]' or 'arxiv[:NAME_OR_FILE]'"
        )
    chosen = tuple(t for t in tasks if t.split == split)
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen:
        splits = sorted({t.split for t in tasks})
        raise WritingDataError(f"{data!r} has no {kind} task in split {split!r} (splits: {splits})")
    return tuple(tasks), chosen


def load_tasks(
    data: str, kind: str, split: str, limit: int | None = None
) -> tuple[WritingTask, ...]:
    """The tasks of ``split`` from the source ``data`` (see :func:`load_source`)."""
    return load_source(data, kind, split, limit)[1]
