"""The registry: ids, versions, typed errors, specs that round-trip."""

from __future__ import annotations

import json

import pytest

import mallm_envs
from mallm_envs.core.errors import (
    DuplicateEnvError,
    EnvArgumentError,
    EnvIdError,
    MallmError,
    UnknownEnvError,
    UnknownVersionError,
)
from mallm_envs.registration import EnvSpec, parse_env_id, register, registry


def test_parse_env_id() -> None:
    assert parse_env_id("CoopCode-v12") == ("CoopCode", 12)
    assert parse_env_id("CoopCode") == ("CoopCode", None)
    for bad in ("", "-v0", "Coop Code-v0", "Coop-vx", "1Env-v0"):
        with pytest.raises(EnvIdError):
            parse_env_id(bad)
    with pytest.raises(EnvIdError, match="str"):
        parse_env_id(3)  # type: ignore[arg-type]


def test_make_resolves_latest_version_and_records_spec() -> None:
    latest = max(mallm_envs.registry.versions("CommonWord"))
    env = mallm_envs.make("CommonWord")
    assert env.spec.id == f"CommonWord-v{latest}" == "CommonWord-v1"
    env = mallm_envs.make("CommonWord-v0", shuffle=True)
    assert env.spec.kwargs["shuffle"] is True
    assert env.spec.kwargs["list_size"] == 4  # registered defaults are kept


def test_make_parallel_gives_a_parallel_env() -> None:
    from pettingzoo import ParallelEnv

    env = mallm_envs.make_parallel("CommonWord-v0")
    assert isinstance(env, ParallelEnv)
    assert env.spec.id == "CommonWord-v0"


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(UnknownEnvError, match="did you mean 'CommonWord'"):
        mallm_envs.make("CommonWrd-v0")
    with pytest.raises(UnknownEnvError, match="did you mean 'CommonWord'"):
        mallm_envs.make("commonword")
    with pytest.raises(KeyError):  # also a KeyError for generic handlers
        mallm_envs.make("Nothing-v0")


def test_unknown_version_lists_existing_ones() -> None:
    with pytest.raises(UnknownVersionError, match="registered: CommonWord-v0"):
        mallm_envs.make("CommonWord-v7")


def test_bad_kwargs_say_which() -> None:
    with pytest.raises(EnvArgumentError, match=r"does not take 'colour'.*list_size"):
        mallm_envs.make("CommonWord-v0", colour="red")
    with pytest.raises(EnvArgumentError, match="list_size"):
        mallm_envs.make("CommonWord-v0", list_size=99)
    with pytest.raises(EnvArgumentError, match="JSON"):
        mallm_envs.make("CommonWord-v0", list_size=object())
    assert issubclass(EnvArgumentError, MallmError)


RECORDED_FIELDS = {
    "id",
    "entry_point",
    "kwargs",
    "parallel_entry_point",
    "description",
    "agents",
    "family",
    "scripted_agent",
}


def test_spec_round_trips_through_json() -> None:
    for spec in registry.values():
        again = EnvSpec.from_json(spec.to_json(contract=True))
        assert again == spec and hash(again) == hash(spec)
        assert json.loads(again.to_json(contract=True)) == spec.to_dict(contract=True)
        recorded = EnvSpec.from_json(spec.to_json())
        assert recorded.to_dict() == spec.to_dict()
    built = mallm_envs.make("CommonWord-v0", max_turns=3).spec
    assert EnvSpec.from_dict(built.to_dict()) == built


def test_recorded_spec_keeps_its_fields() -> None:
    """Every transcript records ``to_dict()``; the leaderboard contract fields stay out of it,
    so adding them changed no recorded transcript or submission."""
    for spec in registry.values():
        assert set(spec.to_dict()) == RECORDED_FIELDS
        assert set(spec.to_dict(contract=True)) == RECORDED_FIELDS | {
            "official_suite_size",
            "timing_sensitive",
            "time_limit_scale_kwarg",
        }


def test_leaderboard_contract_is_on_the_spec() -> None:
    for env_id, spec in registry.items():
        if spec.family == "code":
            assert spec.timing_sensitive and spec.time_limit_scale_kwarg == "time_limit_scale"
        else:
            assert not spec.timing_sensitive and spec.time_limit_scale_kwarg is None, env_id
        expected_size = 10 if spec.family == "kitchen" else None
        assert spec.official_suite_size == expected_size, env_id
    # The env builds with the lenient scale the verifier asks for.
    env = mallm_envs.make("CoopCode-v0", time_limit_scale=4.0)
    assert env.spec.timing_sensitive and env.unwrapped.time_limit_scale == 4.0


def test_leaderboard_contract_is_checked_at_registration() -> None:
    with pytest.raises(EnvArgumentError, match="time_limit_scale_kwarg"):
        EnvSpec(id="Timed-v0", entry_point="x:y", timing_sensitive=True)
    with pytest.raises(EnvArgumentError, match="registers it in kwargs"):
        EnvSpec(id="Timed-v0", entry_point="x:y", timing_sensitive=True, time_limit_scale_kwarg="s")
    with pytest.raises(EnvArgumentError, match="only for timing_sensitive"):
        EnvSpec(id="Timed-v0", entry_point="x:y", kwargs={"s": 1}, time_limit_scale_kwarg="s")
    for bad in (0, -3, True, 2.5, "10"):
        with pytest.raises(EnvArgumentError, match="official_suite_size"):
            EnvSpec(id="Seeded-v0", entry_point="x:y", official_suite_size=bad)  # type: ignore[arg-type]
    with pytest.raises(EnvArgumentError, match="timing_sensitive must be"):
        EnvSpec(id="Timed-v0", entry_point="x:y", timing_sensitive=1)  # type: ignore[arg-type]
    ok = EnvSpec(
        id="Timed-v0",
        entry_point="x:y",
        kwargs={"s": 1.0},
        timing_sensitive=True,
        time_limit_scale_kwarg="s",
    )
    assert ok != EnvSpec(id="Timed-v0", entry_point="x:y", kwargs={"s": 1.0})


def test_spec_is_frozen() -> None:
    spec = mallm_envs.spec("CommonWord-v0")
    with pytest.raises(AttributeError):
        spec.id = "Other-v0"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.kwargs["list_size"] = 3  # type: ignore[index]


def test_register_rejects_duplicates_and_unversioned_ids() -> None:
    with pytest.raises(DuplicateEnvError):
        register("CommonWord-v0", entry_point="mallm_envs.envs.toy.common_word:CommonWordEnv")
    with pytest.raises(EnvIdError, match="need a version"):
        EnvSpec(id="NoVersion", entry_point="x:y")


def test_registry_is_read_only_and_printable() -> None:
    assert "CommonWord-v0" in registry
    assert "CommonWord-v0" in repr(registry)
    with pytest.raises(TypeError):
        registry["X-v0"] = None  # type: ignore[index]


def test_replay_builds_the_recorded_env_from_the_registry() -> None:
    from mallm_envs.core import first_difference, run_episode
    from mallm_envs.core import replay as core_replay
    from mallm_envs.registration import make_scripted_agent

    env = mallm_envs.make("CommonWord-v0", max_turns=3, shuffle=True)
    agents = {a: make_scripted_agent(env, a) for a in env.possible_agents}
    episode = run_episode(env, agents, seed=4)
    # The convenience finds the env (and the recorded non-default kwargs) in the registry ...
    assert first_difference(episode, mallm_envs.replay(episode)) is None
    # ... the core's replay knows no registry: it is given the env to replay on.
    with pytest.raises(TypeError, match="make_env"):
        core_replay(episode)  # type: ignore[call-arg]
    rebuilt = core_replay(
        episode, lambda: mallm_envs.make("CommonWord-v0", max_turns=3, shuffle=True)
    )
    assert first_difference(episode, rebuilt) is None
    wrong = core_replay(episode, lambda: mallm_envs.make("CommonWord-v0", max_turns=3))
    assert first_difference(episode, wrong) is not None


def test_scripted_agents_live_in_scripted_modules_under_their_recorded_names() -> None:
    """Each family's scripted policies live in ``scripted.py``; the entry points recorded in
    specs and submissions (``...agents:Class``) still name the same classes."""
    import importlib

    from mallm_envs.registration import _load

    for spec in registry.values():
        if spec.scripted_agent is None or spec.family == "toy":
            continue
        module, _, name = spec.scripted_agent.partition(":")
        assert module == f"mallm_envs.envs.{spec.family}.agents", spec.id
        scripted = importlib.import_module(f"mallm_envs.envs.{spec.family}.scripted")
        assert _load(spec.scripted_agent) is getattr(scripted, name)
        assert getattr(scripted, name).__module__ == scripted.__name__
