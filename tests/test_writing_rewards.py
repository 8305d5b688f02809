"""The writing reward: the paper's levels, the anti-exploit terms, and exploits vs hand-written pairs.

The hand-written pairs (tests/fixtures/writing/hand_written_pairs.json) were written for
the fixture documents by a person following the prompts' rules; each exploit below is
built from the same document and must score clearly below them.
"""

from __future__ import annotations

import ast
import doctest
import json
import math
from pathlib import Path

import pytest

from mallm_envs.envs.writing import agents, presets, rewards, rules, sections, tasks, text
from mallm_envs.envs.writing import env as writing_env
from mallm_envs.envs.writing.rewards import (
    EXPANSION_REWARD,
    SUMMARY_REWARD,
    PairRewardConfig,
    RewardBreakdown,
    score_pair,
)

FIXTURES = Path(__file__).parent / "fixtures" / "writing"
HAND = json.loads((FIXTURES / "hand_written_pairs.json").read_text(encoding="utf-8"))
SUMMARY_TASKS = {t.id: t for t in tasks.file_tasks(str(FIXTURES / "summary_docs.jsonl"), "summary")}
EXPANSION_TASKS = {
    t.id: t for t in tasks.file_tasks(str(FIXTURES / "expansion_briefs.jsonl"), "expansion")
}
UNRELATED = (
    "My weekend plans include baking bread, repairing the bicycle chain and calling my aunt "
    "about the family reunion. The bakery on the corner sells excellent rye loaves on "
    "Saturdays, and the hardware shop stocks cheap chain oil. However, the forecast promises "
    "rain, so the garden work will probably wait until next week."
)
GENERIC = (
    "This is a very important and interesting topic that many people care about. It matters "
    "a great deal for everyone in many different ways, and it is worth thinking about "
    "carefully. Moreover, there are many sides to consider here."
)


def score(task: tasks.WritingTask, first: str, second: str) -> RewardBreakdown:
    config = SUMMARY_REWARD if task.kind == "summary" else EXPANSION_REWARD
    return score_pair(first, second, task.source, task.key_points, config)


def hand_pair(task: tasks.WritingTask) -> tuple[str, str]:
    parts = ("concise", "detailed") if task.kind == "summary" else ("background", "method")
    return HAND[task.id][parts[0]], HAND[task.id][parts[1]]


# ----------------------------------------------------------------------------- doc examples


@pytest.mark.parametrize("module", [text, rewards, sections, agents, rules, writing_env])
def test_docstring_examples_hold(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_pure_reward_modules_import_no_env_framework() -> None:
    for module in (text, rewards, sections, rules, presets):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
                if node.module.startswith("mallm_envs"):
                    assert node.module.startswith("mallm_envs.envs.writing"), node.module
        assert not imported & {"pettingzoo", "gymnasium", "torch", "numpy"}, (module, imported)
        for name in ("base", "env", "summary_pair", "expand_pair", "agents"):
            assert f"mallm_envs.envs.writing.{name}" not in imported_modules(tree), (module, name)


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module an AST imports from (``from X import Y`` gives X)."""
    return {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }


# ----------------------------------------------------------------------------- the paper's levels


def test_structure_level_uses_the_token_window() -> None:
    eight = " ".join(["word"] * 8)
    assert rewards.structure_level(eight, eight, SUMMARY_REWARD)[0] == 0.5
    assert rewards.structure_level(" ".join(["w"] * 7), eight, SUMMARY_REWARD)[0] == 0.0
    assert rewards.structure_level(eight, " ".join(["w"] * 257), SUMMARY_REWARD)[0] == 0.0
    assert rewards.structure_level(eight, eight, EXPANSION_REWARD)[0] == 0.0  # needs 128


@pytest.mark.parametrize(
    "ratio, expected",
    [
        (1.0, 0.0),
        (1.1, 0.0),
        (1.35, 0.5),
        (1.6, 1.0),
        (3.2, 1.0),
        (4.1, 0.5),
        (5.0, 0.0),
        (6.0, 0.0),
    ],
)
def test_summary_length_ratio_follows_the_paper(ratio: float, expected: float) -> None:
    first = "a" * 200
    second = "b" * round(200 * ratio)
    assert rewards.length_ratio_level(first, second, SUMMARY_REWARD)[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "ratio, expected", [(0.7, 0.0), (0.9, 0.5), (1.0, 1.0), (1.3, 1.0), (1.4, 0.5), (1.6, 0.0)]
)
def test_expansion_length_ratio_follows_the_paper(ratio: float, expected: float) -> None:
    first = "a" * 1000
    second = "b" * round(1000 * ratio)
    assert rewards.length_ratio_level(first, second, EXPANSION_REWARD)[0] == pytest.approx(expected)


def test_whitespace_does_not_count_towards_length() -> None:
    short = "Tides follow the Moon."
    padded = short + " " * 500 + "\n" * 200
    assert rewards.length_ratio_level(short, padded, SUMMARY_REWARD)[1] == pytest.approx(1.0)


def test_vocabulary_level_ramps_and_gates() -> None:
    first = "red blue green pink gold grey"
    assert (
        rewards.vocabulary_level(first, first + " teal navy cyan lime mint sand", SUMMARY_REWARD)[0]
        == 0.5
    )
    assert rewards.vocabulary_level(first, first, SUMMARY_REWARD)[0] == 0.0
    assert rewards.vocabulary_level(first, first, EXPANSION_REWARD)[0] == 0.5


def test_transitions_match_whole_words_only() -> None:
    assert rewards.transition_categories("Also, the sun is hot.") == []  # "so" inside "also"
    found = rewards.transition_categories("Firstly, it rained; nevertheless, overall it was fine.")
    assert found == ["sequence", "summary", "concession"]


def test_a_failed_level_stops_the_sum_but_is_still_explained() -> None:
    task = SUMMARY_TASKS["fx-sum-tides"]
    concise, _ = hand_pair(task)
    result = score(task, concise, concise + " " + concise[:5])  # ratio ~1: level 2 fails
    assert result.passed_levels == 1
    assert result.components["gated"] == pytest.approx(0.5)
    assert "distinct content words" in result.explanations["vocabulary"]  # still measured
    assert result.measurements["length_ratio"] < 1.1
    assert result.components["gated"] == result.components["structure"]
    assert "only structure counts" in result.explanations["gated"]


def test_every_component_has_an_explanation() -> None:
    task = SUMMARY_TASKS["fx-sum-library"]
    result = score(task, *hand_pair(task))
    assert set(result.explanations) == set(result.components)
    assert all(isinstance(v, str) and len(v) > 15 for v in result.explanations.values())
    assert result.components["total"] == pytest.approx(result.total)
    assert len(result.summary_lines()) == len(result.components)


def test_config_is_validated_where_it_is_born() -> None:
    with pytest.raises(ValueError, match="length_window"):
        PairRewardConfig(length_window=(2.0, 1.0, 3.0, 4.0))
    with pytest.raises(ValueError, match="copy_free < copy_full"):
        PairRewardConfig(copy_free=0.9, copy_full=0.5)
    assert SUMMARY_REWARD.max_total == pytest.approx(4.0)
    assert EXPANSION_REWARD.max_total == pytest.approx(4.0)


def test_total_stays_in_range_on_odd_input() -> None:
    task = SUMMARY_TASKS["fx-sum-tides"]
    for first, second in [("", ""), ("x", ""), ("🙂" * 50, "数据 " * 40), ("\n\n", "... ;;; !!!")]:
        result = score(task, first, second)
        assert 0.0 <= result.total <= SUMMARY_REWARD.max_total
        assert all(math.isfinite(v) for v in result.components.values())


# ----------------------------------------------------------------------------- exploits


def summary_exploits(task: tasks.WritingTask) -> dict[str, tuple[str, str]]:
    concise, _ = hand_pair(task)
    source_sentences = text.sentences(task.text)
    keywords = list(dict.fromkeys(text.content_words(task.text)))
    return {
        # the detailed part is the concise one plus generic filler sentences
        "padded": (concise, concise + " " + GENERIC),
        # the detailed part is the concise one said three times
        "repeated": (concise, " ".join([concise] * 3)),
        # both parts are the document's own lead sentences
        "copied": (source_sentences[0], " ".join(source_sentences[:4])),
        # fluent, well-shaped text about something else
        "off_topic": (UNRELATED.split(". ")[0] + ".", UNRELATED),
        # the document's content words as a list (buys coverage and vocabulary)
        "keywords": (" ".join(keywords[:12]), " ".join(keywords[:40]) + " however"),
        # whitespace padding to reach the length ratio
        "whitespace": (concise, concise + " " * 600),
        "empty_detail": (concise, ""),
    }


def expansion_exploits(task: tasks.WritingTask) -> dict[str, tuple[str, str]]:
    background, method = hand_pair(task)
    first_sentence = text.sentences(background)[0]
    return {
        "padded": (background, " ".join(text.sentences(method)[:2]) + " " + (GENERIC + " ") * 3),
        "repeated": (background, " ".join([first_sentence] * 10)),
        "copied": (task.text, task.text),
        "method_repeats_background": (background, background),
        "off_topic": ((UNRELATED + " ") * 2, (UNRELATED + " ") * 2),
    }


@pytest.mark.parametrize("task_id", sorted(SUMMARY_TASKS))
def test_summary_exploits_score_clearly_below_a_hand_written_pair(task_id: str) -> None:
    task = SUMMARY_TASKS[task_id]
    hand = score(task, *hand_pair(task))
    assert hand.passed_levels == 4 and hand.total >= 3.3, hand.summary_lines()
    for name, (first, second) in summary_exploits(task).items():
        result = score(task, first, second)
        assert result.total <= 0.5 * hand.total, (name, result.total, result.summary_lines())


@pytest.mark.parametrize("task_id", sorted(EXPANSION_TASKS))
def test_expansion_exploits_score_clearly_below_a_hand_written_pair(task_id: str) -> None:
    task = EXPANSION_TASKS[task_id]
    hand = score(task, *hand_pair(task))
    assert hand.passed_levels == 4 and hand.total >= 3.3, hand.summary_lines()
    for name, (first, second) in expansion_exploits(task).items():
        result = score(task, first, second)
        assert result.total <= 0.5 * hand.total, (name, result.total, result.summary_lines())


def test_each_exploit_is_caught_by_the_term_meant_for_it() -> None:
    task = SUMMARY_TASKS["fx-sum-sourdough"]
    exploits = summary_exploits(task)
    assert score(task, *exploits["repeated"]).components["repetition_factor"] == 0.0
    assert score(task, *exploits["copied"]).components["copy_factor"] < 0.2
    assert score(task, *exploits["off_topic"]).components["topic_factor"] == 0.0
    assert score(task, *exploits["padded"]).components["topic_factor"] < 0.5
    assert score(task, *exploits["keywords"]).components["prose_factor"] == 0.0
    assert score(task, *exploits["whitespace"]).components["length_ratio"] == 0.0
    assert score(task, *exploits["empty_detail"]).components["gated"] == 0.0
    brief = EXPANSION_TASKS["fx-exp-irrigation"]
    echo = score(brief, *expansion_exploits(brief)["method_repeats_background"])
    assert echo.components["repetition_factor"] == 0.0
    assert "method repeating background" in echo.explanations["repetition_factor"]


def test_scripted_writer_scores_well_but_below_hand_written() -> None:
    for task in [*SUMMARY_TASKS.values(), *EXPANSION_TASKS.values()]:
        parts = ("concise", "detailed") if task.kind == "summary" else ("background", "method")
        scripted = score(task, *(agents.WRITERS[p](task.title, task.text) for p in parts))
        hand = score(task, *hand_pair(task))
        assert 1.5 <= scripted.total < hand.total, (task.id, scripted.total, hand.total)


def test_coverage_rewards_content_not_just_form() -> None:
    task = SUMMARY_TASKS["fx-sum-tides"]
    concise, detailed = hand_pair(task)
    vague = (
        "The Moon's pull shapes the sea along most shores, and the Sun and the coast change how "
        "strongly it shows."
    )
    good = score(task, concise, detailed)
    thin = score(
        task, concise, vague + " " + vague.replace("Moon's", "lunar").replace("sea", "water")
    )
    assert good.components["coverage"] > thin.components["coverage"] + 0.2
