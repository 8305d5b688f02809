"""MAGRPO: multi-agent group-relative policy optimization for cooperating LLM agents.

Liu, Liang, Lyu, Amato, "LLM Collaboration With Multi-Agent Reinforcement Learning",
arXiv 2508.04652. For each task every agent samples ``group_size`` (G) responses; response g
of every agent forms joint action g, which the environment scores with one team reward.
The advantage of joint action g is its return minus the group's mean return (the same for
every agent); each agent's loss is minus the advantage times the summed log-prob of its own
response, averaged over the group. No value model, no ratio, no clipping, no KL; one
optimizer per agent and one update per task.

Multi-turn: each joint action's feedback opens its own next turn (the env state is rebuilt by
replaying the seed and the action prefix), which samples G joint actions again; returns are
discounted Monte-Carlo estimates, r_t + gamma * mean(returns of the G children). The tree
holds up to G + G^2 + ... + G^turns joint actions: ``--branch-turns K`` branches only the
first K turns and continues each path with one sample (long-horizon text envs), and a tree
larger than ``--max-joint-actions`` is refused at start. An update whose advantages are all 0
(every joint action scored the same) has a zero gradient: it is skipped and logged as such.

Run (from a checkout)::

    python -m baselines.magrpo --env-id CommonWord-v0 --num-updates 200
    torchrun --nproc_per_node 2 -m baselines.magrpo --device cpu ...   # data parallel

Rewards always come from the environment; this file never computes one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

try:
    from baselines import common
except ImportError:  # `python baselines/x.py` (prefer `python -m baselines.x`)
    import common  # type: ignore[no-redef]

from mallm_envs.agents.llm import Generation, MultiAgentLM, SamplingConfig


@dataclass
class Args(common.PolicyArgs):
    # --- group (the sampling settings are in common.PolicyArgs) ---
    group_size: int = 4
    """G: responses sampled per agent and task (paper: 4)."""
    # --- objective ---
    baseline: Literal["mean", "none", "max", "loo"] = "mean"
    """Group baseline: mean (MAGRPO), none (REINFORCE), max (ReMax), loo (leave-one-out, RLOO)."""
    normalize_std: bool = False
    """Divide advantages by the group's standard deviation (the paper does not)."""
    advantage_clip: float = 10.0
    """Clamp advantages to [-clip, clip] (paper-era code: 10); 0 disables."""
    gamma: float = 0.9
    """Discount between turns (paper multi-turn: 0.9; 1.0 for coding)."""
    early_stop_reward: float | None = None
    """Do not expand a node's next turn when its mean reward reaches this value."""
    branch_turns: int = 0
    """Only the first this many turns branch into G joint actions per node; later turns
    continue each path with one sample (scored into the returns, not trained on). 0: every
    turn branches (the paper's tree, G^turns leaves). Makes long-horizon text envs trainable."""
    max_joint_actions: int = 10_000
    """Refuse to start when one task's tree could hold more joint actions than this."""
    # --- optimization ---
    learning_rate: float = 5e-6
    """AdamW learning rate (paper writing: 5e-6; coding: 1e-5)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 0.0
    """Clip each policy's gradient norm to this value; 0 disables (the paper does not clip)."""
    num_updates: int = 1000
    """Number of updates; each one is tasks_per_update tasks (1: the paper) per process."""
    seed: int = 0
    """Seeds adapter initialisation and the sampler."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group_size < 1:
            raise common.TrainerConfigError("--group-size must be >= 1")
        if self.group_size < 2 and self.baseline in ("mean", "loo", "max"):
            raise common.TrainerConfigError(f"baseline {self.baseline!r} needs --group-size >= 2")
        if not 0.0 <= self.gamma <= 1.0:
            raise common.TrainerConfigError("--gamma must be in [0, 1]")
        if self.num_updates < 1:
            raise common.TrainerConfigError("--num-updates must be >= 1")
        if self.learning_rate <= 0:
            raise common.TrainerConfigError("--learning-rate must be > 0")
        if self.advantage_clip < 0 or self.max_grad_norm < 0:
            raise common.TrainerConfigError("--advantage-clip and --max-grad-norm must be >= 0")
        if self.branch_turns < 0 or self.max_joint_actions < 1:
            raise common.TrainerConfigError(
                "--branch-turns must be >= 0 and --max-joint-actions >= 1"
            )

    def group_size_at(self, turn: int) -> int:
        """Joint actions sampled at a node of this turn: G while branching, then 1."""
        branching = self.branch_turns == 0 or turn < self.branch_turns
        return self.group_size if branching else 1


# --- the math ------------------------------------------------------------------------


def group_advantages(
    returns: torch.Tensor, baseline: str = "mean", normalize_std: bool = False, clip: float = 0.0
) -> torch.Tensor:
    """Advantages of G joint actions from their returns (shape [G]).

    >>> group_advantages(torch.tensor([1.0, 0.0, 0.0, 3.0])).tolist()
    [0.0, -1.0, -1.0, 2.0]
    """
    size = returns.numel()
    if baseline == "mean":
        advantages = returns - returns.mean()
    elif baseline == "none":
        advantages = returns.clone()
    elif baseline == "max":
        advantages = returns - returns.max()
    elif baseline == "loo":
        advantages = returns - (returns.sum() - returns) / max(size - 1, 1)
    else:
        raise ValueError(f"unknown baseline {baseline!r}")
    if normalize_std and size > 1:
        advantages = advantages / (returns.std() + 1e-6)
    if clip > 0:
        advantages = advantages.clamp(-clip, clip)
    return advantages


def loss_coefficients(advantages: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each sample's factor in the loss: minus its advantage times its weight."""
    return -(weights * advantages)


def policy_loss(
    advantages: torch.Tensor, logprobs: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Minus advantage times sequence log-prob, weighted (weights average over each group)."""
    return (loss_coefficients(advantages, weights) * logprobs).sum()


def tree_size(group_size: int, horizon: int, branch_turns: int = 0) -> int:
    """The most joint actions one task's tree can hold: G + G^2 + ... over the branching
    turns, then one per path and later turn.

    >>> tree_size(4, 2)
    20
    >>> tree_size(4, 400, branch_turns=1)  # 4, then 4 paths of 399 single turns
    1600
    """
    branching = horizon if branch_turns == 0 else min(branch_turns, horizon)
    total = sum(group_size ** (turn + 1) for turn in range(branching))
    return total + group_size**branching * (horizon - branching)


def check_tree_size(args: Args, horizon: int) -> None:
    """Refuse a tree that cannot fit, naming the --branch-turns that would."""
    size = tree_size(args.group_size, horizon, args.branch_turns)
    if size <= args.max_joint_actions:
        return
    fitting = [
        k
        for k in range(1, horizon + 1)
        if tree_size(args.group_size, horizon, k) <= args.max_joint_actions
    ]
    hint = (
        f"set --branch-turns {fitting[-1]} (branch the first turns, then one sample per turn)"
        if fitting
        else "lower --group-size or the env's max_turns (--env-kwargs)"
    )
    shown = f"{size:,}" if size < 10**12 else f"about 10^{len(str(size)) - 1}"
    raise common.TrainerConfigError(
        f"{args.env_id}: one task's tree could hold {shown} joint actions (group size "
        f"{args.group_size}, up to {horizon} turns, branch_turns {args.branch_turns}), more than "
        f"--max-joint-actions {args.max_joint_actions}; {hint}"
    )


# --- rollout: a tree of joint actions ------------------------------------------------


@dataclass
class Node:
    """One env state and the G joint actions sampled from it."""

    turn: int
    branch: common.Branch
    generations: dict[str, list[Generation]] = field(default_factory=dict)
    rewards: list[float] = field(default_factory=list)
    components: list[dict[str, float]] = field(default_factory=list)
    done: list[bool] = field(default_factory=list)
    children: list[Node | None] = field(default_factory=list)

    def returns(self, gamma: float) -> list[float]:
        """Discounted return of each joint action (child returns averaged)."""
        values = []
        for g, reward in enumerate(self.rewards):
            child = self.children[g]
            later = sum(child.returns(gamma)) / len(child.rewards) if child else 0.0
            values.append(reward + gamma * later)
        return values

    def component_totals(self) -> dict[str, float]:
        """Expected undiscounted sum of each reward component over the rest of the episode."""
        totals: dict[str, float] = {}
        for g, components in enumerate(self.components):
            child = self.children[g]
            merged = dict(components)
            for name, value in (child.component_totals() if child else {}).items():
                merged[name] = merged.get(name, 0.0) + value
            for name, value in merged.items():
                totals[name] = totals.get(name, 0.0) + value / len(self.components)
        return totals

    def nodes(self) -> list[Node]:
        found = [self]
        for child in self.children:
            if child is not None:
                found += child.nodes()
        return found


def rollout(lm: MultiAgentLM, args: Args, task_seed: int, generator: torch.Generator) -> Node:
    """Sample the joint-action tree of one task (see :func:`rollout_tasks`)."""
    return rollout_tasks(lm, args, [task_seed], generator)[0]


def rollout_tasks(
    lm: MultiAgentLM, args: Args, task_seeds: list[int], generator: torch.Generator
) -> list[Node]:
    """Sample the joint-action trees of some tasks together, breadth first (one batch per
    turn and wave for all of them)."""
    sampling = SamplingConfig(args.temperature, args.top_p, args.max_new_tokens, args.stop)
    roots = [
        Node(turn=0, branch=common.Branch(args.env_id, args.env_options, seed))
        for seed in task_seeds
    ]
    level = list(roots)
    while level:
        size = args.group_size_at(level[0].turn)
        envs = {id(node): [node.branch.env() for _ in range(size)] for node in level}
        actions: dict[int, list[list[tuple[str, str]]]] = {
            id(node): [[] for _ in range(size)] for node in level
        }
        for wave in common.waves(envs[id(level[0])][0]):
            prompts = {
                agent: [
                    lm.format_prompt(
                        common.cap_prompt(lm, env.observe(agent)["text"], args.max_prompt_tokens),
                        args.system_prompt,
                    )
                    for node in level
                    for env in envs[id(node)]
                ]
                for agent in wave
            }
            sampled = lm.generate(prompts, sampling=sampling, generator=generator, formatted=True)
            for agent in wave:
                flat = [group[0] for group in sampled[agent]]
                for index, node in enumerate(level):
                    node.generations[agent] = flat[index * size : (index + 1) * size]
            for node in level:
                for g, env in enumerate(envs[id(node)]):
                    for agent in wave:
                        if env.agent_selection != agent:
                            raise RuntimeError(f"{agent} acts out of turn in {args.env_id}")
                        text = node.generations[agent][g].text
                        env.step(text)
                        actions[id(node)][g].append((agent, text))
        next_level = []
        for node in level:
            for env in envs[id(node)]:
                first = env.possible_agents[0]
                node.rewards.append(float(env.rewards[first]))
                node.components.append(dict(env.infos[first].get("reward_components", {})))
                node.done.append(bool(env.terminations[first] or env.truncations[first]))
            stop_early = (
                args.early_stop_reward is not None
                and sum(node.rewards) / len(node.rewards) >= args.early_stop_reward
            )
            for g in range(size):
                if node.done[g] or stop_early:
                    node.children.append(None)
                else:
                    child = Node(turn=node.turn + 1, branch=node.branch.child(actions[id(node)][g]))
                    node.children.append(child)
                    next_level.append(child)
        level = next_level
    return roots


# --- training ------------------------------------------------------------------------


def update(
    lm: MultiAgentLM,
    optimizers: dict[str, torch.optim.Optimizer],
    roots: Node | list[Node],
    args: Args,
    dist: common.Distributed,
) -> dict[str, float]:
    """One MAGRPO update on the trees of one or more tasks; returns loss metrics."""
    roots = [roots] if isinstance(roots, Node) else roots
    # Nodes past --branch-turns hold one continuation sample: their rewards count in the
    # returns above them, but they have no group to compare with and are not trained on.
    nodes = [n for r in roots for n in r.nodes() if args.group_size_at(n.turn) == args.group_size]
    per_turn = {}
    for node in nodes:
        per_turn[node.turn] = per_turn.get(node.turn, 0) + 1
    metrics: dict[str, float] = {}
    batches: dict[str, dict[str, list]] = {
        agent: {"prompts": [], "responses": [], "advantages": [], "weights": []}
        for agent in lm.agents
    }
    absolute = []
    for node in nodes:
        returns = torch.tensor(node.returns(args.gamma), dtype=torch.float32)
        advantages = group_advantages(
            returns, args.baseline, args.normalize_std, args.advantage_clip
        )
        absolute += advantages.abs().tolist()
        weight = 1.0 / (args.group_size * per_turn[node.turn])  # mean over group and turn nodes
        for agent in lm.agents:
            for g, generation in enumerate(node.generations[agent]):
                batch = batches[agent]
                batch["prompts"].append(generation.prompt_ids)
                batch["responses"].append(generation.response_ids)
                batch["advantages"].append(float(advantages[g]))
                batch["weights"].append(weight)
    metrics["advantage_abs_mean"] = sum(absolute) / len(absolute)
    # A task whose joint actions all scored the same gives every sample advantage 0: the
    # gradient is exactly 0, so the forward and backward passes are skipped, and so is the
    # optimizer step when every process is in that case (AdamW would still move the weights).
    local_zero = not any(absolute)
    skipped = dist.all_true(local_zero)
    metrics["update_skipped"] = float(skipped)
    for policy in lm.policies:
        optimizer = optimizers[policy]
        optimizer.zero_grad(set_to_none=True)
        for agent in [a for a in lm.agents if lm.policy_name(a) == policy]:
            if local_zero:
                metrics[f"loss/{agent}"] = 0.0
                continue
            batch = batches[agent]
            advantages = torch.tensor(batch["advantages"], device=lm.device)
            weights = torch.tensor(batch["weights"], device=lm.device)
            # policy_loss is linear in the log-probs: its gradient is accumulated one prompt
            # group at a time (the group's prompt encoded once), which bounds memory.
            loss, _ = common.accumulate_policy_gradient(
                lm,
                args,
                agent,
                batch["prompts"],
                batch["responses"],
                coefficients=loss_coefficients(advantages, weights),
            )
            metrics[f"loss/{agent}"] = float(loss)
        if skipped:
            metrics[f"grad_norm/{policy}"] = 0.0
            continue
        parameters = lm.trainable_parameters(
            next(a for a in lm.agents if lm.policy_name(a) == policy)
        )
        dist.average_gradients(parameters)
        metrics[f"grad_norm/{policy}"] = common.clip_gradients(parameters, args.max_grad_norm)
        optimizer.step()
    return metrics


def rollout_metrics(roots: Node | list[Node], lm: MultiAgentLM) -> dict[str, float]:
    roots = [roots] if isinstance(roots, Node) else roots
    episode_returns = [value for root in roots for value in root.returns(1.0)]
    metrics = {
        "team_return": sum(episode_returns) / len(episode_returns),
        "team_return_max": max(episode_returns),
        "team_return_min": min(episode_returns),
    }
    for root in roots:
        for name, value in root.component_totals().items():
            key = f"reward/{name}"
            metrics[key] = metrics.get(key, 0.0) + value / len(roots)
    nodes = [node for root in roots for node in root.nodes()]
    metrics["joint_actions"] = float(sum(len(n.rewards) for n in nodes))
    total_tokens = 0
    for agent in lm.agents:
        counts = [g.num_tokens for n in nodes for g in n.generations[agent]]
        metrics[f"tokens_mean/{agent}"] = sum(counts) / len(counts)
        total_tokens += sum(counts)
    metrics["tokens_sum"] = float(total_tokens)
    prompts = [len(g.prompt_ids) for n in nodes for a in lm.agents for g in n.generations[a]]
    metrics["prompt_tokens_mean"] = sum(prompts) / len(prompts)
    return metrics


def train(
    args: Args, on_step: Callable[[int, dict[str, float]], None] | None = None
) -> list[dict[str, float]]:
    """Run MAGRPO; returns this process's metric rows. ``on_step(step, metrics)`` is called
    after each logged update (tests raise from it to simulate a kill)."""
    run = common.start_run(args, "magrpo", check=lambda horizon: check_tree_size(args, horizon))
    if run.finished:  # said so on stderr; the model is not even loaded
        run.dist.close()
        return []
    lm = common.build_model(args, run.agents, run.device, args.seed)
    optimizers = {
        policy: torch.optim.AdamW(
            lm.trainable_parameters(next(a for a in lm.agents if lm.policy_name(a) == policy)),
            lr=args.learning_rate,
            weight_decay=args.weight_decay,
        )
        for policy in lm.policies
    }
    if run.checkpoint is not None:
        for policy in lm.policies:
            lm.load_policy_state_dict(policy, run.checkpoint["policies"][policy])
            optimizers[policy].load_state_dict(run.checkpoint["optimizers"][policy])
    generator = run.generator(lm)
    run.begin(lm)
    try:
        for step in run.steps():
            began = time.perf_counter()
            roots = rollout_tasks(lm, args, run.task_seeds(step), generator)
            rolled = time.perf_counter()
            metrics = rollout_metrics(roots, lm)
            metrics.update(update(lm, optimizers, roots, args, dist=run.dist))
            metrics["learning_rate"] = optimizers[lm.policies[0]].param_groups[0]["lr"]
            finished = time.perf_counter()
            metrics = run.record(
                step,
                metrics,
                lm,
                samples={a: [g for r in roots for g in r.generations[a]] for a in lm.agents},
                completions=(roots[0].generations, roots[0].rewards),
                times=(began, rolled, finished),
            )
            if run.checkpoint_due(step):
                states = {"optimizers": {p: o.state_dict() for p, o in optimizers.items()}}
                run.save(step, lm, generator, states)
            if on_step is not None:
                on_step(step, metrics)
    finally:
        run.close()
    return run.finish(lm)


def main(argv: list[str] | None = None) -> None:
    common.cli_main(Args, train, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
