"""The environment contract, run over every registered id, and shown to catch broken envs."""

from __future__ import annotations

import pytest

import mallm_envs
import mallm_envs.core.errors
from mallm_envs.core import CoopTextEnv, TaskEnv, TextParallelEnv
from mallm_envs.core.coop import CoopEnv
from mallm_envs.envs.kitchen.env import KitchenNumericEnv
from mallm_envs.registration import register, registry
from mallm_envs.testing import COOP_ENV_HOOKS, TEXT_ENV_HOOKS, ConformanceError, check_env

from ._envs_for_tests import CrashOnNulEnv, GlobalRandomEnv, StaleStateEnv, TargetSumEnv


@pytest.mark.parametrize("env_id", list(mallm_envs.registry))
def test_registered_env_meets_the_contract(env_id: str) -> None:
    check_env(env_id)


@pytest.mark.parametrize("schedule", ["simultaneous", "sequential"])
def test_core_test_env_meets_the_contract(schedule: str) -> None:
    check_env(lambda: TargetSumEnv(schedule=schedule))
    check_env(lambda: TargetSumEnv(schedule=schedule, n_agents=3, max_turns=1))


def test_sequential_variant_of_every_text_env_meets_the_contract() -> None:
    for env_id, spec in mallm_envs.registry.items():
        if spec.kwargs.get("schedule") == "simultaneous":
            check_env(
                lambda env_id=env_id: mallm_envs.make(env_id, schedule="sequential"),
                parallel_env=lambda env_id=env_id: mallm_envs.make_parallel(
                    env_id, schedule="sequential"
                ),
            )


@pytest.mark.parametrize(
    "factory, check, message",
    [
        (GlobalRandomEnv, "pettingzoo.seed_test", "Incorrect observation"),
        (CrashOnNulEnv, "hostile-actions", "embedded null byte"),
        (StaleStateEnv, "reset-clears-state", "differs from a fresh env"),
    ],
)
def test_broken_envs_fail_with_a_clear_message(factory, check: str, message: str) -> None:
    with pytest.raises(ConformanceError) as caught:
        check_env(factory, parallel_env=lambda: TextParallelEnv(factory()))
    text = str(caught.value)
    assert text.startswith(f"[{check}]"), text
    assert message in text, text


def test_assert_instead_of_typed_error_is_caught() -> None:
    class AssertingEnv(TargetSumEnv):
        def step(self, action):
            assert getattr(self, "_has_reset", False), "reset first"
            super().step(action)

    with pytest.raises(
        ConformanceError, match=r"\[api-misuse\] step\(\) before reset\(\) raised AssertionError"
    ):
        check_env(AssertingEnv)


# --------------------------------------------------------------------------- the hooks


class _TaskTargetEnv(TargetSumEnv):
    """A complete task env: the tasks are targets, ``reset(options={"task_id": ...})``."""

    TASKS = {"t-three": 3, "t-seven": 7}

    @property
    def data_hash(self) -> str:
        return "0123456789abcdef"

    def official_test_tasks(self) -> list[str]:
        return list(self.TASKS)

    def _reset_task(self, rng, options) -> None:
        task_id = options.get("task_id")
        if task_id is None:
            super()._reset_task(rng, options)
        elif task_id in self.TASKS:
            self.target = self.TASKS[task_id]
        else:
            raise mallm_envs.core.errors.EnvArgumentError(f"unknown task {task_id!r}")


class _NoHashTaskEnv(_TaskTargetEnv):
    data_hash = None  # type: ignore[assignment]  # the base class's "no task data"


class _UnplayableTaskEnv(_TaskTargetEnv):
    def official_test_tasks(self) -> list[str]:
        return ["t-three", "t-missing"]


class _RepeatedTaskEnv(_TaskTargetEnv):
    def official_test_tasks(self) -> list[str]:
        return ["t-three", "t-three"]


class _NoTurnEnv(TargetSumEnv):
    _play_turn = CoopTextEnv._play_turn  # the hook left unimplemented


class _NoStateNumericEnv(KitchenNumericEnv):
    _state = CoopEnv._state  # the hook left unimplemented


def test_text_env_hooks_name_the_core_hooks() -> None:
    for hook in TEXT_ENV_HOOKS:
        assert callable(getattr(CoopTextEnv, hook, None)), hook
    for hook in COOP_ENV_HOOKS:
        assert callable(getattr(CoopEnv, hook, None)), hook


def test_a_complete_task_env_meets_the_contract() -> None:
    assert isinstance(_TaskTargetEnv(), TaskEnv)
    assert not isinstance(TargetSumEnv(), TaskEnv)
    check_env(_TaskTargetEnv)


@pytest.mark.parametrize(
    "factory, check, message",
    [
        (_NoTurnEnv, "hooks", "does not implement _play_turn()"),
        (_NoStateNumericEnv, "hooks", "does not implement _state(), a hook every CoopEnv"),
        (_NoHashTaskEnv, "task-env", "implement the data_hash property"),
        (_UnplayableTaskEnv, "task-env", "'t-missing'"),
        (_RepeatedTaskEnv, "task-env", "more than once"),
    ],
)
def test_a_missing_hook_is_named(factory, check: str, message: str) -> None:
    with pytest.raises(ConformanceError) as caught:
        check_env(factory)
    text = str(caught.value)
    assert text.startswith(f"[{check}]"), text
    assert message in text, text


class _StrictScaleEnv(TargetSumEnv):
    """Takes a time-limit scale but refuses the verifier's lenient one."""

    def __init__(self, *, scale: float = 1.0, **kwargs) -> None:
        if scale > 2:
            raise mallm_envs.core.errors.EnvArgumentError("scale must be at most 2")
        super().__init__(**kwargs)


class _ClassSaysTimingEnv(TargetSumEnv):
    timing_sensitive = True


@pytest.mark.parametrize(
    "entry_point, fields, message",
    [
        (
            "_StrictScaleEnv",
            {"kwargs": {"scale": 1.0}, "timing_sensitive": True, "time_limit_scale_kwarg": "scale"},
            "does not build with scale=4.0",
        ),
        ("_ClassSaysTimingEnv", {}, "_ClassSaysTimingEnv.timing_sensitive is True"),
        ("_TaskTargetEnv", {"official_suite_size": 5}, "leave official_suite_size None"),
    ],
)
def test_a_broken_spec_contract_is_named(entry_point: str, fields: dict, message: str) -> None:
    env_id = "ContractProbe-v0"
    register(env_id, entry_point=f"{__name__}:{entry_point}", **fields)
    try:
        with pytest.raises(ConformanceError, match=r"^\[(spec-contract|task-env)\]") as caught:
            check_env(env_id)
        assert message in str(caught.value), str(caught.value)
    finally:
        registry._specs.pop(env_id)


# --------------------------------------------------------------------------- the doc page

PAGE_SECTIONS = [
    "Description",
    "Observation",
    "Actions and invalid actions",
    "Rewards",
    "Episode end",
    "Arguments",
    "Version history",
]


@pytest.mark.parametrize(
    "module", sorted({spec.entry_point.partition(":")[0] for spec in mallm_envs.registry.values()})
)
def test_env_page_has_the_sections_in_one_heading_style(module: str) -> None:
    """The docstring is the env's doc page: its sections, in order, each a heading
    underlined with dashes (as the numpydoc style writes them; Markdown renders it as a
    second-level heading)."""
    import importlib
    import re

    doc = importlib.import_module(module).__doc__ or ""
    underlined = re.findall(r"^([^|\s].*)\n(-{3,})[ \t]*$", doc, flags=re.M)
    assert [title for title, _ in underlined] == PAGE_SECTIONS, underlined
    assert all(len(line) == len(title) for title, line in underlined), underlined
    other = re.findall(r"^#+ .*$|^[^|\s].*\n[=~^]{3,}[ \t]*$", doc, flags=re.M)
    assert not other, f"{module}: headings in another style {other}"
