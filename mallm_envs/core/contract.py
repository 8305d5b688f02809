"""The typed hooks an env implements beyond the PettingZoo API.

Most of the contract lives on the env's :class:`~mallm_envs.registration.EnvSpec` (how
long the official suite is, whether outcomes can depend on timing, how a lenient replay is
asked for), because the registry, not the env instance, is what the leaderboard trusts.
What only the env can say is declared here:

- :class:`TaskEnv`: an env whose episodes are drawn from bundled task data with a test
  split. The leaderboard's official suite plays each of ``official_test_tasks()`` once, with
  ``reset(seed=index, options={"task_id": task_id})``; ``data_hash`` is recorded in every
  transcript, so a submission made on other data is refused. An env without task data (a
  seeded puzzle, a kitchen layout) implements neither and is played on seeds ``0..n-1``.

:func:`mallm_envs.testing.check_env` verifies these hooks and names the one that is
missing.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TaskEnv(Protocol):
    """An env with bundled task data and an official test split.

    >>> import mallm_envs
    >>> env = mallm_envs.make("CodePair-v0")
    >>> isinstance(env.unwrapped, TaskEnv)
    True
    >>> isinstance(mallm_envs.make("CommonWord-v0").unwrapped, TaskEnv)  # seeds, no tasks
    False
    """

    @property
    def data_hash(self) -> str:
        """A short hash of every task the env can serve (all splits, tests included)."""
        ...

    def official_test_tasks(self) -> list[str]:
        """The ids of the test split, in order: one leaderboard episode each.

        Each id must be accepted by ``reset(options={"task_id": task_id})``.
        """
        ...
