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


def test_spec_round_trips_through_json() -> None:
    for spec in registry.values():
        again = EnvSpec.from_json(spec.to_json())
        assert again == spec and hash(again) == hash(spec)
        assert json.loads(again.to_json()) == spec.to_dict()
    built = mallm_envs.make("CommonWord-v0", max_turns=3).spec
    assert EnvSpec.from_dict(built.to_dict()) == built


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
