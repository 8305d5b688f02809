"""The writing v1 reward against cheap strategies, next to honest hand-written pairs.

Acceptance of issue 15, on the whole test split (26 tasks per task kind):

- no strategy of ``tests/test_writing_strategies.py`` (23 of them, built only from what a
  writer's observation holds) reaches 90% of the honest pairs' mean under v1;
- the honest pairs (10 per task, ``tests/fixtures/writing/hand_written_pairs.json``, keys
  ``sum-*`` and ``exp-*``, written from the bundled test documents by following the prompts'
  rules) keep at least the share of the maximum reward that they get under v0;
- hostile text (huge, invisible, bidi, combining marks, look-alikes, label floods) never
  crashes a v1 env and never makes a step slow.

The v0 side of the table (``test_v0_was_gameable_and_v1_is_not``) is marked slow: it
scores every strategy under both versions and prints the table of the report.
"""

from __future__ import annotations

import json
import math
import time
from functools import cache
from pathlib import Path

import pytest

import mallm_envs
from mallm_envs.core.errors import EnvArgumentError
from mallm_envs.envs.writing import env as writing_env
from mallm_envs.envs.writing import rewards, rules, sections, tasks
from tests.test_writing_strategies import STRATEGIES, ZERO_WIDTH

FIXTURES = Path(__file__).parent / "fixtures" / "writing"
HAND = json.loads((FIXTURES / "hand_written_pairs.json").read_text(encoding="utf-8"))
KINDS = {
    "summary": (rules.SUMMARY_RULES, rewards.SUMMARY_REWARD, ("concise", "detailed")),
    "expansion": (rules.EXPANSION_RULES, rewards.EXPANSION_REWARD, ("background", "method")),
}


def test_tasks(kind: str) -> list[tasks.WritingTask]:
    return [t for t in tasks.bundled_tasks(kind) if t.split == "test"]


test_tasks.__test__ = False  # a helper, not a test


def honest_pairs(kind: str) -> list[tuple[tasks.WritingTask, str, str]]:
    index = {t.id: t for t in tasks.bundled_tasks(kind)}
    parts = KINDS[kind][2]
    return [
        (index[task_id], pair[parts[0]], pair[parts[1]])
        for task_id, pair in HAND.items()
        if task_id in index
    ]


@cache
def honest_mean(kind: str, version: str) -> float:
    v1_rules, v0_config, _ = KINDS[kind]
    totals = []
    for task, first, second in honest_pairs(kind):
        if version == "v1":
            totals.append(
                rules.score_pair(first, second, task.source, task.key_points, v1_rules).total
            )
        else:
            totals.append(
                rewards.score_pair(first, second, task.source, task.key_points, v0_config).total
            )
    return sum(totals) / len(totals)


@cache
def strategy_mean(kind: str, name: str, version: str) -> float:
    v1_rules, v0_config, _ = KINDS[kind]
    strategy = STRATEGIES[name]
    totals = []
    for task in test_tasks(kind):
        first, second = strategy(task.title, task.text, kind)
        if version == "v1":
            totals.append(
                rules.score_pair(first, second, task.source, task.key_points, v1_rules).total
            )
        else:
            totals.append(
                rewards.score_pair(first, second, task.source, task.key_points, v0_config).total
            )
    return sum(totals) / len(totals)


# ----------------------------------------------------------------------------- acceptance


def test_the_suite_is_as_large_as_the_issue_asks() -> None:
    assert len(STRATEGIES) >= 15
    for kind in KINDS:
        assert len(honest_pairs(kind)) >= 10
        assert len(test_tasks(kind)) == 26


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_cheap_strategy_reaches_90_percent_of_honest_pairs_under_v1(kind: str) -> None:
    honest = honest_mean(kind, "v1")
    scores = {name: strategy_mean(kind, name, "v1") for name in STRATEGIES}
    too_good = {name: round(s / honest, 3) for name, s in scores.items() if s >= 0.9 * honest}
    assert not too_good, (kind, honest, too_good)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_honest_pairs_keep_their_share_of_the_maximum(kind: str) -> None:
    v0_share = honest_mean(kind, "v0") / KINDS[kind][1].max_total
    v1_share = honest_mean(kind, "v1") / rules.MAX_TOTAL
    assert v1_share >= v0_share, (kind, v0_share, v1_share)


def test_held_out_hand_written_pairs_score_well_under_v1() -> None:
    """The five pairs written for v0 on the fixture documents (never used to set v1's
    thresholds) pass every level and keep most of the maximum."""
    for kind, name in (("summary", "summary_docs.jsonl"), ("expansion", "expansion_briefs.jsonl")):
        v1_rules, _, parts = KINDS[kind]
        for task in tasks.file_tasks(str(FIXTURES / name), kind):
            pair = HAND[task.id]
            result = rules.score_pair(
                pair[parts[0]], pair[parts[1]], task.source, task.key_points, v1_rules
            )
            assert result.passed_levels == 4 and result.total >= 3.5, result.summary_lines()


@pytest.mark.slow
def test_v0_was_gameable_and_v1_is_not(capsys) -> None:
    lines = [
        "| strategy | summary v0 | summary v1 | expansion v0 | expansion v1 |",
        "|---|---|---|---|---|",
    ]
    rows = [
        ("honest pairs (mean)", {k: (honest_mean(k, "v0"), honest_mean(k, "v1")) for k in KINDS})
    ]
    for name in STRATEGIES:
        rows.append(
            (name, {k: (strategy_mean(k, name, "v0"), strategy_mean(k, name, "v1")) for k in KINDS})
        )
    for name, values in rows:
        cells = []
        for kind in ("summary", "expansion"):
            for version, value in zip(("v0", "v1"), values[kind]):
                share = value / honest_mean(kind, version)
                cells.append(f"{value:.2f} ({share:.0%})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    beaten_v0 = [
        name
        for name in STRATEGIES
        for kind in KINDS
        if strategy_mean(kind, name, "v0") >= 0.9 * honest_mean(kind, "v0")
    ]
    assert beaten_v0, "the v0 reward was expected to be gameable by some strategy"


# ----------------------------------------------------------------------------- each hole


def _score(kind: str, first: str, second: str, task: tasks.WritingTask) -> rules.PairScore:
    return rules.score_pair(first, second, task.source, task.key_points, KINDS[kind][0])


def test_each_exploit_is_caught_by_the_factor_meant_for_it() -> None:
    task = test_tasks("summary")[0]
    caught = {
        "word_salad": "fluency_factor",
        "filler_frames": "frame_factor",
        "filler_frames_made_up": "lexicon_factor",
        "extract_head_deleted": "novelty_factor",
        "shuffled_chunks": "novelty_factor",
        "zero_width_copy": "copy_factor",
        "cyrillic_copy": "script_factor",
        "partner_prefix": "cross_copy_factor",
        "partner_swapped": "cross_copy_factor",
        "frequent_word_list": "frame_factor",
    }
    for name, factor in caught.items():
        result = _score("summary", *STRATEGIES[name](task.title, task.text, "summary"), task)
        assert result.components[factor] < 0.5, (name, result.summary_lines())
    brief = test_tasks("expansion")[0]
    scripted = _score(
        "expansion", *STRATEGIES["key_phrase_frames"](brief.title, brief.text, "expansion"), brief
    )
    assert scripted.components["breadth_factor"] < 0.5, scripted.summary_lines()
    swapped = _score(
        "expansion", *STRATEGIES["partner_swapped"](brief.title, brief.text, "expansion"), brief
    )
    assert swapped.components["cross_copy_factor"] == 0.0


def test_transition_credit_is_capped() -> None:
    """Three categories earn the full transition credit; stuffing nine more earns nothing."""
    first = "Bees dance to tell each other where the flowers with food are found."
    three = (
        "Bees dance. First, a scout finds flowers. However, it cannot speak; therefore it "
        "dances the direction and distance to the hive."
    )
    twelve = (
        three
        + " "
        + " ".join(
            f"{phrase.capitalize()}, the dance matters."
            for phrase in (
                "moreover",
                "for example",
                "in other words",
                "indeed",
                "in summary",
                "similarly",
                "nevertheless",
                "otherwise",
                "meanwhile",
            )
        )
    )
    plain = rules.style_level(first, three, rules.SUMMARY_RULES)
    stuffed = rules.style_level(first, twelve, rules.SUMMARY_RULES)
    assert plain.reason.startswith("3 of 12") and stuffed.reason.startswith("12 of 12")
    assert stuffed.score == plain.score == rules.STYLE


def test_expansion_style_pays_complementary_parts_not_overlap() -> None:
    _, background, method = honest_pairs("expansion")[0]
    honest = rules.style_level(background, method, rules.EXPANSION_RULES)
    echo = rules.style_level(background, background, rules.EXPANSION_RULES)
    assert honest.score == pytest.approx(rules.STYLE)
    assert echo.score < 0.5


def test_coverage_is_not_collected_by_a_word_list() -> None:
    task = test_tasks("summary")[0]
    words = (
        " ".join(task.key_points) + " " + " ".join(rules.source_profile(task.source, 12).salient)
    )
    listed = _score("summary", words, (words + " ") * 2, task)
    assert listed.components["coverage"] == 0.0


# ----------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "expected", "removed", "mixed"),
    [
        ("co\u200bpy", "copy", 1, 0),
        ("\u202eevil\u202c text", "evil text", 2, 0),
        ("\ufb01ne \uff46ull", "fine full", 0, 0),
        ("cafe\u0301 a\u0301\u0301\u0301", "cafe a", 4, 0),
        ("p\u0430rtn\u0435r", "partner", 0, 1),
        ("\u0441\u043e\u0440\u0435", "cope", 0, 0),
        ("ok\x85ok", "okok", 1, 0),
    ],
)
def test_normalize(raw: str, expected: str, removed: int, mixed: int) -> None:
    result = rules.normalize(raw)
    assert (result.text, result.removed, result.mixed_words) == (expected, removed, mixed)


def test_look_alike_and_invisible_copies_measure_as_the_plain_copy() -> None:
    task = test_tasks("summary")[0]
    words = task.text.split()
    plain = " ".join(words[:40]), " ".join(words[:100])
    disguised = tuple(" ".join(w[:1] + ZERO_WIDTH + w[1:] for w in part.split()) for part in plain)
    a, b = _score("summary", *plain, task), _score("summary", *disguised, task)
    for name in ("copy_factor", "novelty_factor", "cross_copy_factor", "length_ratio"):
        assert a.components[name] == b.components[name], name


# ----------------------------------------------------------------------------- hostile text

HOSTILE = {
    "huge words": " ".join(f"w{i % 97}x" for i in range(2000))[:8000],
    "zero width": ZERO_WIDTH * 8000,
    "bidi": ("\u202eabc\u202c " * 1400)[:8000],
    "combining": "a" + "\u0301" * 7999,
    "combining words": ("a\u0301 " * 2666)[:8000],
    "look-alikes": ("p\u0430rtn\u0435r " * 1000)[:8000],
    "one word": "a" * 8000,
    "blank line": " " * 7999 + "x",
    "newlines": "\n" * 7999 + "x",
    "label flood": "CONCISE:\nDETAILED:\nBACKGROUND:\nMETHOD:\n" * 200,
    "full stops": ". " * 4000,
    "ligatures": "\ufb01" * 8000,
    "emoji": "\U0001f600" * 4000,
    "c1 controls": "ok\x85\x9b " * 1600,
}
V1_IDS = ("SummaryPair-v1", "ExpandPair-v1", "SummarySingle-v1", "ExpandSingle-v1")
#: A generous per-step ceiling for a loaded 2-core machine (v0's label parser took about a
#: second on the "blank line" text; a v1 step takes a few milliseconds).
STEP_CEILING_S = 0.15


@pytest.mark.parametrize("env_id", V1_IDS)
def test_hostile_text_never_crashes_nor_slows_a_step(env_id: str) -> None:
    env = mallm_envs.make(env_id)
    worst = 0.0
    for name, text in HOSTILE.items():
        env.reset(seed=0)
        for _ in list(env.agents):
            started = time.perf_counter()
            env.step(text)
            worst = max(worst, time.perf_counter() - started)
        for agent in env.possible_agents:
            reward = env.rewards[agent]
            assert math.isfinite(reward) and 0.0 <= reward <= rules.MAX_TOTAL, (name, reward)
    assert worst < STEP_CEILING_S, worst


def test_the_v1_label_parser_is_linear_and_agrees_with_v0() -> None:
    labels = ("concise", "detailed")
    answers = [
        "Here you go.\nCONCISE: Bees dance.\n**Detailed summary:**\nBees dance to share food.",
        "Detailed records show bees dance.",
        "## Concise\nx\n- Detailed - y",
        "concise: a\nconcise: b\ndetailed: c",
        "CONCISE:\n\nDETAILED: x",
        "  #  **Concise summary** :\thello\n\t__DETAILED__\nworld",
        "CONCISEX: a\nDETAILED: b",
        "> Concise — a\r\n> Detailed: b\r\n",
    ]
    for answer in answers:
        assert sections.parse_sections_linear(answer, labels) == sections.parse_sections(
            answer, labels
        ), answer
    for hostile in (" " * 8000, "#" + " \t" * 4000, "*" * 8000, "- " * 4000, "\n" * 8000):
        started = time.perf_counter()
        sections.parse_sections_linear(hostile + "\nCONCISE: a\nDETAILED: b", labels)
        assert time.perf_counter() - started < 0.05


def test_bidi_overrides_and_c1_controls_never_reach_the_partner() -> None:
    env = mallm_envs.make("SummaryPair-v1", schedule="sequential")
    env.reset(seed=0)
    env.step("A \u202eright-to-left\u202c claim\x85 with\u200b hidden\x9b marks.")
    prompt = env.observe("detailed")["text"]
    assert "A right-to-left claim with hidden marks." in prompt
    for char in ("\u202e", "\u202c", "\x85", "\x9b", "\u200b"):
        assert char not in prompt
    assert writing_env.safe_quote("\u2066x\u2069\x80") == "x"


# ----------------------------------------------------------------------------- the env


def test_every_v1_component_is_named_measured_and_explained() -> None:
    task, first, second = honest_pairs("summary")[0]
    env = mallm_envs.make("SummaryPair-v1")
    env.reset(seed=0, options={"task_id": task.id})
    env.step(first)
    env.step(second)
    info = env.infos["concise"]
    assert set(info["reward_explanation"]) == set(info["reward_components"])
    for name in info["reward_components"]:
        assert f"{name}_measure" in info["reward_measurements"]
    expected = rules.score_pair(first, second, task.source, task.key_points, rules.SUMMARY_RULES)
    assert env.rewards["concise"] == expected.total
    assert {"novelty_factor", "fluency_factor", "cross_copy_factor", "breadth_factor"} <= set(
        info["reward_components"]
    )


def test_the_v1_reward_is_a_pure_deterministic_function() -> None:
    task, first, second = honest_pairs("expansion")[3]
    a = rules.score_pair(first, second, task.source, task.key_points, rules.EXPANSION_RULES)
    rules.source_profile.cache_clear()
    b = rules.score_pair(first, second, task.source, task.key_points, rules.EXPANSION_RULES)
    assert a == b


def test_v1_presets_are_validated_where_they_are_born() -> None:
    with pytest.raises(ValueError, match="novelty_free < novelty_full"):
        rules.RewardRules(novelty_free=0.7, novelty_full=0.6)
    with pytest.raises(EnvArgumentError, match="task must be one of"):
        writing_env.WritingPairEnv(task="poetry")
    with pytest.raises(EnvArgumentError, match="no 'similarity' argument"):
        mallm_envs.make("SummaryPair-v1", similarity="minilm")
