"""The environment contract, run over every registered id, and shown to catch broken envs."""

from __future__ import annotations

import pytest

import mallm_envs
from mallm_envs.core import TextParallelEnv
from mallm_envs.testing import ConformanceError, check_env

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
