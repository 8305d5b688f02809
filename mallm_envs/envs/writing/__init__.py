"""Collaborative writing: two writers (or one) produce complementary parts of one text.

Importing this module registers `SummaryPair-v0`, `ExpandPair-v0` and their single-writer
variants `SummarySingle-v0` and `ExpandSingle-v0` (reward: :mod:`.rewards`), and their v1
versions `SummaryPair-v1`, `ExpandPair-v1`, `SummarySingle-v1` and `ExpandSingle-v1`
(reward: :mod:`.rules`; one pair env and one single env in :mod:`.env`, parameterised by a
task preset of :mod:`.presets`). Each id's page is its env module's docstring.
"""

from mallm_envs.registration import register

register(
    id="SummaryPair-v0",
    entry_point="mallm_envs.envs.writing.summary_pair:SummaryPairEnv",
    kwargs={
        "data": "bundled",
        "split": "train",
        "data_limit": None,
        "similarity": "lexical",
        "max_turns": 1,
        "schedule": "simultaneous",
    },
    description="Two writers summarise one document, concisely and in detail, for one team reward.",
    agents=("concise", "detailed"),
    family="writing",
    scripted_agent="mallm_envs.envs.writing.agents:KeyPhraseWriter",
)

register(
    id="ExpandPair-v0",
    entry_point="mallm_envs.envs.writing.expand_pair:ExpandPairEnv",
    kwargs={
        "data": "bundled",
        "split": "train",
        "data_limit": None,
        "similarity": "lexical",
        "max_turns": 1,
        "schedule": "simultaneous",
    },
    description="Two writers expand a brief into background/motivation and method/implications.",
    agents=("background", "method"),
    family="writing",
    scripted_agent="mallm_envs.envs.writing.agents:KeyPhraseWriter",
)

register(
    id="SummarySingle-v0",
    entry_point="mallm_envs.envs.writing.summary_single:SummarySingleEnv",
    kwargs={
        "data": "bundled",
        "split": "train",
        "data_limit": None,
        "similarity": "lexical",
        "max_turns": 1,
        "schedule": "simultaneous",
    },
    description="One writer produces both summaries of SummaryPair (the single-model baseline).",
    agents=("writer",),
    family="writing",
    scripted_agent="mallm_envs.envs.writing.agents:KeyPhraseWriter",
)

register(
    id="ExpandSingle-v0",
    entry_point="mallm_envs.envs.writing.expand_single:ExpandSingleEnv",
    kwargs={
        "data": "bundled",
        "split": "train",
        "data_limit": None,
        "similarity": "lexical",
        "max_turns": 1,
        "schedule": "simultaneous",
    },
    description="One writer produces both parts of ExpandPair (the single-model baseline).",
    agents=("writer",),
    family="writing",
    scripted_agent="mallm_envs.envs.writing.agents:KeyPhraseWriter",
)

register(
    id="SummaryPair-v1",
    entry_point="mallm_envs.envs.writing.env:WritingPairEnv",
    kwargs={
        "task": "summary",
        "data": "bundled",
        "split": "train",
        "data_limit": None,
        "max_turns": 1,
        "schedule": "simultaneous",
    },
    description="Two writers summarise one document, concisely and in detail, for one team reward that text without meaning cannot win.",
    agents=("concise", "detailed"),
    family="writing",
    scripted_agent="mallm_envs.envs.writing.agents:KeyPhraseWriter",
)

register(
    id="SummarySingle-v1",
    entry_point="mallm_envs.envs.writing.env:WritingSingleEnv",
    kwargs={
        "task": "summary",
        "data": "bundled",
        "split": "train",
        "data_limit": None,
        "max_turns": 1,
        "schedule": "simultaneous",
    },
    description="One writer produces both summaries of SummaryPair-v1 (the single-model baseline).",
    agents=("writer",),
    family="writing",
    scripted_agent="mallm_envs.envs.writing.agents:KeyPhraseWriter",
)

register(
    id="ExpandPair-v1",
    entry_point="mallm_envs.envs.writing.env:WritingPairEnv",
    kwargs={
        "task": "expansion",
        "data": "bundled",
        "split": "train",
        "data_limit": None,
        "max_turns": 1,
        "schedule": "simultaneous",
    },
    description="Two writers expand a brief into background/motivation and method/implications; the v1 reward pays for meaning, fluency and faithfulness.",
    agents=("background", "method"),
    family="writing",
    scripted_agent="mallm_envs.envs.writing.agents:KeyPhraseWriter",
)

register(
    id="ExpandSingle-v1",
    entry_point="mallm_envs.envs.writing.env:WritingSingleEnv",
    kwargs={
        "task": "expansion",
        "data": "bundled",
        "split": "train",
        "data_limit": None,
        "max_turns": 1,
        "schedule": "simultaneous",
    },
    description="One writer produces both parts of ExpandPair-v1 (the single-model baseline).",
    agents=("writer",),
    family="writing",
    scripted_agent="mallm_envs.envs.writing.agents:KeyPhraseWriter",
)
