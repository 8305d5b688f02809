"""The paper's untrained prompting baselines, for any model and any cooperative text env.

Liu et al. (arXiv 2508.04652) compare MAGRPO-trained agents with four ways of prompting
models that were not trained together (all with the same prompts):

* ``"single"``: one model does every role's part in one response (the paper used a larger
  model here). It reads every role's observation and answers in sections ``### <role>``;
  each section becomes that role's action (a missing section is an empty answer, which
  the env treats as unusable).
* ``"parallel"``: each role answers its own observation independently.
* ``"sequential"``: a pipeline; each role also sees the answers given earlier in the same
  turn by the roles before it (the env's sequential schedule does this itself; with the
  simultaneous schedule the team adds the partner's answer to the prompt).
* ``"discussion"``: one round of discussion; every role drafts an answer, then each sees the
  others' drafts and submits a revised answer.

:func:`prompting_team` returns one Agent per role; :func:`run_prompting_episode` plays an
episode through :func:`mallm_envs.core.run_episode`, so the transcript is the standard one.

Every strategy batches: a team's work for one request is a *plan* that asks the model for a
list of responses at a time (the discussion strategy twice: drafts, then revisions), and
:meth:`PromptingAgent.act_group` runs the plans of many requests in lockstep, each round of
asks in one ``generate`` call. Every response samples from its own generator (seeded from
the team's or role's seed, its name and its request number) and the model decodes
batch-invariant, so a response is the one it would be alone: episodes played side by side
(:func:`~mallm_envs.core.run_episodes`) have the transcripts they have one at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
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

    def _team_asks(self, prompts: Mapping[str, str]) -> list[_Ask]:
        """One ask per role: the team's next request, each role with its model policy."""
        asks = [
            _Ask(
                self,
                self.roles[role],
                self.lm.format_prompt(prompt, self.system_prompt),
                request_generator(self.seed, f"team/{role}", self.calls, self.lm.device),
            )
            for role, prompt in prompts.items()
        ]
        self.calls += 1
        return asks

    def plan(self, role: str, observation: Mapping[str, Any]) -> _Plan:
        """The team's work for ``role``'s action: yields lists of asks, receives their
        responses (in order), returns the action."""
        text = _text(observation)
        if self.strategy == "parallel":
            number = self.role_requests[role]
            self.role_requests[role] = number + 1
            generator = request_generator(self.role_seeds[role], role, number, self.lm.device)
            ask = _Ask(
                self, self.roles[role], self.lm.format_prompt(text, self.system_prompt), generator
            )
            (answer,) = yield [ask]
            return answer
        if self.strategy == "sequential":
            if getattr(self.env.unwrapped, "schedule", "simultaneous") != "sequential":
                key = (self.episode, int(observation.get("turn", 0)))
                if key != self.turn_key:
                    self.turn_key, self.answers = key, {}
                notes = [PIPELINE_NOTE.format(agent=a, answer=t) for a, t in self.answers.items()]
                (answer,) = yield self._team_asks({role: "\n\n".join([text, *notes])})
                self.answers[role] = answer
                return answer
            (answer,) = yield self._team_asks({role: text})
            return answer
        key = (self.episode, int(observation.get("turn", 0)))
        if key != self.turn_key:  # the first role of a turn decides for the whole team
            self.turn_key = key
            observations = {a: self.env.observe(a)["text"] for a in self.env.possible_agents}
            observations[role] = text
            if self.strategy == "single":
                self.answers = yield from self._single(observations)
            else:
                self.answers = yield from self._discussion(observations)
        return self.answers.get(role, "")

    def _single(self, observations: Mapping[str, str]) -> _Plan:
        parts = [SINGLE_HEADER]
        for role, text in observations.items():
            parts.append(f"### {role}\n{text}")
        parts.append("Now answer, one section per role: " + ", ".join(observations))
        first = next(iter(observations))
        (reply,) = yield self._team_asks({first: "\n\n".join(parts)})
        return split_sections(reply, list(observations))

    def _discussion(self, observations: Mapping[str, str]) -> _Plan:
        roles = list(observations)
        drafts = dict(zip(roles, (yield self._team_asks(observations))))
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
        return dict(zip(roles, (yield self._team_asks(revisions))))


@dataclass
class _Ask:
    """One response a plan needs: the team, its model policy, the formatted prompt and the
    request's own generator."""

    team: _Team
    policy: str
    prompt: str
    generator: Any


_Plan = Generator[list[_Ask], list[str], Any]
"""A team's work for one request (see :meth:`_Team.plan`)."""


def _answer(asks: Sequence[_Ask]) -> list[str]:
    """The responses to ``asks`` (teams on one model and sampling), in one ``generate``."""
    team = asks[0].team
    with _model_lock(team.lm):  # an in-process model: one thread at a time
        prompts: dict[str, list[str]] = {}
        slots: list[tuple[str, int]] = []
        for ask in asks:
            column = prompts.setdefault(ask.policy, [])
            slots.append((ask.policy, len(column)))
            column.append(ask.prompt)
        generators = {slot: ask.generator for slot, ask in zip(slots, asks)}
        out = team.lm.generate(
            prompts,
            sampling=team.sampling,
            generator=[
                generators[(a, i)] for a, column in prompts.items() for i in range(len(column))
            ],
            formatted=True,
            batch_invariant=True,
        )
    answers = []
    for ask, (policy, index) in zip(asks, slots):
        generation = out[policy][index][0]
        ask.team.tokens_used += generation.num_tokens
        answers.append(generation.text)
    return answers


def _in_order(plans: Sequence[_Plan]) -> _Plan:
    """One plan that runs ``plans`` one after another; returns their results."""
    results = []
    for plan in plans:
        results.append((yield from plan))
    return results


def run_plans(plans: Sequence[_Plan]) -> list[Any]:
    """Run plans in lockstep: each round, every unfinished plan's asks in one batch."""
    results: list[Any] = [None] * len(plans)
    pending: dict[int, list[_Ask]] = {}
    for index, plan in enumerate(plans):
        try:
            pending[index] = next(plan)
        except StopIteration as finished:
            results[index] = finished.value
    while pending:
        order = list(pending)
        answers = _answer([ask for index in order for ask in pending[index]])
        position = 0
        for index in order:
            count = len(pending[index])
            mine, position = answers[position : position + count], position + count
            try:
                pending[index] = plans[index].send(mine)
            except StopIteration as finished:
                results[index] = finished.value
                del pending[index]
    return results


def answer_group(rows: Sequence[tuple[_Team, str, Mapping[str, Any]]]) -> list[str]:
    """Actions for ``(team, role, observation)`` rows, batched across teams.

    A parallel-strategy row is its own plan; the rows of one team of another strategy run
    in their order (a role may read the answers its team gave earlier in the turn), beside
    the other teams' rows.
    """
    plans: list[_Plan] = []
    owners: list[list[int]] = []
    by_team: dict[int, int] = {}
    for position, (team, role, observation) in enumerate(rows):
        if team.strategy == "parallel" or id(team) not in by_team:
            by_team[id(team)] = len(plans)
            plans.append(team.plan(role, observation))
            owners.append([position])
        else:  # chain behind the team's earlier rows
            slot = by_team[id(team)]
            owners[slot].append(position)
    # Teams with several rows run them in order, as one plan.
    for slot, positions in enumerate(owners):
        if len(positions) > 1:
            plans[slot] = _in_order(
                [plans[slot]] + [rows[p][0].plan(rows[p][1], rows[p][2]) for p in positions[1:]]
            )
    results = run_plans(plans)
    actions: list[str] = [""] * len(rows)
    for slot, positions in enumerate(owners):
        values = results[slot] if len(positions) > 1 else [results[slot]]
        for position, value in zip(positions, values):
            actions[position] = value
    return actions


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
        return str(run_plans([self.team.plan(self.role, observation)])[0])

    def act_batch(self, observations, infos) -> list[str]:  # type: ignore[no-untyped-def]
        return [self.act(o, i) for o, i in zip(observations, infos)]

    @property
    def batch_key(self) -> tuple[Any, ...] | None:
        """Roles of teams on one model with the same sampling and system prompt are answered
        in one batch, whatever their strategy (see :meth:`act_group`)."""
        team = self.team
        return ("prompting", id(team.lm), team.sampling, team.system_prompt)

    @staticmethod
    def act_group(
        agents: Sequence[PromptingAgent],
        observations: Sequence[Mapping[str, Any]],
        infos: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Several roles (of one team or several) in one batch, each answered as its own
        :meth:`act` would (a team's roles in the order given)."""
        if len({agent.batch_key for agent in agents}) != 1:
            raise LLMConfigError("act_group needs prompting agents of one batch key")
        return answer_group(
            [(agent.team, agent.role, obs) for agent, obs in zip(agents, observations)]
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
