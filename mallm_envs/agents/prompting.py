"""The paper's untrained prompting baselines, for any model and any cooperative text env.

Liu et al. (arXiv 2508.04652) compare MAGRPO-trained agents with four ways of prompting
models that were not trained together (all with the same prompts):

* ``"single"``: one model does every role's part in one response (the paper used a larger
  model here). It reads every role's observation and answers in sections ``### <role>``;
  each section becomes that role's action (a missing section is an empty answer, which
  the env treats as unusable).
* ``"parallel"``: each role answers its own observation independently (each request samples
  from its own generator, seeded from the role's seed and the request's number, so the roles of a simultaneous turn, and of several episodes
  played side by side, are generated in one batch with the draws each would get alone).
* ``"sequential"``: a pipeline; each role also sees the answers given earlier in the same
  turn by the roles before it (the env's sequential schedule does this itself; with the
  simultaneous schedule the team adds the partner's answer to the prompt).
* ``"discussion"``: one round of discussion; every role drafts an answer, then each sees the
  others' drafts and submits a revised answer.

:func:`prompting_team` returns one Agent per role; :func:`run_prompting_episode` plays an
episode through :func:`mallm_envs.core.run_episode`, so the transcript is the standard one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from mallm_envs.agents.base import shared_lock
from mallm_envs.agents.llm import (
    LLMConfigError,
    MultiAgentLM,
    SamplingConfig,
    request_generator,
)
from mallm_envs.core import Episode, run_episode

STRATEGIES = ("single", "parallel", "sequential", "discussion")

SINGLE_HEADER = (
    "You do the work of a whole team alone. Each role below has its own instructions. "
    "Write each role's answer in its own section that starts with a line '### <role>'."
)
REVISION_PROMPT = (
    "{observation}\n\nYour draft answer:\n{own}\n\n{others}\n\n"
    "Take your partners' drafts into account and give your final answer only."
)
PIPELINE_NOTE = "Earlier in this turn, {agent} answered:\n{answer}"


class _Team:
    """Shared state of one team: the model, the env it plays, and this turn's answers."""

    def __init__(
        self,
        strategy: str,
        lm: MultiAgentLM,
        env: Any,
        roles: Mapping[str, str],
        sampling: SamplingConfig,
        system_prompt: str | None,
        seed: int,
    ) -> None:
        self.strategy = strategy
        self.lm = lm
        self.env = env
        self.roles = dict(roles)
        self.sampling = sampling
        self.system_prompt = system_prompt
        self.seed = seed
        # Every request samples from its own generator (request_generator): the team's calls
        # are numbered from the team's seed; a parallel-strategy role's requests from the
        # role's own seed (set by its reset), so its answers do not depend on when its
        # partners, or other episodes' roles, are asked.
        self.calls = 0
        self.role_seeds = {role: seed + index for index, role in enumerate(self.roles)}
        self.role_requests = dict.fromkeys(self.roles, 0)
        self.answers: dict[str, str] = {}  # this turn's answers, filled by the first actor
        self.turn_key: tuple[int, int] | None = None
        self.episode = 0
        self.tokens_used = 0  # generated tokens, all roles together

    def reset(self, seed: int | None) -> None:
        if seed is not None:
            self.seed = int(seed)
        self.calls = 0
        self.episode += 1
        self.answers = {}
        self.turn_key = None

    def next_role_generator(self, role: str) -> Any:
        """The generator of ``role``'s next request (the parallel strategy)."""
        number = self.role_requests[role]
        self.role_requests[role] = number + 1
        return request_generator(self.role_seeds[role], role, number, self.lm.device)

    def _sample(self, prompts: Mapping[str, str]) -> dict[str, str]:
        """One response per role, batched; each role uses its model policy."""
        requests: dict[str, list[str]] = {}
        order: list[tuple[str, str]] = []
        with _model_lock(self.lm):  # an in-process model: one thread at a time
            for role, prompt in prompts.items():
                policy_agent = self.roles[role]
                requests.setdefault(policy_agent, []).append(
                    self.lm.format_prompt(prompt, self.system_prompt)
                )
                order.append((role, policy_agent))
            generators = [
                request_generator(self.seed, f"team/{role}", self.calls, self.lm.device)
                for policy_agent in requests
                for role, agent in order
                if agent == policy_agent
            ]
            self.calls += 1
            out = self.lm.generate(
                requests,
                sampling=self.sampling,
                generator=generators,
                formatted=True,
                batch_invariant=True,
            )
        taken: dict[str, int] = {}
        answers = {}
        for role, policy_agent in order:
            index = taken.get(policy_agent, 0)
            taken[policy_agent] = index + 1
            answers[role] = out[policy_agent][index][0].text
            self.tokens_used += out[policy_agent][index][0].num_tokens
        return answers

    def act(self, role: str, observation: Mapping[str, Any]) -> str:
        text = _text(observation)
        if self.strategy == "parallel":
            return sample_parallel([(self, role, text)])[0]
        if self.strategy == "sequential":
            if getattr(self.env.unwrapped, "schedule", "simultaneous") != "sequential":
                key = (self.episode, int(observation.get("turn", 0)))
                if key != self.turn_key:
                    self.turn_key, self.answers = key, {}
                notes = [PIPELINE_NOTE.format(agent=a, answer=t) for a, t in self.answers.items()]
                text = "\n\n".join([text, *notes])
                answer = self._sample({role: text})[role]
                self.answers[role] = answer
                return answer
            return self._sample({role: text})[role]
        key = (self.episode, int(observation.get("turn", 0)))
        if key != self.turn_key:  # the first role of a turn decides for the whole team
            self.turn_key = key
            observations = {a: self.env.observe(a)["text"] for a in self.env.possible_agents}
            observations[role] = text
            if self.strategy == "single":
                self.answers = self._single(observations)
            else:
                self.answers = self._discussion(observations)
        return self.answers.get(role, "")

    def _single(self, observations: Mapping[str, str]) -> dict[str, str]:
        parts = [SINGLE_HEADER]
        for role, text in observations.items():
            parts.append(f"### {role}\n{text}")
        parts.append("Now answer, one section per role: " + ", ".join(observations))
        first = next(iter(observations))
        reply = self._sample({first: "\n\n".join(parts)})[first]
        return split_sections(reply, list(observations))

    def _discussion(self, observations: Mapping[str, str]) -> dict[str, str]:
        drafts = self._sample(observations)
        revisions = {}
        for role, text in observations.items():
            others = "\n\n".join(
                f"Draft of your partner {other}:\n{draft}"
                for other, draft in drafts.items()
                if other != role
            )
            revisions[role] = REVISION_PROMPT.format(
                observation=text, own=drafts[role], others=others
            )
        return self._sample(revisions)


def sample_parallel(rows: Sequence[tuple[_Team, str, str]]) -> list[str]:
    """Answers of the parallel strategy for ``(team, role, observation text)`` rows, in one batch.

    The teams share one model and sampling settings; each row samples from its role's own
    generator, so its answer is the one that role would get alone.
    """
    lm = rows[0][0].lm
    with _model_lock(lm):
        prompts: dict[str, list[str]] = {}
        slots: list[tuple[str, int]] = []
        generators: dict[tuple[str, int], Any] = {}
        for team, role, text in rows:
            policy_agent = team.roles[role]
            column = prompts.setdefault(policy_agent, [])
            slots.append((policy_agent, len(column)))
            generators[slots[-1]] = team.next_role_generator(role)
            column.append(lm.format_prompt(text, team.system_prompt))
        ordered = [generators[(a, i)] for a, column in prompts.items() for i in range(len(column))]
        out = lm.generate(
            prompts,
            sampling=rows[0][0].sampling,
            generator=ordered,
            formatted=True,
            batch_invariant=True,
        )
    answers = []
    for (team, _role, _text), (policy_agent, index) in zip(rows, slots):
        generation = out[policy_agent][index][0]
        team.tokens_used += generation.num_tokens
        answers.append(generation.text)
    return answers


def _model_lock(lm: Any) -> Any:
    """The lock of an in-process model; none for models behind a server, whose requests are
    independent (so ``--concurrency`` keeps a server busy)."""
    return shared_lock(lm) if isinstance(lm, MultiAgentLM) else contextlib.nullcontext()


def split_sections(reply: str, roles: list[str]) -> dict[str, str]:
    """Cut a single-model reply into per-role answers at lines ``### <role>``.

    >>> split_sections("### a\\nx = 1\\n### b\\ny", ["a", "b"])
    {'a': 'x = 1', 'b': 'y'}
    """
    answers: dict[str, list[str]] = {}
    current: str | None = None
    for line in reply.splitlines():
        stripped = line.strip()
        if stripped.startswith("###") and stripped[3:].strip() in roles:
            current = stripped[3:].strip()
            answers.setdefault(current, [])
            continue
        if current is not None:
            answers[current].append(line)
    return {role: "\n".join(lines).strip() for role, lines in answers.items()}


def _text(observation: Mapping[str, Any]) -> str:
    text = observation.get("text") if isinstance(observation, Mapping) else observation
    if not isinstance(text, str):
        raise LLMConfigError(f"observation text must be a str, got {type(text).__name__}")
    return text


class PromptingAgent:
    """One role of a prompting team (the Agent protocol); built by :func:`prompting_team`."""

    def __init__(self, team: _Team, role: str) -> None:
        self.team = team
        self.role = role

    @property
    def tokens_used(self) -> int:
        """Tokens the team generated, reported once: by its first role (0 for the others)."""
        first = next(iter(self.team.roles))
        return self.team.tokens_used if self.role == first else 0

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> str:
        return self.team.act(self.role, observation)

    def act_batch(self, observations, infos) -> list[str]:  # type: ignore[no-untyped-def]
        return [self.act(o, i) for o, i in zip(observations, infos)]

    @property
    def batch_key(self) -> tuple[Any, ...] | None:
        """Parallel-strategy roles on one model can be answered in one batch (the other
        strategies read their partners' answers, so each role is asked at its turn)."""
        if self.team.strategy != "parallel":
            return None
        team = self.team
        return ("prompting-parallel", id(team.lm), team.sampling, team.system_prompt)

    @staticmethod
    def act_group(
        agents: Sequence[PromptingAgent],
        observations: Sequence[Mapping[str, Any]],
        infos: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Several parallel-strategy roles (of one team or several) in one batch, each
        answered as its own :meth:`act` would."""
        if len({agent.batch_key for agent in agents}) != 1 or None in {a.batch_key for a in agents}:
            raise LLMConfigError("act_group needs parallel-strategy agents of one batch key")
        return sample_parallel(
            [(agent.team, agent.role, _text(obs)) for agent, obs in zip(agents, observations)]
        )

    def reset(self, seed: int | None = None) -> None:
        # run_episode resets every role; the team is reset once, by its first role, and each
        # role seeds its own generator (the parallel strategy's).
        if self.role == self.team.env.possible_agents[0]:
            self.team.reset(seed)
        if seed is not None:
            self.team.role_seeds[self.role] = int(seed)
        self.team.role_requests[self.role] = 0

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "prompting",
            "strategy": self.team.strategy,
            "role": self.role,
            "policy": self.team.roles[self.role],
            "sampling": {
                "temperature": self.team.sampling.temperature,
                "top_p": self.team.sampling.top_p,
                "max_new_tokens": self.team.sampling.max_new_tokens,
                "stop": list(self.team.sampling.stop),
            },
            "system_prompt": self.team.system_prompt,
            **self.team.lm.describe(),
        }


def prompting_team(
    strategy: str,
    lm: MultiAgentLM,
    env: Any,
    *,
    roles: Mapping[str, str] | None = None,
    sampling: SamplingConfig | None = None,
    system_prompt: str | None = None,
    seed: int = 0,
) -> dict[str, PromptingAgent]:
    """One agent per env role, all driven by ``lm`` with the given strategy.

    Args:
        strategy: one of :data:`STRATEGIES`.
        lm: the model; a role uses the policy of the ``lm`` agent that ``roles`` names (by
            default the agent of the same name when ``lm`` has one, else its first agent).
        env: the AEC env the team will play (the single and discussion strategies read every
            role's observation from it).
    """
    if strategy not in STRATEGIES:
        raise LLMConfigError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if roles is None:
        roles = {a: (a if a in lm.agents else lm.agents[0]) for a in env.possible_agents}
    missing = [a for a in env.possible_agents if a not in roles]
    if missing:
        raise LLMConfigError(f"roles has no model agent for {missing}")
    for policy_agent in roles.values():
        lm.policy_name(policy_agent)
    team = _Team(strategy, lm, env, roles, sampling or SamplingConfig(), system_prompt, seed)
    return {role: PromptingAgent(team, role) for role in env.possible_agents}


def run_prompting_episode(
    env: Any,
    strategy: str,
    lm: MultiAgentLM,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    **team_options: Any,
) -> Episode:
    """Play one episode of ``env`` with a prompting team; returns the standard transcript."""
    team = prompting_team(strategy, lm, env, **team_options)
    return run_episode(env, team, seed=seed, options=options)
