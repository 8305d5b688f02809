"""The Agent protocol and the agents that need no model.

An agent turns an observation (``{"text": ..., "turn": ...}``) and its info into action
text. ``act_batch`` does the same for many observations at once (LLM agents override it to
batch generation); ``reset(seed)`` starts an episode; ``describe()`` says what the agent is,
for transcripts and leaderboards.

Batching across agents (optional)
---------------------------------
Two agents of one simultaneous turn, or of several episodes played side by side, can share
one model call. An agent that allows this has a ``batch_key`` (hashable; agents with equal
keys and the same class can be answered together) and a static method
``act_group(agents, observations, infos) -> list[str]`` that answers all of them in one go,
each exactly as its own ``act`` would (same text, same random draws, same counters).
:func:`mallm_envs.core.run_episode` uses it; an agent without ``batch_key`` (or with
``None``) is always asked alone, at its turn, as before. An agent with a key promises that
its answer does not depend on when the other agents are asked (it shares no random
generator or other order-sensitive state with them).

Threads: ``mallm evaluate --concurrency N`` plays episodes in threads, each with agents of
its own. Agents that share a model in this process (``llm:``, ``prompting:`` and
``checkpoint:`` agents share one :class:`~mallm_envs.agents.llm.MultiAgentLM` per model)
take :func:`shared_lock` of that model around every use of it, so a model is never called
from two threads at once; the episodes' env work (grading code, scoring text) still overlaps.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from mallm_envs.core.spaces import UnicodeText


@runtime_checkable
class Agent(Protocol):
    """What every agent provides."""

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str: ...

    def act_batch(
        self, observations: Sequence[Mapping[str, Any]], infos: Sequence[Mapping[str, Any]]
    ) -> list[str]: ...

    def reset(self, seed: int | None = None) -> None: ...

    def describe(self) -> dict[str, Any]: ...


_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def shared_lock(resource: Any) -> threading.RLock:
    """The one lock of ``resource`` (a model shared by agents): hold it while using it.

    The same object always gets the same (re-entrant) lock; the lock goes with the object.

    >>> class Model: ...
    >>> model = Model()
    >>> shared_lock(model) is shared_lock(model)
    True
    """
    with _LOCKS_GUARD:
        lock = _LOCKS.get(resource)
        if lock is None:
            lock = _LOCKS[resource] = threading.RLock()
        return lock


class BaseAgent:
    """Convenience base: ``act_batch`` loops over ``act``; ``reset`` and ``describe`` are simple."""

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def act_batch(
        self, observations: Sequence[Mapping[str, Any]], infos: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        return [self.act(o, i) for o, i in zip(observations, infos)]

    def reset(self, seed: int | None = None) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"class": f"{type(self).__module__}:{type(self).__qualname__}"}


class RandomAgent(BaseAgent):
    """Realistic random text: words, code-like punctuation, newlines and non-ASCII.

    A sanity baseline and a fuzzer: every env must take whatever it produces.
    """

    def __init__(self, max_length: int = 400, seed: int | None = None) -> None:
        self.space = UnicodeText(max_length)
        self.space.seed(seed)
        self._seed = seed

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.space.seed(seed)

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        return self.space.sample()

    def describe(self) -> dict[str, Any]:
        return {"class": "random", "max_length": self.space.max_length}


class FixedAgent(BaseAgent):
    """Always answers with the same text (handy in tests and as a trivial baseline)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        return self.text

    def describe(self) -> dict[str, Any]:
        return {"class": "fixed", "text": self.text}
