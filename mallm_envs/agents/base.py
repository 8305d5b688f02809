"""The Agent protocol and the agents that need no model.

An agent turns an observation (``{"text": ..., "turn": ...}``) and its info into action
text. ``act_batch`` does the same for many observations at once (LLM agents override it to
batch generation); ``reset(seed)`` starts an episode; ``describe()`` says what the agent is,
for transcripts and leaderboards.
"""

from __future__ import annotations

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
