"""Multi-agent actor-critic for cooperating LLM agents: one shared critic, or one per agent.

Decentralized LLM actors (each acts on its own observation) trained with advantages from a
critic, following the CoLLM-CC / CoLLM-DC comparison of arXiv 2601.21972:

* ``--critic shared`` (the default; MAAC / CoLLM-CC): one centralized critic V(s) reads the
  env's global view ``env.state()`` (centralized training, decentralized execution);
* ``--critic independent`` (IAC / CoLLM-DC, for contrast): each agent has its own critic
  V_i(o_i) that reads only that agent's observation.

Each update samples ``rollouts`` episodes of one task (every agent answers once per turn;
no branching), scores every turn's state with the critic, and computes advantages over turns
with GAE: delta_t = r_t + gamma V(s_t+1) - V(s_t), A_t = delta_t + gamma lambda A_t+1 (the
value after the last turn is 0). Each actor's loss is minus its advantage times the summed
log-prob of its response; the critic regresses on A_t + V(s_t). The critic is a small
causal LM (the tiny model by default) with a linear value head on its last hidden state.

Run (from a checkout)::

    python -m baselines.maac --env-id CommonWord-v0 --num-updates 200
    python -m baselines.maac --critic independent ...        # IAC
    torchrun --nproc_per_node 2 -m baselines.maac ...

Rewards always come from the environment; this file never computes one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

try:
    from baselines import common
except ImportError:  # `python baselines/x.py` (prefer `python -m baselines.x`)
    import common  # type: ignore[no-redef]

from mallm_envs.agents.llm import (
    Generation,
    MultiAgentLM,
    SamplingConfig,
    load_causal_lm,
)


@dataclass
class Args(common.PolicyArgs):
    # --- critic ---
    critic: Literal["shared", "independent"] = "shared"
    """'shared': one centralized critic on env.state(); 'independent': one per agent on its observation (IAC)."""
    critic_model: str = "tiny"
    """Critic backbone: a causal LM like ``model`` (its last hidden state feeds a value head)."""
    critic_max_tokens: int = 512
    """The critic reads at most this many tokens (the end of the text)."""
    critic_learning_rate: float = 1e-4
    """AdamW learning rate of the critic(s)."""
    critic_adapter: Literal["full", "lora"] = "full"
    """'full': every critic weight is trained; 'lora': the critic's backbone is frozen and a
    LoRA adapter (the actors' --lora-rank, --lora-alpha, --lora-targets) and the value head
    are trained: no optimizer state for the backbone, and a checkpoint of a few MB."""
    # --- rollouts ---
    rollouts: int = 4
    """Episodes sampled per task and update."""
    # --- objective ---
    gamma: float = 0.9
    """Discount between turns."""
    gae_lambda: float = 0.95
    """GAE lambda (1: Monte-Carlo returns minus V; 0: one-step TD)."""
    advantage_norm: Literal["none", "center", "standardize"] = "none"
    """Per agent and update, over the batch: 'center' subtracts the mean (the critic then
    only ranks a task's rollouts, as a group baseline does), 'standardize' also divides by the
    standard deviation."""
    advantage_clip: float = 10.0
    """Clamp advantages to [-clip, clip]; 0 disables."""
    # --- optimization ---
    learning_rate: float = 5e-6
    """AdamW learning rate of the actors."""
    max_grad_norm: float = 0.0
    """Clip each model's gradient norm to this value; 0 disables."""
    num_updates: int = 1000
    """Number of updates; each one is tasks_per_update tasks per process."""
    seed: int = 0
    """Seeds adapter and value-head initialisation and the sampler."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rollouts < 1:
            raise common.TrainerConfigError("--rollouts must be >= 1")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise common.TrainerConfigError("--gamma and --gae-lambda must be in [0, 1]")
        if self.num_updates < 1:
            raise common.TrainerConfigError("--num-updates must be >= 1")
        if self.learning_rate <= 0 or self.critic_learning_rate <= 0:
            raise common.TrainerConfigError("learning rates must be > 0")
        if self.critic_max_tokens < 8:
            raise common.TrainerConfigError("--critic-max-tokens must be >= 8")
        if self.advantage_clip < 0 or self.max_grad_norm < 0:
            raise common.TrainerConfigError("--advantage-clip and --max-grad-norm must be >= 0")


# --- the critic ----------------------------------------------------------------------


class ValueModel(torch.nn.Module):
    """A causal LM's backbone with a linear value head on the last token's hidden state."""

    def __init__(self, network: Any, tokenizer: Any, max_tokens: int) -> None:
        super().__init__()
        prefix = getattr(network, "base_model_prefix", "model")
        self.backbone = getattr(network, prefix, network)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.head = torch.nn.Linear(network.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.float()

    def forward(self, texts: list[str]) -> torch.Tensor:
        """V of each text. A text listed several times (the rollouts of one task share their
        first state) runs through the backbone once; its value is repeated, and the gradient
        of the repeats sums into that one pass, as it would over separate passes."""
        distinct = list(dict.fromkeys(texts))
        if len(distinct) == len(texts):
            return self._values(texts)
        where = {text: index for index, text in enumerate(distinct)}
        index = torch.tensor([where[text] for text in texts], device=self.head.weight.device)
        return self._values(distinct).index_select(0, index)

    def _values(self, texts: list[str]) -> torch.Tensor:
        device = self.head.weight.device
        rows = []
        for text in texts:
            text = text.encode("utf-8", "replace").decode("utf-8")
            ids = self.tokenizer(text, add_special_tokens=True)["input_ids"][-self.max_tokens :]
            rows.append(ids or [self.tokenizer.pad_token_id])
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for index, ids in enumerate(rows):
            input_ids[index, length - len(ids) :] = torch.tensor(ids)
            mask[index, length - len(ids) :] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=mask, position_ids=positions
        ).last_hidden_state
        return self.head(hidden[:, -1, :].float()).squeeze(-1)


def build_critics(args: Args, agents: list[str], device: str) -> dict[str, ValueModel]:
    """One critic named 'shared', or one per agent (IAC); initialised from ``args.seed``."""
    names = ["shared"] if args.critic == "shared" else list(agents)
    critics = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed + 1)
        for name in names:
            network, tokenizer = load_causal_lm(
                args.critic_model,
                allow_download=args.allow_download,
                device=device,
                tiny_seed=args.tiny_seed,
            )
            if args.critic_adapter == "lora":
                network = add_lora(network, args)
            critic = ValueModel(network, tokenizer, args.critic_max_tokens)
            critic.train()
            critics[name] = critic.to(device)
    return critics


def add_lora(network: Any, args: Args) -> Any:
    """``network`` with LoRA layers injected in place and only those trainable."""
    from peft import inject_adapter_in_model

    config = common.lora_settings(args).peft_config()
    network = inject_adapter_in_model(config, network)
    for name, parameter in network.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return network


def critic_state_dict(critic: ValueModel) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps of a critic, on the CPU: all of a fully trained one; only the
    trained tensors (LoRA and value head) of a LoRA critic, whose frozen backbone is the
    model it was built from."""
    trained = {name for name, p in critic.named_parameters() if p.requires_grad}
    full = all(p.requires_grad for p in critic.parameters())
    return {
        key: value.detach().cpu().clone()
        for key, value in critic.state_dict().items()
        if full or key in trained
    }


def load_critic_state_dict(critic: ValueModel, state: Mapping[str, torch.Tensor]) -> None:
    """Restore :func:`critic_state_dict`'s tensors; refuses a state that lacks a trained
    tensor or holds one this critic does not have (a full critic's state into a LoRA one)."""
    missing, unexpected = critic.load_state_dict(dict(state), strict=False)
    trained = {name for name, p in critic.named_parameters() if p.requires_grad}
    lacking = sorted(set(missing) & trained)
    if unexpected or lacking:
        raise common.TrainerConfigError(
            "the checkpoint's critic does not fit this critic "
            f"(unexpected: {sorted(unexpected)[:3]}, missing: {lacking[:3]})"
        )


# --- the math ------------------------------------------------------------------------


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """Generalized advantage estimates over turns, for one trajectory (shapes [T]).

    ``values[t]`` is V(s_t) before turn t's joint action; the value after a done turn is 0.

    >>> gae_advantages(torch.tensor([0.0, 1.0]), torch.zeros(2), torch.tensor([0.0, 1.0]), 0.5, 1.0).tolist()
    [0.5, 1.0]
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype)
    for t in reversed(range(rewards.numel())):
        alive = 1.0 - dones[t]
        next_value = values[t + 1] if t + 1 < values.numel() else torch.zeros(())
        delta = rewards[t] + gamma * next_value * alive - values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
    return advantages


def normalize(advantages: torch.Tensor, mode: str) -> torch.Tensor:
    """Batch normalisation of advantages ('none', 'center' or 'standardize').

    >>> normalize(torch.tensor([1.0, 3.0]), "center").tolist()
    [-1.0, 1.0]
    """
    if mode == "none" or advantages.numel() < 2:
        return advantages
    centered = advantages - advantages.mean()
    if mode == "center":
        return centered
    if mode == "standardize":
        return centered / (advantages.std() + 1e-6)
    raise ValueError(f"unknown advantage normalisation {mode!r}")


def loss_coefficients(advantages: torch.Tensor) -> torch.Tensor:
    """Each sample's factor in the loss: minus its advantage, averaged over samples."""
    return -advantages / max(advantages.numel(), 1)


def policy_loss(advantages: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    """Minus advantage times sequence log-prob, averaged over samples."""
    return (loss_coefficients(advantages) * logprobs).sum()


# --- rollout -------------------------------------------------------------------------


@dataclass
class Turn:
    """One turn of one trajectory."""

    state: str
    observations: dict[str, str]
    generations: dict[str, Generation]
    reward: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    done: bool = False


def rollout(
    lm: MultiAgentLM, args: Args, task_seed: int | list[int], generator: torch.Generator
) -> list[list[Turn]]:
    """``args.rollouts`` episodes of each task (one seed or a list), all envs stepped
    together, one batch per wave; trajectories are grouped task by task."""
    sampling = SamplingConfig(args.temperature, args.top_p, args.max_new_tokens, args.stop)
    seeds = [task_seed] if isinstance(task_seed, int) else list(task_seed)
    envs = [
        common.make_env(args.env_id, args.env_options) for _ in range(args.rollouts * len(seeds))
    ]
    for index, env in enumerate(envs):
        env.reset(seed=seeds[index // args.rollouts])
    trajectories: list[list[Turn]] = [[] for _ in envs]
    live = list(range(len(envs)))
    while live:
        turns = {i: Turn(state=envs[i].state(), observations={}, generations={}) for i in live}
        for wave in common.waves(envs[live[0]]):
            for i in live:
                for agent in wave:
                    turns[i].observations[agent] = envs[i].observe(agent)["text"]
            prompts = {
                agent: [
                    lm.format_prompt(
                        common.cap_prompt(lm, turns[i].observations[agent], args.max_prompt_tokens),
                        args.system_prompt,
                    )
                    for i in live
                ]
                for agent in wave
            }
            sampled = lm.generate(prompts, sampling=sampling, generator=generator, formatted=True)
            for agent in wave:
                for position, i in enumerate(live):
                    generation = sampled[agent][position][0]
                    turns[i].generations[agent] = generation
                    if envs[i].agent_selection != agent:
                        raise RuntimeError(f"{agent} acts out of turn in {args.env_id}")
                    envs[i].step(generation.text)
        still_live = []
        for i in live:
            first = envs[i].possible_agents[0]
            turn = turns[i]
            turn.reward = float(envs[i].rewards[first])
            turn.components = dict(envs[i].infos[first].get("reward_components", {}))
            turn.done = bool(envs[i].terminations[first] or envs[i].truncations[first])
            trajectories[i].append(turn)
            if not turn.done:
                still_live.append(i)
        live = still_live
    return trajectories


# --- training ------------------------------------------------------------------------


def critic_input(turn: Turn, critic_name: str) -> str:
    """What a critic reads: the global state (shared critic) or its agent's observation."""
    return turn.state if critic_name == "shared" else turn.observations[critic_name]


def update(
    lm: MultiAgentLM,
    critics: dict[str, ValueModel],
    actor_optimizers: dict[str, torch.optim.Optimizer],
    critic_optimizers: dict[str, torch.optim.Optimizer],
    trajectories: list[list[Turn]],
    args: Args,
    dist: common.Distributed,
) -> dict[str, float]:
    """One actor-critic update on a batch of trajectories; returns loss metrics."""
    metrics: dict[str, float] = {}
    advantages: dict[str, list[float]] = {agent: [] for agent in lm.agents}
    critic_losses = {}
    for name, critic in critics.items():
        texts = [critic_input(turn, name) for trajectory in trajectories for turn in trajectory]
        values = critic(texts)
        targets, position = [], 0
        flat_advantages = []
        for trajectory in trajectories:
            size = len(trajectory)
            rewards = torch.tensor([t.reward for t in trajectory])
            dones = torch.tensor([float(t.done) for t in trajectory])
            own_values = values[position : position + size].detach().cpu()
            estimate = gae_advantages(rewards, own_values, dones, args.gamma, args.gae_lambda)
            flat_advantages += estimate.tolist()
            targets += (estimate + own_values).tolist()
            position += size
        loss = torch.nn.functional.mse_loss(values, torch.tensor(targets, device=values.device))
        critic_losses[name] = loss
        metrics[f"value_mean/{name}"] = float(values.detach().mean())
        for agent in lm.agents if name == "shared" else [name]:
            advantages[agent] = flat_advantages
    for name, critic in critics.items():
        optimizer = critic_optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        critic_losses[name].backward()
        parameters = [p for p in critic.parameters() if p.requires_grad]
        dist.average_gradients(parameters)
        metrics[f"grad_norm/critic_{name}"] = common.clip_gradients(parameters, args.max_grad_norm)
        optimizer.step()
        metrics[f"critic_loss/{name}"] = float(critic_losses[name].detach())

    turns = [turn for trajectory in trajectories for turn in trajectory]
    absolute = []
    skipped_policies = 0
    for policy in lm.policies:
        optimizer = actor_optimizers[policy]
        optimizer.zero_grad(set_to_none=True)
        owners = [a for a in lm.agents if lm.policy_name(a) == policy]
        coefficients = {}
        for agent in owners:
            values = torch.tensor(advantages[agent], device=lm.device)
            values = normalize(values, args.advantage_norm)
            if args.advantage_clip > 0:
                values = values.clamp(-args.advantage_clip, args.advantage_clip)
            absolute += values.abs().tolist()
            coefficients[agent] = loss_coefficients(values)
        # All advantages 0 (equal rewards the critic fully predicts, or 'center' on equal
        # returns): the gradient is 0, so the passes are skipped, and the step too when every
        # process is in that case.
        local_zero = not any(bool(c.any()) for c in coefficients.values())
        skipped = dist.all_true(local_zero)
        for agent in owners:
            if local_zero:
                metrics[f"loss/{agent}"] = 0.0
                continue
            # policy_loss is linear in the log-probs: its gradient is accumulated one prompt
            # group at a time (the group's prompt encoded once), which bounds memory.
            loss, _ = common.accumulate_policy_gradient(
                lm,
                args,
                agent,
                [t.generations[agent].prompt_ids for t in turns],
                [t.generations[agent].response_ids for t in turns],
                coefficients=coefficients[agent],
            )
            metrics[f"loss/{agent}"] = float(loss)
        if skipped:
            skipped_policies += 1
            metrics[f"grad_norm/{policy}"] = 0.0
            continue
        parameters = lm.trainable_parameters(owners[0])
        dist.average_gradients(parameters)
        metrics[f"grad_norm/{policy}"] = common.clip_gradients(parameters, args.max_grad_norm)
        optimizer.step()
    metrics["update_skipped"] = float(skipped_policies == len(lm.policies))
    metrics["advantage_abs_mean"] = sum(absolute) / max(len(absolute), 1)
    return metrics


def rollout_metrics(trajectories: list[list[Turn]], lm: MultiAgentLM) -> dict[str, float]:
    returns = [sum(t.reward for t in trajectory) for trajectory in trajectories]
    metrics = {
        "team_return": sum(returns) / len(returns),
        "team_return_max": max(returns),
        "team_return_min": min(returns),
        "turns": sum(len(t) for t in trajectories) / len(trajectories),
    }
    totals: dict[str, float] = {}
    for trajectory in trajectories:
        for turn in trajectory:
            for name, value in turn.components.items():
                totals[name] = totals.get(name, 0.0) + value / len(trajectories)
    metrics.update({f"reward/{name}": value for name, value in totals.items()})
    total_tokens = 0
    for agent in lm.agents:
        counts = [t.generations[agent].num_tokens for tr in trajectories for t in tr]
        metrics[f"tokens_mean/{agent}"] = sum(counts) / len(counts)
        total_tokens += sum(counts)
    metrics["tokens_sum"] = float(total_tokens)
    prompts = [
        len(t.generations[a].prompt_ids) for tr in trajectories for t in tr for a in lm.agents
    ]
    metrics["prompt_tokens_mean"] = sum(prompts) / len(prompts)
    return metrics


def train(
    args: Args, on_step: Callable[[int, dict[str, float]], None] | None = None
) -> list[dict[str, float]]:
    """Run the actor-critic trainer; returns this process's metric rows. ``on_step(step,
    metrics)`` is called after each logged update (tests raise from it to simulate a kill)."""
    run = common.start_run(args, "maac")
    if run.finished:  # said so on stderr; the model is not even loaded
        run.dist.close()
        return []
    lm = common.build_model(args, run.agents, run.device, args.seed)
    critics = build_critics(args, run.agents, str(lm.device))
    actor_optimizers = {
        policy: torch.optim.AdamW(
            lm.trainable_parameters(next(a for a in lm.agents if lm.policy_name(a) == policy)),
            lr=args.learning_rate,
            weight_decay=0.0,
        )
        for policy in lm.policies
    }
    critic_optimizers = {
        name: torch.optim.AdamW(
            [p for p in critic.parameters() if p.requires_grad], lr=args.critic_learning_rate
        )
        for name, critic in critics.items()
    }
    if run.checkpoint is not None:
        for policy in lm.policies:
            lm.load_policy_state_dict(policy, run.checkpoint["policies"][policy])
            actor_optimizers[policy].load_state_dict(run.checkpoint["actor_optimizers"][policy])
        for name, critic in critics.items():
            load_critic_state_dict(critic, run.checkpoint["critics"][name])
            critic_optimizers[name].load_state_dict(run.checkpoint["critic_optimizers"][name])
    generator = run.generator(lm)
    run.begin(lm)
    try:
        for step in run.steps():
            began = time.perf_counter()
            trajectories = rollout(lm, args, run.task_seeds(step), generator)
            rolled = time.perf_counter()
            metrics = rollout_metrics(trajectories, lm)
            metrics.update(
                update(
                    lm, critics, actor_optimizers, critic_optimizers, trajectories, args, run.dist
                )
            )
            metrics["learning_rate"] = args.learning_rate
            metrics["critic_learning_rate"] = args.critic_learning_rate
            finished = time.perf_counter()
            first_turns = {a: [tr[0].generations[a] for tr in trajectories] for a in lm.agents}
            metrics = run.record(
                step,
                metrics,
                lm,
                samples=first_turns,
                completions=(first_turns, [tr[0].reward for tr in trajectories]),
                times=(began, rolled, finished),
            )
            if run.checkpoint_due(step):
                critic_states = {name: critic_state_dict(c) for name, c in critics.items()}
                states = {
                    "algorithm": f"maac-{args.critic}",
                    "critics": critic_states,
                    "actor_optimizers": {p: o.state_dict() for p, o in actor_optimizers.items()},
                    "critic_optimizers": {n: o.state_dict() for n, o in critic_optimizers.items()},
                }
                run.save(step, lm, generator, states, checked=critic_states)
            if on_step is not None:
                on_step(step, metrics)
    finally:
        run.close()
    return run.finish(lm)


def main(argv: list[str] | None = None) -> None:
    common.cli_main(Args, train, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
