"""The environment contract, as code.

:func:`check_env` runs PettingZoo's own ``api_test``, ``parallel_api_test``, ``seed_test``
and ``parallel_seed_test`` on an env id, then this project's checks:

- observations stay inside the declared spaces in the Parallel API too, and ``state()``
  inside ``state_space``;
- ``reset(seed)`` clears all state: after a played episode it gives exactly what a fresh
  env gives;
- hostile text (empty, huge, NUL bytes, lone surrogates, control characters, unbalanced
  code fences) never raises; it gives an invalid-action outcome with a reason in infos;
- determinism: the same seed and actions give byte-identical transcripts, and replaying a
  transcript reproduces it;
- misuse of the API (step or observe before reset, step after the end, a non-text action)
  raises a typed :class:`~mallm_envs.core.errors.ApiUsageError`;
- the hooks beyond the API are there: a :class:`~mallm_envs.core.CoopTextEnv` subclass
  implements every family hook (:data:`TEXT_ENV_HOOKS`), a direct subclass of the turn
  machine those of :data:`COOP_ENV_HOOKS`; an env that lists official test
  tasks implements all of :class:`~mallm_envs.core.TaskEnv` (a data hash, task ids that
  ``reset(options={"task_id": ...})`` accepts); a registered id's leaderboard contract
  (``official_suite_size``, ``timing_sensitive``, ``time_limit_scale_kwarg``) holds.

Every failure raises :class:`ConformanceError` naming the check and what went wrong.

>>> from mallm_envs.testing import check_env
>>> check_env("CommonWord-v0")  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from mallm_envs.core.contract import TaskEnv
from mallm_envs.core.coop import CoopEnv
from mallm_envs.core.env import CoopTextEnv
from mallm_envs.core.episode import Episode, first_difference, run_episode
from mallm_envs.core.errors import ApiUsageError, MallmError
from mallm_envs.core.spaces import UnicodeText

TEXT_ENV_HOOKS = ("_reset_task", "_prompt", "_play_turn", "_state_text")
"""The methods a :class:`~mallm_envs.core.CoopTextEnv` subclass must implement."""
COOP_ENV_HOOKS = ("_reset_task", "_take_action", "_play_turn", "_observe", "_state")
"""The methods a direct subclass of the turn machine, :class:`mallm_envs.core.coop.CoopEnv`
(a numeric env such as ``KitchenNumeric``), must implement."""


class ConformanceError(AssertionError):
    """An environment broke the contract; the message says which check and how."""


def hostile_actions(max_chars: int) -> list[str]:
    """Strings every text env must take without raising."""
    return [
        "",
        " \n\t ",
        "x" * (max_chars + 1),
        "a\x00b",
        "\x00" * 64,
        "lone \ud800 surrogate",
        "\udfff",
        "\x1b[2J\x1b[31mred\x07",
        "```python\ndef f(:\n",
        "```\n```\n```",
        "🙂" * 50 + "数据" * 20,
        "\r\n" * 100,
        "{" * 500 + "]" * 500,
        "None",
        "print('hi')\n" * 50,
    ]


class _SequenceAgent:
    def __init__(self, actions: list[str]) -> None:
        self.actions = actions
        self.position = 0

    def act(self, observation: Any, info: Any) -> str:
        action = self.actions[self.position % len(self.actions)]
        self.position += 1
        return action


class _SpaceAgent:
    def __init__(self, space: Any, seed: int) -> None:
        self.space = space
        self.seed = seed

    def reset(self, seed: int | None = None) -> None:
        self.space.seed(self.seed if seed is None else seed)

    def act(self, observation: Any, info: Any) -> Any:
        return self.space.sample()


def _fail(check: str, message: str) -> ConformanceError:
    return ConformanceError(f"[{check}] {message}")


def check_env(
    env: str | Callable[[], Any],
    *,
    parallel_env: Callable[[], Any] | None = None,
    num_cycles: int = 200,
    seeds: tuple[int, ...] = (0, 1),
) -> None:
    """Check an env id (or AEC factory) against the whole contract; raise on the first failure.

    Args:
        env: a registered id, or a zero-argument factory returning a fresh AEC env.
        parallel_env: a factory of the Parallel env (default: ``make_parallel(id)`` for an
            id; for a factory, the core's adapter around a fresh AEC env).
        num_cycles: cycles for PettingZoo's tests.
        seeds: seeds for our determinism and reset checks.
    """
    from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

    if isinstance(env, str):
        from mallm_envs.registration import make, make_parallel

        env_id = env

        def make_aec() -> Any:
            return make(env_id)

        def make_par() -> Any:
            return make_parallel(env_id)
    else:
        make_aec = env

        def make_par() -> Any:
            from mallm_envs.core.parallel import TextParallelEnv

            return TextParallelEnv(make_aec())

    if parallel_env is not None:
        make_par = parallel_env

    if isinstance(env, str):
        _check_spec_contract(env)
    _check_hooks(make_aec)
    _check_task_env(make_aec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, run in (
            ("pettingzoo.api_test", lambda: api_test(make_aec(), num_cycles=num_cycles)),
            (
                "pettingzoo.parallel_api_test",
                lambda: parallel_api_test(make_par(), num_cycles=num_cycles),
            ),
            ("pettingzoo.seed_test", lambda: seed_test(make_aec, num_cycles=num_cycles)),
            (
                "pettingzoo.parallel_seed_test",
                lambda: parallel_seed_test(make_par, num_cycles=num_cycles),
            ),
        ):
            try:
                run()
            except Exception as err:
                raise _fail(name, f"{type(err).__name__}: {err}") from err

    _check_api_misuse(make_aec)
    _check_parallel_spaces(make_par, seeds)
    _check_reset_clears_state(make_aec, seeds)
    _check_determinism(make_aec, seeds)
    if isinstance(make_aec().action_space(make_aec().possible_agents[0]), UnicodeText):
        _check_hostile_actions(make_aec, make_par)


def _check_spec_contract(env_id: str) -> None:
    """The leaderboard contract on the spec holds for the env it builds."""
    from mallm_envs.registration import make, spec

    check = "spec-contract"
    env_spec = spec(env_id)
    if env_spec.timing_sensitive:
        keyword = env_spec.time_limit_scale_kwarg
        try:
            make(env_id, **{keyword: 4.0}).close()  # type: ignore[arg-type]
        except Exception as err:
            raise _fail(
                check,
                f"{env_id} is timing-sensitive but does not build with {keyword}=4.0 (the "
                f"verifier's lenient replay): {type(err).__name__}: {err}",
            ) from err
    built = make(env_id)
    base_class = type(built.unwrapped)
    built.close()
    # Declarations left on the class (from before the spec carried them) must agree.
    for name in ("timing_sensitive", "official_suite_size"):
        declared = getattr(base_class, name, None)
        if declared is not None and declared != getattr(env_spec, name):
            raise _fail(
                check,
                f"{base_class.__qualname__}.{name} is {declared!r} but the spec of {env_id} "
                f"says {getattr(env_spec, name)!r}; declare it in register() (the spec is what "
                "the leaderboard reads)",
            )


def _check_hooks(make_aec: Callable[[], Any]) -> None:
    check = "hooks"
    base = make_aec().unwrapped
    if isinstance(base, CoopTextEnv):
        hooks, kind = TEXT_ENV_HOOKS, "CoopTextEnv"
    elif isinstance(base, CoopEnv):
        hooks, kind = COOP_ENV_HOOKS, "CoopEnv"
    else:
        return
    for hook in hooks:
        defined = getattr(type(base), hook, None)
        unimplemented = (getattr(CoopEnv, hook, None), getattr(CoopTextEnv, hook, None))
        if defined is None or any(defined is base_hook for base_hook in unimplemented):
            raise _fail(
                check,
                f"{type(base).__qualname__} does not implement {hook}(), a hook every "
                f"{kind} subclass implements (see docs/adding-an-env.md)",
            )


def _check_task_env(make_aec: Callable[[], Any]) -> None:
    """An env that lists official test tasks implements all of :class:`TaskEnv`."""
    check = "task-env"
    env = make_aec()
    base = env.unwrapped
    name = type(base).__qualname__
    if not hasattr(base, "official_test_tasks"):
        return  # a seeded env: its suite is seeds 0..n-1
    if not callable(base.official_test_tasks):
        raise _fail(check, f"{name}.official_test_tasks must be a method returning task ids")
    data_hash = getattr(base, "data_hash", None)
    if not isinstance(data_hash, str) or not data_hash:
        raise _fail(
            check,
            f"{name} lists official test tasks but its data_hash is {data_hash!r}: implement "
            "the data_hash property of mallm_envs.core.TaskEnv (a hash of every task, "
            "recorded in each transcript so the leaderboard refuses other data)",
        )
    if not isinstance(base, TaskEnv):
        raise _fail(check, f"{name} does not implement mallm_envs.core.TaskEnv")
    tasks = base.official_test_tasks()
    if not isinstance(tasks, list) or not tasks:
        raise _fail(check, f"{name}.official_test_tasks() must return a non-empty list of ids")
    bad = [t for t in tasks if not isinstance(t, str) or not t]
    if bad:
        raise _fail(check, f"{name}.official_test_tasks() holds non-text ids, e.g. {bad[0]!r}")
    if len(set(tasks)) != len(tasks):
        raise _fail(check, f"{name}.official_test_tasks() lists a task more than once")
    env_spec = getattr(base, "spec", None)
    if env_spec is not None and env_spec.official_suite_size is not None:
        raise _fail(
            check,
            f"{env_spec.id} sets official_suite_size={env_spec.official_suite_size} but its "
            "suite is one episode per official test task; leave official_suite_size None",
        )
    for task_id in dict.fromkeys((tasks[0], tasks[-1])):
        try:
            env.reset(seed=0, options={"task_id": task_id})
        except Exception as err:
            raise _fail(
                check,
                f"{name}.reset(options={{'task_id': {task_id!r}}}) raised "
                f"{type(err).__name__}: {err}; every official test task must be playable",
            ) from err
    env.close()


def _random_agents(env: Any, seed: int) -> dict[str, Any]:
    return {
        a: _SpaceAgent(env.action_space(a), seed * 100 + i)
        for i, a in enumerate(env.possible_agents)
    }


def _check_api_misuse(make_aec: Callable[[], Any]) -> None:
    check = "api-misuse"
    env = make_aec()
    for what, call in (
        (
            "step() before reset()",
            lambda: env.step(env.action_space(env.possible_agents[0]).sample()),
        ),
        ("observe() before reset()", lambda: env.observe(env.possible_agents[0])),
    ):
        try:
            call()
        except ApiUsageError:
            pass
        except Exception as err:
            raise _fail(
                check, f"{what} raised {type(err).__name__} ({err}), not an ApiUsageError"
            ) from err
        else:
            raise _fail(check, f"{what} did not raise")
    env.reset(seed=0)
    if isinstance(env.action_space(env.agent_selection), UnicodeText):
        try:
            env.step(12345)
        except ApiUsageError:
            pass
        except Exception as err:
            raise _fail(
                check, f"a non-text action raised {type(err).__name__}, not an ApiUsageError"
            ) from err
        else:
            raise _fail(check, "a non-text action (an int) was accepted by a text env")
    env.reset(seed=0)
    agents = _random_agents(env, 0)
    for agent in env.agent_iter():
        _, _, terminated, truncated, _ = env.last()
        env.step(None if terminated or truncated else agents[agent].act(None, None))
    try:
        env.step(env.action_space(env.possible_agents[0]).sample())
    except ApiUsageError:
        pass
    except Exception as err:
        raise _fail(
            check, f"step() after the end raised {type(err).__name__}, not an ApiUsageError"
        ) from err
    else:
        raise _fail(check, "step() after the end of the episode did not raise")


def _check_parallel_spaces(make_par: Callable[[], Any], seeds: tuple[int, ...]) -> None:
    check = "parallel-spaces"
    for seed in seeds:
        env = make_par()
        observations, _ = env.reset(seed=seed)
        for index, agent in enumerate(env.possible_agents):
            env.action_space(agent).seed(seed * 10 + index)
        for _ in range(10_000):
            for agent, observation in observations.items():
                if not env.observation_space(agent).contains(observation):
                    raise _fail(
                        check,
                        f"seed {seed}: observation of {agent!r} is outside its space: {str(observation)[:300]}",
                    )
            state_space = getattr(env, "state_space", None)
            if state_space is not None and not state_space.contains(env.state()):
                raise _fail(check, f"seed {seed}: state() is outside state_space")
            if not env.agents:
                break
            actions = {a: env.action_space(a).sample() for a in env.agents}
            observations, *_ = env.step(actions)
        env.close()


def _first_view(env: Any, seed: int) -> Any:
    env.reset(seed=seed)
    state = env.state() if hasattr(env, "state") else None
    return (
        {a: env.observe(a) for a in env.agents},
        {a: env.infos[a] for a in env.agents},
        env.agent_selection,
        state,
        dict(env._cumulative_rewards) if hasattr(env, "_cumulative_rewards") else None,
    )


def _equal(a: Any, b: Any) -> bool:
    from gymnasium.utils.env_checker import data_equivalence

    return bool(data_equivalence(a, b))


def _check_reset_clears_state(make_aec: Callable[[], Any], seeds: tuple[int, ...]) -> None:
    check = "reset-clears-state"
    for seed in seeds:
        used = make_aec()
        run_episode(used, _random_agents(used, seed + 7), seed=seed + 1)
        run_episode(used, _random_agents(used, seed + 8), seed=seed + 2)
        fresh = make_aec()
        if not _equal(_first_view(used, seed), _first_view(fresh, seed)):
            raise _fail(
                check,
                f"reset(seed={seed}) after played episodes differs from a fresh env's reset(seed={seed})",
            )


def _check_determinism(make_aec: Callable[[], Any], seeds: tuple[int, ...]) -> None:
    check = "determinism"
    from mallm_envs.core.episode import replay

    for seed in seeds:
        first = run_episode(make_aec(), _random_agents(make_aec(), seed), seed=seed)
        second = run_episode(make_aec(), _random_agents(make_aec(), seed), seed=seed)
        if first.to_json() != second.to_json():
            where = first_difference(first, second)
            raise _fail(
                check, f"seed {seed}: two runs with the same seed and actions differ: {where}"
            )
        replayed = replay(Episode.from_json(first.to_json()), make_env=make_aec)
        where = first_difference(first, replayed)
        if where is not None:
            raise _fail(check, f"seed {seed}: replaying the transcript differs: {where}")


def _check_hostile_actions(make_aec: Callable[[], Any], make_par: Callable[[], Any]) -> None:
    check = "hostile-actions"
    env = make_aec()
    max_chars = env.action_space(env.possible_agents[0]).max_length
    actions = hostile_actions(max_chars)
    for offset in range(len(actions)):
        env = make_aec()
        rotated = actions[offset:] + actions[:offset]
        agents = {
            a: _SequenceAgent(rotated[i:] + rotated[:i]) for i, a in enumerate(env.possible_agents)
        }
        try:
            episode = run_episode(env, agents, seed=offset)
        except MallmError as err:
            raise _fail(check, f"hostile action raised {type(err).__name__}: {err}") from err
        except Exception as err:
            raise _fail(
                check, f"hostile action crashed the env: {type(err).__name__}: {err}"
            ) from err
        _require_reasons(episode, env, check)
    par = make_par()
    par.reset(seed=0)
    try:
        while par.agents:
            par.step(dict.fromkeys(par.agents, "\x00\ud800" + "z" * (max_chars + 5)))
    except Exception as err:
        raise _fail(
            check, f"Parallel API: hostile action raised {type(err).__name__}: {err}"
        ) from err


def _require_reasons(episode: Episode, env: Any, check: str) -> None:
    """Every action the space refuses must come back with an ``invalid_reason``."""
    pending: dict[str, str] = {}
    for step in episode.steps:
        info = step.info or {}
        if step.agent in pending and "invalid_reason" in info and info.get("turn", 0) > 0:
            if not info.get("invalid_reason"):
                raise _fail(
                    check,
                    f"{step.agent!r} submitted unusable text {pending[step.agent][:60]!r} "
                    "but its info has no invalid_reason",
                )
            del pending[step.agent]
        if step.action is not None and not env.action_space(step.agent).contains(step.action):
            pending[step.agent] = step.action
