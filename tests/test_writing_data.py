"""Writing task data: the bundled corpus, local files, Python's docs, and the paper's data sets.

The hub loaders go through the optional ``datasets`` package; here they read small local
fixture files (JSON Lines and Parquet) in the hub data sets' formats, never the network.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from mallm_envs.envs.writing import tasks
from mallm_envs.envs.writing.tasks import WritingDataError, load_tasks

FIXTURES = Path(__file__).parent / "fixtures" / "writing"
HAS_DATASETS = importlib.util.find_spec("datasets") is not None
needs_datasets = pytest.mark.skipif(
    not HAS_DATASETS, reason="the optional 'datasets' package is not installed"
)


# ----------------------------------------------------------------------------- bundled corpus


@pytest.mark.parametrize("kind", ["summary", "expansion"])
def test_bundled_corpus_is_valid_and_split(kind: str) -> None:
    everything = tasks.bundled_tasks(kind)  # validates every record strictly
    train = load_tasks("bundled", kind, "train")
    test = load_tasks("bundled", kind, "test")
    assert len(train) + len(test) == len(everything)
    assert len(test) >= 10 and len(train) >= 3 * len(test) // 2
    assert not {t.id for t in train} & {t.id for t in test}
    assert len({t.topic for t in everything}) >= 5  # varied
    for task in everything:
        assert task.kind == kind and task.text and task.key_points
        lowered = " ".join(task.text.lower().split())
        assert all(" ".join(p.lower().split()) in lowered for p in task.key_points)


def test_data_hash_names_the_data() -> None:
    train = load_tasks("bundled", "summary", "train")
    test = load_tasks("bundled", "summary", "test")
    assert tasks.data_hash(train) == tasks.data_hash(load_tasks("bundled", "summary", "train"))
    assert tasks.data_hash(train) != tasks.data_hash(test)
    assert len(tasks.data_hash(train)) == 16


# ----------------------------------------------------------------------------- local files


def test_file_source_reads_the_bundled_format() -> None:
    path = str(FIXTURES / "summary_docs.jsonl")
    train = load_tasks(f"file:{path}", "summary", "train")
    assert [t.id for t in train] == ["fx-sum-tides", "fx-sum-library"]
    assert load_tasks(f"file:{path}", "summary", "test")[0].key_points[0] == "wild yeast"
    assert load_tasks(f"file:{path}", "summary", "train", limit=1)[0].id == "fx-sum-tides"


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ('{"id": "a", "title": "T", "split": "train", "key_points": []}', "'text' must be"),
        (
            '{"id": "a", "title": "T", "text": "Bees dance.", "split": "train", "key_points": ["wasps"]}',
            "key points not found",
        ),
        (
            '{"id": "a", "title": "T", "text": "Bees dance.", "split": "train", "key_points": "bees"}',
            "'key_points' must be a list",
        ),
        ('{"id": "", "title": "T", "text": "Bees.", "split": "train", "key_points": []}', "'id'"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_malformed_task_files_fail_with_the_line_and_the_reason(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(WritingDataError, match=message) as caught:
        load_tasks(f"file:{path}", "summary", "train")
    assert "line 1" in str(caught.value)


def test_duplicate_ids_missing_files_and_empty_splits_are_refused(tmp_path: Path) -> None:
    record = {"id": "a", "title": "T", "text": "Bees dance.", "split": "train", "key_points": []}
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(WritingDataError, match="duplicate task id"):
        load_tasks(f"file:{path}", "summary", "train")
    with pytest.raises(WritingDataError, match="cannot read task file"):
        load_tasks(f"file:{tmp_path / 'nope.jsonl'}", "summary", "train")
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(
        WritingDataError, match=r"no summary task in split 'test' \(splits: \['train'\]\)"
    ):
        load_tasks(f"file:{path}", "summary", "test")
    # a record without key points gets extracted ones
    assert load_tasks(f"file:{path}", "summary", "train")[0].key_points


def test_unknown_or_mismatched_sources_are_refused() -> None:
    with pytest.raises(WritingDataError, match="unknown data source"):
        load_tasks("wikipedia", "summary", "train")
    with pytest.raises(WritingDataError, match="summary tasks only"):
        load_tasks("pydoc", "expansion", "train")
    with pytest.raises(WritingDataError, match="expansion tasks only"):
        load_tasks("arxiv", "summary", "train")
    with pytest.raises(WritingDataError, match="summary tasks only"):
        load_tasks("tldr", "expansion", "train")


def test_pydoc_topics_give_an_offline_summary_source() -> None:
    train = load_tasks("pydoc", "summary", "train")
    test = load_tasks("pydoc", "summary", "test")
    assert len(train) >= 15 and len(test) >= 3
    assert all(t.id.startswith("pydoc-") and t.key_points and t.topic == "python" for t in train)
    assert not {t.id for t in train} & {t.id for t in test}


# ----------------------------------------------------------------------------- the paper's data


def test_tldr_records_become_summary_tasks() -> None:
    lines = (FIXTURES / "tldr_sample.jsonl").read_text(encoding="utf-8").splitlines()
    task = tasks.task_from_tldr_record(json.loads(lines[0]), 0, "test")
    assert task.id == "tldr-test-000000"
    assert task.title == "My roommate keeps eating my food and says it's no big deal"
    assert task.text.startswith("We have shared a flat") and "TL;DR" not in task.text
    assert task.topic == "r/relationships"
    assert task.key_points and all(isinstance(p, str) for p in task.key_points)
    # a prompt without the SUBREDDIT/TITLE/POST parts is taken whole
    bare = tasks.task_from_tldr_record(
        {"prompt": "Just a post about cats.", "completion": ""}, 3, "train"
    )
    assert bare.text == "Just a post about cats." and bare.title == ""
    with pytest.raises(WritingDataError, match="'prompt' must be"):
        tasks.task_from_tldr_record({"completion": "x"}, 0, "train")


def test_arxiv_records_become_expansion_tasks() -> None:
    lines = (FIXTURES / "arxiv_sample.jsonl").read_text(encoding="utf-8").splitlines()
    first = tasks.task_from_arxiv_record(json.loads(lines[0]), 0, "train")
    assert first.id == "arxiv-1701.00001" and first.kind == "expansion"
    assert first.text.startswith("we study the thermal conductivity")
    assert "<S>" not in first.text and "</S>" not in first.text
    string_form = tasks.task_from_arxiv_record(json.loads(lines[2]), 2, "train")
    assert string_form.text.startswith("we propose a simple estimator")
    with pytest.raises(WritingDataError, match="abstract_text"):
        tasks.task_from_arxiv_record({"article_id": "x", "abstract_text": 3}, 0, "train")


def test_hub_sources_without_datasets_say_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(WritingDataError, match="pip install datasets"):
        load_tasks("tldr", "summary", "test")
    with pytest.raises(WritingDataError, match="pip install datasets"):
        load_tasks(f"arxiv:{FIXTURES / 'arxiv_sample.jsonl'}", "expansion", "train")


@needs_datasets
@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_tldr_loader_reads_local_files_through_datasets(suffix: str) -> None:
    loaded = load_tasks(f"tldr:{FIXTURES / f'tldr_sample.{suffix}'}", "summary", "test")
    assert [t.id for t in loaded] == [f"tldr-test-{i:06d}" for i in range(3)]
    assert loaded[1].title.startswith("Should I pay off my car loan")
    assert (
        load_tasks(f"tldr:{FIXTURES / f'tldr_sample.{suffix}'}", "summary", "test", limit=2)[-1].id
        == "tldr-test-000001"
    )


@needs_datasets
@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_arxiv_loader_reads_local_files_through_datasets(suffix: str) -> None:
    loaded = load_tasks(f"arxiv:{FIXTURES / f'arxiv_sample.{suffix}'}", "expansion", "validation")
    assert [t.id for t in loaded] == ["arxiv-1701.00001", "arxiv-1702.00002", "arxiv-1703.00003"]
    assert all(t.split == "validation" and t.key_points for t in loaded)


@needs_datasets
def test_hub_loader_reports_a_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(WritingDataError, match="no such data file"):
        load_tasks(f"tldr:{tmp_path / 'missing.parquet'}", "summary", "test")
