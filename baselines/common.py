"""Plumbing shared by the LLM trainers (magrpo.py, maac.py): no algorithm lives here.

* arguments: :class:`PolicyArgs`, the task, model, sampling, evaluation and logging options
  both trainers take (validated where they are born; :class:`TrainerConfigError` is printed
  as one line by :func:`cli_main`);
* a run: :func:`start_run` / :class:`Run` set up processes and the run folder (named as
  CleanRL names runs; resume, a finished run, ``--overwrite``), then per update average
  metrics over processes, evaluate on held-out tasks, log (CSV, TensorBoard, W&B, sampled
  completions), save checkpoints, and at the end export the policies and plot the curves;
* branching environments: rebuild an env's state by replaying its seed and an action prefix
  into a fresh env (text envs are cheap to replay; nothing needs deep-copying);
* processes: ``torchrun`` / ``accelerate launch`` set RANK and WORLD_SIZE; gradients are
  averaged with an all-reduce (gloo on CPU, NCCL on GPUs);
* checkpoints: the format is the library's (:mod:`mallm_envs.agents.checkpoint`): one file
  written atomically holding weights, optimizer states, every RNG state, the step and the
  policy record, so a killed run resumes exactly; loaded weights-only and integrity-checked;
* metrics: one CSV row and TensorBoard scalars per step; on resume, rows and events after
  the checkpoint are dropped so the log continues as if the run had never stopped.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import mallm_envs
from mallm_envs.agents.checkpoint import (  # the library owns the checkpoint format
    CheckpointError,
    PolicyConfig,
    export_policies,
    load_checkpoint,
    payload_digest,
    remove_stale_temps,
    save_checkpoint,
)
from mallm_envs.agents.llm import LoraSettings, MultiAgentLM, SamplingConfig, parse_lora_targets
from mallm_envs.core import TaskEnv, atomic_write_bytes

__all__ = [  # re-exported from mallm_envs.agents.checkpoint
    "CheckpointError",
    "PolicyConfig",
    "export_policies",
    "load_checkpoint",
    "payload_digest",
    "remove_stale_temps",
    "save_checkpoint",
]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
RUN_FILES = (
    CHECKPOINT_NAME,
    METRICS_NAME,
    "args.json",
    "policy.json",
    "completions.jsonl",
    "curves.png",
    "wandb_id",
)
"""Files of a run that ``--overwrite`` removes (with the tensorboard/, export/ and wandb/
folders)."""


class TrainerConfigError(Exception):
    """A setting or a run folder that cannot work; the message says what to change.

    Not a ValueError on purpose: tyro turns a ValueError raised while it builds the
    arguments into a help box, and :func:`cli_main` prints this one as a single line.
    """


def default_output_dir(env_id: str, algorithm: str, seed: int) -> str:
    """CleanRL's run name: ``runs/{env}__{algorithm}__{seed}__{unix time}``."""
    return f"runs/{env_id}__{algorithm}__{seed}__{int(time.time())}"


# --- the arguments every LLM trainer shares --------------------------------------------


@dataclass
class PolicyArgs:
    """Task, model and sampling arguments of the LLM trainers (each adds its own after these)."""

    # --- task ---
    env_id: str = "CommonWord-v0"
    """Environment id in the mallm_envs registry."""
    env_kwargs: str = "{}"
    """JSON object of keyword arguments for ``mallm_envs.make`` (e.g. '{"max_turns": 1}')."""
    task_seed_start: int = 0
    """Update u's k-th task uses env seed task_seed_start + ((u - 1) * world_size + rank) *
    tasks_per_update + k."""
    tasks_per_update: int = 1
    """Tasks per update and process (their samples are batched together; 1: the paper)."""
    max_prompt_tokens: int = 0
    """Keep only the last this many tokens of an observation before the chat template is
    applied (TRL truncates prompts from the left too); 0: no cap."""
    system_prompt: str | None = None
    """Optional system message put before every observation."""
    # --- model ---
    model: str = "tiny"
    """'tiny' (random, built offline: tests only), 'smollm2-135m' (SmolLM2-135M-Instruct from its
    installed package), a local folder, a .gguf file, or a hub id (see allow_download)."""
    gguf_file: str | None = None
    """GGUF file name inside ``model`` when ``model`` is a folder or hub repository."""
    allow_download: bool = False
    """Let transformers download ``model`` from the hub (off: local files only)."""
    adapter: Literal["lora", "full"] = "lora"
    """'lora': one frozen base, one LoRA adapter per agent; 'full': a full copy per agent (paper)."""
    shared_policy: bool = False
    """All agents share one policy (one adapter or one copy) and one optimizer."""
    lora_rank: int = 8
    """LoRA rank r."""
    lora_alpha: int = 16
    """LoRA scaling alpha."""
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj"
    """Comma-separated module names that get LoRA adapters."""
    device: str = "cpu"
    """'cpu', 'cuda', 'cuda:N' or 'auto'; under torchrun with CUDA each rank uses its LOCAL_RANK."""
    dtype: str = "float32"
    """Policy dtype: float32, bfloat16 or float16 (a critic stays float32)."""
    tiny_seed: int = 0
    """Weight seed of the tiny model (model='tiny')."""
    attention: str = "sdpa"
    """Attention implementation while training: 'sdpa' keeps no attention matrices for the
    backward pass (memory), 'eager' does (heads x length^2 per layer) but gives a row the same
    numbers in any batch (what evaluation agents use)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, more time);
    responses are then scored by one cache-free forward over prompt + response."""
    # --- sampling (paper: temperature 0.7, top-p 0.9, 256 new tokens) ---
    temperature: float = 0.7
    """Sampling temperature."""
    top_p: float = 0.9
    """Nucleus sampling mass."""
    max_new_tokens: int = 256
    """Longest response, in tokens."""
    stop: tuple[str, ...] = ()
    """Stop strings: a response ends when its text contains one."""
    # --- bookkeeping ---
    output_dir: str | None = None
    """Run folder (metrics.csv, tensorboard/, checkpoint.pt); default
    runs/{env_id}__{algorithm}__{seed}__{unix time}, as CleanRL names runs."""
    checkpoint_every: int = 50
    """Write a checkpoint every this many updates (and after the last one)."""
    resume: bool = True
    """Continue from output_dir/checkpoint.pt when it exists (a finished run says so and exits)."""
    overwrite: bool = False
    """Delete the run already in output_dir (checkpoint, metrics, logs) and start over;
    without it, --no-resume on a folder that holds a run is refused."""
    threads: int = 0
    """torch CPU threads per process; 0 keeps torch's default."""
    # --- evaluation and logging ---
    eval_every: int = 0
    """Every this many updates (and after the last), play eval_episodes held-out episodes with
    greedy decoding and log eval/*; 0 disables."""
    eval_episodes: int = 8
    """Episodes per evaluation: the env's 'test' split when it has one, else seeds from
    eval_seed_start (tasks drawn from seeds training does not use)."""
    eval_seed_start: int = 1_000_000
    """First env seed of the evaluation episodes."""
    log_completions: int = 1
    """Sampled joint actions per update written to completions.jsonl (prompt, completion,
    reward per agent; as TRL's completion tables) and to TensorBoard text; 0 disables."""
    log_kl: bool = True
    """Log kl/<agent>: per-token KL estimate of each LoRA policy from the frozen base model on
    the update's first-turn samples (one extra no-grad forward pass; not for --adapter full)."""
    tensorboard: bool = True
    """Also log to TensorBoard (with the hyperparameters as text)."""
    track: bool = False
    """Also log to Weights & Biases (needs `pip install wandb`; never imported otherwise)."""
    wandb_project: str = "mallm-envs"
    """W&B project (with --track)."""
    wandb_entity: str | None = None
    """W&B entity (team or user; with --track)."""
    plot: bool = True
    """Write curves.png (the logged curves) in the run folder at the end (needs matplotlib)."""
    export: bool = True
    """After the last update, write each agent's policy to output_dir/export/<agent>/ in the
    standard peft layout (PeftModel.from_pretrained) or as a full model folder."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        self.env_options  # noqa: B018 (validates the JSON now, at start)
        self.stop = tuple(self.stop)
        try:
            SamplingConfig(self.temperature, self.top_p, self.max_new_tokens, self.stop)
        except ValueError as error:
            raise TrainerConfigError(str(error)) from None
        if self.checkpoint_every < 1:
            raise TrainerConfigError("--checkpoint-every must be >= 1")
        if self.tasks_per_update < 1 or self.max_prompt_tokens < 0:
            raise TrainerConfigError("--tasks-per-update must be >= 1 and --max-prompt-tokens >= 0")
        if self.eval_every < 0 or self.eval_episodes < 1 or self.log_completions < 0:
            raise TrainerConfigError(
                "--eval-every and --log-completions must be >= 0, --eval-episodes >= 1"
            )
        if self.track and importlib.util.find_spec("wandb") is None:
            raise TrainerConfigError(
                "--track logs to Weights & Biases, which is not installed: pip install wandb"
            )

    @property
    def env_options(self) -> dict[str, Any]:
        """``env_kwargs`` parsed."""
        try:
            options = json.loads(self.env_kwargs)
        except json.JSONDecodeError as error:
            raise TrainerConfigError(f"--env-kwargs must be a JSON object: {error}") from None
        if not isinstance(options, dict):
            raise TrainerConfigError(
                "--env-kwargs must be a JSON object, e.g. '{\"max_turns\": 1}'"
            )
        return options

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def policy_config(self, agents: Sequence[str]) -> PolicyConfig:
        """The library's record of the trained policy (written into every checkpoint)."""
        return PolicyConfig(
            model=self.model,
            agents=tuple(agents),
            adapter=self.adapter,
            shared=self.shared_policy,
            lora_rank=self.lora_rank,
            lora_alpha=self.lora_alpha,
            lora_targets=parse_lora_targets(self.lora_targets),
            dtype=self.dtype,
            gguf_file=self.gguf_file,
            tiny_seed=self.tiny_seed,
            init_seed=int(getattr(self, "seed", 0)),
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            stop=self.stop,
            system_prompt=self.system_prompt,
            max_prompt_tokens=self.max_prompt_tokens,
        )


# --- one run: what every trainer does around its algorithm ----------------------------


@dataclass
class Run:
    """A trainer's run: processes, run folder, logging, progress, evaluation and saving.

    A trainer calls :func:`start_run`, builds its model, loads ``run.checkpoint`` when there
    is one, calls :meth:`begin`, then per update :meth:`record` (and :meth:`save` when
    :meth:`checkpoint_due`), and :meth:`close` / :meth:`finish` at the end.
    """

    args: PolicyArgs
    algorithm: str
    dist: Distributed
    device: str
    agents: list[str]
    checkpoint: dict[str, Any] | None
    log: MetricsLog | None = None
    progress: Any = None
    rows: list[dict[str, float]] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return Path(self.args.output_dir)

    @property
    def start(self) -> int:
        return int(self.checkpoint["step"]) if self.checkpoint is not None else 0

    @property
    def finished(self) -> bool:
        """The folder's run already reached ``num_updates`` (nothing to train)."""
        return self.start >= self.args.num_updates

    def steps(self) -> range:
        return range(self.start + 1, self.args.num_updates + 1)

    def task_seeds(self, step: int) -> list[int]:
        return task_seeds(self.args, step, self.dist)

    def generator(self, lm: MultiAgentLM) -> torch.Generator:
        """The sampler's RNG (its state restored from the checkpoint when resuming)."""
        generator = torch.Generator(device=lm.device)
        generator.manual_seed(int(getattr(self.args, "seed", 0)) * 1000 + self.dist.rank)
        if self.checkpoint is not None:
            set_rng_state(self.checkpoint["rng"][self.dist.rank], generator)
        return generator

    def begin(self, lm: MultiAgentLM) -> None:
        """Open the logs, write args.json and policy.json, show the progress bar."""
        args, folder = self.args, self.folder
        self.log = MetricsLog(
            folder,
            self.start,
            enabled=self.dist.is_main,
            tensorboard=args.tensorboard,
            hyperparameters=args.to_dict(),
            track=args.track,
            wandb_project=args.wandb_project,
            wandb_entity=args.wandb_entity,
        )
        if self.dist.is_main:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "args.json").write_text(json.dumps(args.to_dict(), indent=2) + "\n")
            policy = args.policy_config(lm.agents).to_dict()
            (folder / "policy.json").write_text(json.dumps(policy, indent=2) + "\n")
            if args.progress:
                from tqdm.auto import tqdm

                self.progress = tqdm(
                    total=args.num_updates,
                    initial=self.start,
                    desc=self.algorithm,
                    dynamic_ncols=True,
                )

    def record(
        self,
        step: int,
        metrics: dict[str, float],
        lm: MultiAgentLM,
        *,
        samples: Mapping[str, Sequence[Any]],
        completions: tuple[Mapping[str, Sequence[Any]], Sequence[float]],
        times: tuple[float, float, float],
    ) -> dict[str, float]:
        """Add the diagnostics of ``samples`` (agent -> generations), average over
        processes, add timings and the periodic evaluation, log the row and ``completions``
        (agent -> generations, their team rewards); returns the logged metrics."""
        began, rolled, finished = times
        args, dist = self.args, self.dist
        metrics.update(sample_diagnostics(lm, samples, args.log_kl, args.gradient_checkpointing))
        metrics = dist.mean(metrics)
        metrics["time/rollout"] = rolled - began
        metrics["time/update"] = finished - rolled
        metrics["time/step"] = finished - began
        metrics["time/diagnostics"] = time.perf_counter() - finished
        assert self.log is not None, "call begin() first"
        metrics.update(periodic_eval(step, lm, args, dist, self.log))
        self.log.log(step, metrics)
        generations, rewards = completions
        records = completion_records(lm, generations, rewards, args.log_completions)
        self.log.log_completions(step, "train", records)
        self.rows.append({"step": float(step), **metrics})
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix(team_return=f"{metrics['team_return']:+.3f}")
        return metrics

    def checkpoint_due(self, step: int) -> bool:
        return step % self.args.checkpoint_every == 0 or step == self.args.num_updates

    def save(
        self,
        step: int,
        lm: MultiAgentLM,
        generator: torch.Generator,
        states: Mapping[str, Any],
        checked: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    ) -> None:
        """Write the checkpoint: the policies, ``states`` (optimizers, critics, ...), every
        process's RNG state, and a checksum of the policies and ``checked`` per process."""
        dist = self.dist
        rng = dist.gather(rng_state(generator))
        policies = {p: lm.policy_state_dict(p) for p in lm.policies}
        checksums = dist.gather(checksum({**policies, **(checked or {})}))  # equal when in sync
        if dist.is_main:
            save_checkpoint(
                self.folder / CHECKPOINT_NAME,
                {
                    "algorithm": self.algorithm,
                    "step": step,
                    "args": self.args.to_dict(),
                    "policy": self.args.policy_config(lm.agents).to_dict(),
                    "world_size": dist.world_size,
                    "policies": policies,
                    **states,
                    "replica_checksums": checksums,
                    "rng": rng,
                },
            )
        dist.barrier()

    def close(self) -> None:
        """Close the progress bar and the logs (also after an error)."""
        if self.progress is not None:
            self.progress.close()
        if self.log is not None:
            self.log.close()

    def finish(self, lm: MultiAgentLM) -> list[dict[str, float]]:
        """After the loop: export the policies (when the run is complete), draw the curves,
        leave the process group; returns this process's rows."""
        trained_to = int(self.rows[-1]["step"]) if self.rows else self.start
        if self.dist.is_main:
            if self.args.export and trained_to >= self.args.num_updates:
                export_policies(lm, self.folder / "export", self.args.policy_config(lm.agents))
            if self.args.plot:
                plot_curves(self.folder)
        self.dist.close()
        return self.rows


def start_run(args: PolicyArgs, algorithm: str, check: Callable[[int], None] | None = None) -> Run:
    """Threads, processes, device and seeds; the env checked (text env; ``check(horizon)``
    for the trainer's own limits) before anything is written; the run folder opened."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = args.device
    dist = Distributed(device)
    if dist.enabled and device.startswith("cuda"):
        device = f"cuda:{dist.local_rank}"
    seed_everything(int(getattr(args, "seed", 0)))
    probe = make_env(args.env_id, args.env_options)
    agents = list(probe.possible_agents)
    check_text_env(probe, args.env_id)
    if check is not None:
        check(horizon(probe))
    probe.close()
    checkpoint = open_run(args, algorithm, dist)
    return Run(args, algorithm, dist, device, agents, checkpoint)


def lora_settings(args: PolicyArgs) -> LoraSettings:
    """The LoRA shape the policy arguments ask for (the critic's LoRA shares it)."""
    return LoraSettings(
        r=args.lora_rank,
        alpha=args.lora_alpha,
        target_modules=parse_lora_targets(args.lora_targets),
    )


def build_model(args: PolicyArgs, agents: list[str], device: str, seed: int) -> MultiAgentLM:
    """The trainer's policies: one base model, an adapter or copy per agent (see PolicyArgs)."""
    lm = MultiAgentLM(
        agents,
        args.model,
        adapter=args.adapter,
        shared=args.shared_policy,
        lora=lora_settings(args),
        seed=seed,
        gguf_file=args.gguf_file,
        allow_download=args.allow_download,
        device=device,
        dtype=args.dtype,
        tiny_seed=args.tiny_seed,
        attention=args.attention,
    )
    if args.gradient_checkpointing:
        for network in {id(n): n for n in lm.networks.values()}.values():
            network.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
    else:
        lm.reuse_prefills = True  # each update follows its group sampling
    return lm


def _score_without_cache(
    lm: MultiAgentLM,
    network: Any,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
) -> Iterable[tuple[list[int], torch.Tensor]]:
    """Per prompt group: its rows and their summed response log-probs, from one forward
    pass over prompt + response with no cache (gradients flow when enabled)."""
    device = lm.device
    pad = int(lm.tokenizer.pad_token_id)
    groups: dict[tuple[int, ...], list[int]] = {}
    for row, prompt in enumerate(prompt_ids):
        groups.setdefault(tuple(prompt), []).append(row)
    for prompt, rows in groups.items():
        start = len(prompt)
        sequences = [list(prompt) + list(response_ids[r]) for r in rows]
        length = max(len(seq) for seq in sequences)
        if length == start:  # every response is empty
            continue
        input_ids = torch.full((len(rows), length), pad, dtype=torch.long, device=device)
        mask = torch.zeros((len(rows), length), dtype=torch.long, device=device)
        for index, sequence in enumerate(sequences):  # right padding: positions stay 0..n-1
            input_ids[index, : len(sequence)] = torch.tensor(sequence, device=device)
            mask[index, : len(sequence)] = 1
        logits = network(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
        logits = logits[:, start - 1 : length - 1, :].float()  # position t scores token t+1
        targets = input_ids[:, start:]
        chosen = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        yield rows, ((chosen - torch.logsumexp(logits, dim=-1)) * mask[:, start:]).sum(dim=1)


def task_seeds(args: PolicyArgs, step: int, dist: Distributed) -> list[int]:
    """The env seeds of update ``step``'s tasks on this process (see task_seed_start)."""
    first = ((step - 1) * dist.world_size + dist.rank) * args.tasks_per_update
    return [args.task_seed_start + first + k for k in range(args.tasks_per_update)]


def cap_prompt(lm: MultiAgentLM, text: str, max_tokens: int) -> str:
    """``text`` cut to its last ``max_tokens`` tokens (unchanged when 0 or short enough)."""
    if max_tokens <= 0:
        return text
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    return lm.tokenizer.decode(ids[-max_tokens:], skip_special_tokens=True)


def accumulate_policy_gradient(
    lm: MultiAgentLM,
    args: PolicyArgs,
    agent: str,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    coefficients: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add the gradient of ``sum_i coefficients[i] * logprob_i`` to ``agent``'s parameters.

    :meth:`MultiAgentLM.accumulate_policy_gradient` encodes each prompt once and scores the
    responses from its cache; under gradient checkpointing transformers drops that cache
    (the responses would be scored without their prompt), so each prompt group is then
    scored by one cache-free forward pass over prompt + response instead: the same
    gradient, computed differently.
    """
    if not args.gradient_checkpointing:
        return lm.accumulate_policy_gradient(
            agent, prompt_ids, response_ids, coefficients=coefficients
        )
    device = lm.device
    coefficients = torch.as_tensor(coefficients, dtype=torch.float32, device=device)
    logprobs = torch.zeros(len(prompt_ids), device=device)
    loss = torch.zeros((), device=device)
    network = lm._train_network(agent)
    for rows, values in _score_without_cache(lm, network, prompt_ids, response_ids):
        index = torch.tensor(rows, device=device)
        group_loss = (coefficients.index_select(0, index) * values).sum()
        group_loss.backward()
        loss = loss + group_loss.detach()
        logprobs[index] = values.detach()
    return loss, logprobs


def cli_main(args_class: type, train: Any, argv: list[str] | None) -> None:
    """Parse ``argv`` into ``args_class`` with tyro, train, and say how it ended (rank 0).

    A setting that cannot work (a bad value, an unknown env or model, a run folder that would
    be overwritten, a damaged checkpoint) ends the program with one line on stderr and exit
    status 2, not a traceback.
    """
    import tyro

    from mallm_envs.agents.llm import LLMConfigError, ModelLoadError
    from mallm_envs.core.errors import EnvArgumentError, RegistryError

    try:
        args = tyro.cli(args_class, args=argv)
        rows = train(args)
    except (
        TrainerConfigError,
        CheckpointError,
        RegistryError,
        EnvArgumentError,
        LLMConfigError,
        ModelLoadError,
    ) as error:
        message = error.args[0] if error.args else str(error)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    if rows and int(rows[-1]["step"]) == args.num_updates and os.environ.get("RANK", "0") == "0":
        print(
            f"done: {args.num_updates} updates, last team return {rows[-1]['team_return']:+.3f};"
            f" run folder {args.output_dir}"
        )


def say(dist: Distributed, message: str) -> None:
    """One line to stderr from the main process."""
    if dist.is_main:
        print(message, file=sys.stderr, flush=True)


def open_run(args: PolicyArgs, algorithm: str, dist: Distributed) -> dict[str, Any] | None:
    """Prepare the run folder; return the checkpoint to resume from, or ``None`` to start.

    Names the folder when ``args.output_dir`` is unset (the same name on every process) and
    says what it found and what will happen: resume at step s; a finished run (nothing to
    do); a folder holding a run under ``--no-resume``, refused unless ``--overwrite``, which
    removes that run's files first.
    """
    if args.output_dir is None:
        args.output_dir = dist.broadcast(
            default_output_dir(args.env_id, algorithm, getattr(args, "seed", 0))
        )
    folder = Path(args.output_dir)
    if folder.exists() and not folder.is_dir():
        raise TrainerConfigError(f"--output-dir {folder} is a file, not a folder")
    checkpoint_path = folder / CHECKPOINT_NAME
    remove_stale_temps(checkpoint_path)
    has_checkpoint = checkpoint_path.is_file()
    rows = _count_rows(folder / METRICS_NAME)
    if args.overwrite or not args.resume:
        found = _describe_found(checkpoint_path if has_checkpoint else None, rows)
    if args.overwrite:
        if found:
            say(dist, f"{folder}: found {found}; --overwrite: deleting it and starting over")
            if dist.is_main:
                for name in RUN_FILES:
                    (folder / name).unlink(missing_ok=True)
                for name in ("tensorboard", "export", "wandb"):
                    shutil.rmtree(folder / name, ignore_errors=True)
        dist.barrier()
        return None
    if not args.resume:
        if found:
            raise TrainerConfigError(
                f"{folder} already holds a run ({found}); --no-resume would overwrite it: "
                "add --overwrite to delete it, or choose another --output-dir"
            )
        return None
    checkpoint = load_checkpoint(checkpoint_path) if has_checkpoint else None
    if checkpoint is None:
        if rows:
            say(
                dist,
                f"{folder}: {rows} metric rows but no checkpoint (the run stopped before its "
                "first one, or the checkpoint was removed): starting over from step 0 and "
                "replacing those rows",
            )
        return None
    check_resumable(checkpoint["args"], args.to_dict(), argument_defaults(type(args)))
    if checkpoint["world_size"] != dist.world_size:
        raise TrainerConfigError(
            f"the checkpoint in {folder} was written by {checkpoint['world_size']} processes; "
            f"resume with the same number (now {dist.world_size})"
        )
    step = int(checkpoint["step"])
    found = f"a checkpoint at update {step} and {rows} metric rows"
    if step >= args.num_updates:
        say(
            dist,
            f"{folder}: the run already finished ({found}; {args.num_updates} updates asked); "
            "nothing to do (raise --num-updates to train on, or --overwrite to start over)",
        )
    else:
        say(dist, f"{folder}: found {found}: resuming at update {step + 1}")
    return checkpoint


def _count_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def _describe_found(checkpoint: Path | None, rows: int) -> str:
    parts = []
    if checkpoint is not None:
        try:
            step = torch.load(checkpoint, map_location="cpu", weights_only=True).get("step")
        except Exception:  # the unpickler's errors have no common type
            step = "?"
        parts.append(f"a checkpoint at update {step}")
    if rows:
        parts.append(f"{rows} metric rows")
    return " and ".join(parts)


# --- environments --------------------------------------------------------------------


def make_env(env_id: str, env_kwargs: Mapping[str, Any]) -> Any:
    return mallm_envs.make(env_id, **dict(env_kwargs))


def check_text_env(env: Any, env_id: str) -> None:
    """Refuse an env whose agents do not read and write text (the LLM trainers need text)."""
    from mallm_envs.core.env import CoopTextEnv

    if not isinstance(getattr(env, "unwrapped", env), CoopTextEnv):
        raise TrainerConfigError(
            f"{env_id} is not a text environment (its observations and actions are not text); "
            "the LLM trainers need one (for the kitchen: Kitchen-v0, or "
            "baselines/kitchen_mappo.py for the numeric one)"
        )


def horizon(env: Any) -> int:
    """The most turns an episode of ``env`` can last."""
    return int(getattr(env, "unwrapped", env).max_turns)


@dataclass
class Branch:
    """An env state named by (seed, actions so far); :meth:`env` rebuilds it by replay."""

    env_id: str
    env_kwargs: Mapping[str, Any]
    seed: int
    actions: list[tuple[str, str]] = field(default_factory=list)

    def env(self) -> Any:
        env = make_env(self.env_id, self.env_kwargs)
        env.reset(seed=self.seed)
        for agent, action in self.actions:
            if env.agent_selection != agent:
                raise RuntimeError(f"replay out of order: env expects {env.agent_selection}")
            env.step(action)
        return env

    def child(self, joint_action: Sequence[tuple[str, str]]) -> Branch:
        return Branch(self.env_id, self.env_kwargs, self.seed, [*self.actions, *joint_action])


def waves(env: Any) -> list[list[str]]:
    """Groups of agents whose prompts can be made at once: all of them in the simultaneous
    schedule; one at a time (each sees the earlier ones' answers) in the sequential one."""
    agents = list(env.possible_agents)
    if getattr(env.unwrapped, "schedule", "simultaneous") == "simultaneous":
        return [agents]
    return [[agent] for agent in agents]


# --- evaluation and diagnostics -------------------------------------------------------


def eval_env_options(args: PolicyArgs) -> tuple[dict[str, Any], str]:
    """Env arguments of the held-out episodes and a word for where they come from."""
    options = dict(args.env_options)
    if "split" in mallm_envs.spec(args.env_id).kwargs:
        options["split"] = "test"
        return options, "the env's test split"
    return options, f"seeds from {args.eval_seed_start} (the env has no test split)"


def eval_task_ids(args: PolicyArgs, options: Mapping[str, Any]) -> list[str | None]:
    """The held-out episodes' tasks: the env's official test tasks in order (the first
    ``eval_episodes`` of them, cycling when more are asked), so every evaluation of a run
    plays the same tasks as the board; ``None`` each (the seed draws) for an env without
    them."""
    env = make_env(args.env_id, options)
    try:
        tasks = (
            list(env.unwrapped.official_test_tasks()) if isinstance(env.unwrapped, TaskEnv) else []
        )
    finally:
        env.close()
    if not tasks:
        return [None] * args.eval_episodes
    return [tasks[k % len(tasks)] for k in range(args.eval_episodes)]


def play_episodes(
    lm: MultiAgentLM,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    seeds: Sequence[int],
    sampling: SamplingConfig,
    system_prompt: str | None = None,
    task_ids: Sequence[str | None] | None = None,
) -> tuple[list[float], list[bool | None], list[dict[str, str]]]:
    """Play one episode per seed (on ``task_ids[k]`` when given), all envs stepped together
    (one batch per wave).

    Returns each episode's team return, whether it ended in success (an info's ``success``
    flag, as the boards count it; ``None`` where the env reports none), and the first episode's first-turn completions.
    """
    envs = [make_env(env_id, env_kwargs) for _ in seeds]
    tasks = list(task_ids) if task_ids is not None else [None] * len(seeds)
    for env, seed, task_id in zip(envs, seeds, tasks):
        env.reset(seed=seed, options=None if task_id is None else {"task_id": task_id})
    returns = [0.0] * len(envs)
    successes: list[bool | None] = [None] * len(envs)
    first: list[dict[str, str]] = []
    live = list(range(len(envs)))
    generator = torch.Generator(device=lm.device).manual_seed(0)  # the run's RNG stays untouched
    turn = 0
    while live:
        for wave in waves(envs[live[0]]):
            observations = {a: [envs[i].observe(a)["text"] for i in live] for a in wave}
            prompts = {
                a: [lm.format_prompt(text, system_prompt) for text in observations[a]] for a in wave
            }
            sampled = lm.generate(prompts, sampling=sampling, generator=generator, formatted=True)
            for agent in wave:
                for position, i in enumerate(live):
                    text = sampled[agent][position][0].text
                    if i == 0 and turn == 0:
                        prompt = observations[agent][position]
                        first.append({"agent": agent, "prompt": prompt, "completion": text})
                    envs[i].step(text)
        still = []
        for i in live:
            agent = envs[i].possible_agents[0]
            returns[i] += float(envs[i].rewards[agent])
            if not (envs[i].terminations[agent] or envs[i].truncations[agent]):
                still.append(i)
            else:
                flags = [info["success"] for info in envs[i].infos.values() if "success" in info]
                successes[i] = any(bool(flag) for flag in flags) if flags else None
        live = still
        turn += 1
    for env in envs:
        env.close()
    return returns, successes, first


def evaluate(lm: MultiAgentLM, args: PolicyArgs) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Greedy episodes on held-out tasks: ``eval/team_return`` (mean) and its spread, and
    ``eval/success`` (share of episodes solved) where the env reports success."""
    options, _ = eval_env_options(args)
    seeds = [args.eval_seed_start + k for k in range(args.eval_episodes)]
    task_ids = eval_task_ids(args, options)
    greedy = SamplingConfig(0.0, 1.0, args.max_new_tokens, args.stop, do_sample=False)
    returns, successes, first = play_episodes(
        lm, args.env_id, options, seeds, greedy, args.system_prompt, task_ids
    )
    values = torch.tensor(returns, dtype=torch.float64)
    metrics = {
        "eval/team_return": float(values.mean()),
        "eval/team_return_std": float(values.std()) if len(returns) > 1 else 0.0,
        "eval/team_return_max": float(values.max()),
        "eval/team_return_min": float(values.min()),
    }
    if any(flag is not None for flag in successes):
        metrics["eval/success"] = sum(bool(flag) for flag in successes) / len(successes)
    return metrics, first


def sample_diagnostics(
    lm: MultiAgentLM,
    generations: Mapping[str, Sequence[Any]],
    log_kl: bool,
    no_cache: bool = False,
) -> dict[str, float]:
    """Per agent, over a batch of its sampled responses (:class:`Generation` objects):

    * ``entropy/<agent>``: minus the mean log-prob of the sampled tokens, a sample estimate
      of the policy's per-token entropy (the samples are drawn at the run's temperature and
      top-p, so it is an estimate, not the exact entropy);
    * ``kl/<agent>`` (LoRA only, with ``log_kl``): the mean over sampled tokens of
      log pi(token) - log pi_base(token), the usual sample estimate of KL(pi || base),
      with the base model's log-probs computed with every adapter disabled.
    """
    metrics: dict[str, float] = {}
    for agent, samples in generations.items():
        tokens = sum(g.num_tokens for g in samples)
        policy_sum = sum(g.logprob_sum for g in samples)
        metrics[f"entropy/{agent}"] = -policy_sum / tokens if tokens else 0.0
        if log_kl and lm.adapter == "lora" and tokens:
            prompts = [g.prompt_ids for g in samples]
            responses = [g.response_ids for g in samples]
            with torch.no_grad(), lm.peft_model.disable_adapter():
                if no_cache:  # transformers drops the prompt cache under gradient checkpointing
                    scored = _score_without_cache(lm, lm.peft_model, prompts, responses)
                    base_sum = sum(float(values.sum()) for _, values in scored)
                else:
                    base_sum = float(lm.sequence_logprobs(agent, prompts, responses).sum())
            metrics[f"kl/{agent}"] = (policy_sum - base_sum) / tokens
    return metrics


def periodic_eval(
    step: int, lm: MultiAgentLM, args: PolicyArgs, dist: Distributed, log: MetricsLog
) -> dict[str, float]:
    """Held-out greedy evaluation every ``eval_every`` updates and after the last one
    (main process; the others wait); its first episode's completions are logged too."""
    due = args.eval_every > 0 and (step % args.eval_every == 0 or step == args.num_updates)
    if not due:
        return {}
    metrics: dict[str, float] = {}
    if dist.is_main:
        began = time.perf_counter()
        metrics, first = evaluate(lm, args)
        metrics["time/eval"] = time.perf_counter() - began
        log.log_completions(step, "eval", first)
    dist.barrier()
    return metrics


def completion_records(
    lm: MultiAgentLM, generations: Mapping[str, Sequence[Any]], rewards: Sequence[float], count: int
) -> list[dict[str, Any]]:
    """The first ``count`` joint actions: prompt, completion and team reward of each agent."""
    records = []
    for g in range(min(count, len(rewards))):
        for agent, samples in generations.items():
            sample = samples[g]
            records.append(
                {
                    "sample": g,
                    "agent": agent,
                    "prompt": lm.tokenizer.decode(sample.prompt_ids),
                    "completion": sample.text,
                    "finish_reason": sample.finish_reason,
                    "reward": float(rewards[g]),
                }
            )
    return records


# --- processes -----------------------------------------------------------------------


class Distributed:
    """Rank, world size and the few collectives the trainers need (no-ops in one process)."""

    def __init__(self, device: str) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(self.local_rank)
            torch.distributed.init_process_group(backend=backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        if not self.enabled:
            return
        for parameter in parameters:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            torch.distributed.all_reduce(parameter.grad)
            parameter.grad /= self.world_size

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """Average each metric over processes (every rank must pass the same keys)."""
        if not self.enabled:
            return dict(values)
        keys = sorted(values)  # the same order on every rank for the reduction
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        averaged = {k: float(v) / self.world_size for k, v in zip(keys, tensor.tolist())}
        return {k: averaged[k] for k in values}  # columns in the order one process logs them

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every process (every rank must call it)."""
        if not self.enabled:
            return bool(flag)
        tensor = torch.tensor([0.0 if flag else 1.0], dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item()) == 0.0

    def gather(self, value: Any) -> list[Any]:
        if not self.enabled:
            return [value]
        result: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(result, value)
        return result

    def broadcast(self, value: Any) -> Any:
        if not self.enabled:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def clip_gradients(parameters: Sequence[torch.nn.Parameter], max_norm: float) -> float:
    """The gradients' total L2 norm before clipping; clipped to ``max_norm`` when it is > 0."""
    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return 0.0
    limit = max_norm if max_norm > 0 else float("inf")
    return float(torch.nn.utils.clip_grad_norm_(with_grad, limit))


# --- randomness ----------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "sampler": generator.get_state(),
    }


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["sampler"])


# --- checkpoints ---------------------------------------------------------------------


def checksum(states: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    """SHA-256 of nested tensors (policy -> name -> tensor), to check replicas agree."""
    digest = hashlib.sha256()
    for policy in sorted(states):
        for name in sorted(states[policy]):
            digest.update(f"{policy}/{name}".encode())
            digest.update(states[policy][name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


RESUMABLE_CHANGES = frozenset(
    {
        "num_updates",
        "checkpoint_every",
        "resume",
        "threads",
        "tensorboard",
        "progress",
        "output_dir",
        "overwrite",
        "eval_every",
        "eval_episodes",
        "eval_seed_start",
        "log_completions",
        "log_kl",
        "track",
        "wandb_project",
        "wandb_entity",
        "plot",
        "export",
        "gradient_checkpointing",  # the same gradient, computed with less memory
    }
)
"""Arguments that may differ between a run and its resumption; any other change is refused."""


def argument_defaults(cls: type) -> dict[str, Any]:
    """Each trainer argument's default value (those that have one)."""
    values = {}
    for spec in fields(cls):
        if spec.default is not MISSING:
            values[spec.name] = spec.default
        elif spec.default_factory is not MISSING:
            values[spec.name] = spec.default_factory()
    return values


def check_resumable(
    saved: Mapping[str, Any], current: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> None:
    """Refuse to resume a checkpoint under different training settings. A setting the
    checkpoint does not name (added to the trainer after it was written) counts as its
    default from ``defaults``."""
    known = {**(defaults or {}), **saved}
    changed = sorted(
        key
        for key in set(known) | set(current)
        if key not in RESUMABLE_CHANGES and known.get(key) != current.get(key)
    )
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise TrainerConfigError(
            f"the checkpoint was trained with other settings ({details}); "
            "use another --output-dir, or --overwrite to start over"
        )


# --- metrics -------------------------------------------------------------------------


class MetricsLog:
    """Per-step metrics to ``metrics.csv``, TensorBoard and (``--track``) Weights & Biases,
    and sampled completions to ``completions.jsonl`` (main process only).

    Args:
        folder: run folder.
        resume_step: last step already covered by the checkpoint being resumed (0 for a new
            run); rows and completions of later steps are dropped, and so are TensorBoard
            events.
        enabled: False on non-main ranks.
        tensorboard: also write TensorBoard event files (hyperparameters as a text table).
        hyperparameters: the run's arguments, for TensorBoard and W&B.
        track: also log to W&B (the run id is kept in the folder, so a resume continues it).
    """

    def __init__(
        self,
        folder: Path,
        resume_step: int,
        enabled: bool = True,
        tensorboard: bool = True,
        hyperparameters: Mapping[str, Any] | None = None,
        track: bool = False,
        wandb_project: str = "mallm-envs",
        wandb_entity: str | None = None,
    ) -> None:
        self.path = folder / METRICS_NAME
        self.completions_path = folder / "completions.jsonl"
        self.enabled = enabled
        self.rows: list[dict[str, str]] = []
        self.columns: list[str] = []
        self.writer = None
        self.wandb_run = None
        if not enabled:
            return
        folder.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.columns = list(reader.fieldnames or [])
                self.rows = [r for r in reader if int(r["step"]) <= resume_step]
            self._rewrite()
        if self.completions_path.is_file():
            kept = [
                line
                for line in self.completions_path.read_text().splitlines()
                if line and json.loads(line)["step"] <= resume_step
            ]
            atomic_write_bytes(self.completions_path, "".join(f"{x}\n" for x in kept).encode())
        hyperparameters = dict(hyperparameters or {})
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is part of the llm extra
                print("tensorboard is not installed: logging to CSV only", file=sys.stderr)
            else:
                self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=resume_step + 1)
                table = "\n".join(f"|{k}|{v!r}|" for k, v in hyperparameters.items())
                self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
        if track:
            import wandb  # only with --track (checked at start)

            id_file = folder / "wandb_id"
            run_id = id_file.read_text().strip() if id_file.is_file() else wandb.util.generate_id()
            id_file.write_text(run_id + "\n")
            self.wandb_run = wandb.init(
                project=wandb_project,
                entity=wandb_entity,
                name=folder.name,
                id=run_id,
                resume="allow",
                config=hyperparameters,
                dir=str(folder),
            )

    def log(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": str(step), **{k: _format(v) for k, v in values.items()}}
        new_columns = [k for k in row if k not in self.columns]
        self.rows.append(row)
        if new_columns or not self.path.is_file():
            self.columns += new_columns
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as handle:
                csv.DictWriter(handle, self.columns, restval="").writerow(row)
                handle.flush()
                os.fsync(handle.fileno())
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, float(value), step)
            self.writer.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(dict(values), step=step)

    def log_completions(self, step: int, kind: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Append sampled completions (``kind``: 'train' or 'eval') for ``step``."""
        if not self.enabled or not records:
            return
        with open(self.completions_path, "a") as handle:
            for record in records:
                handle.write(json.dumps({"step": step, "kind": kind, **record}) + "\n")
        if self.writer is not None:
            header = "|agent|prompt|completion|reward|\n|-|-|-|-|\n"
            body = "\n".join(
                "|{}|{}|{}|{}|".format(
                    r["agent"],
                    _cell(r["prompt"][-300:]),
                    _cell(r["completion"]),
                    r.get("reward", ""),
                )
                for r in records
            )
            self.writer.add_text(f"completions/{kind}", header + body, step)

    def _rewrite(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, buffer.getvalue().encode())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


CURVE_PANELS = (
    ("team return", ("team_return", "eval/team_return")),
    ("loss", ("loss/",)),
    ("KL to base (per token)", ("kl/",)),
    ("entropy (per token)", ("entropy/",)),
    ("gradient norm", ("grad_norm/",)),
    ("tokens per response", ("tokens_mean/",)),
)


def plot_curves(folder: str | os.PathLike) -> Path | None:
    """Draw the run's logged curves into ``curves.png``; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no curves.png", file=sys.stderr)
        return None
    rows = read_metrics(folder)
    if not rows:
        return None
    columns = list(dict.fromkeys(k for row in rows for k in row))
    panels = []
    for title, prefixes in CURVE_PANELS:
        chosen = [c for c in columns if any(c == p or c.startswith(p) for p in prefixes)]
        chosen = [c for c in chosen if not (c.endswith(("_std", "_max", "_min")))]
        if chosen:
            panels.append((title, chosen))
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels)), squeeze=False)
    for axis, (title, chosen) in zip(axes[:, 0], panels):
        for column in chosen:
            points = [(r["step"], r[column]) for r in rows if column in r]
            axis.plot(*zip(*points), label=column, marker="." if len(points) < 30 else None)
        axis.set_title(title, fontsize=9)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("update")
    figure.tight_layout()
    path = Path(folder) / "curves.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _format(value: float) -> str:
    value = float(value)
    return repr(value) if math.isfinite(value) else str(value)


def read_metrics(folder: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv`` as floats (empty cells are skipped)."""
    with open(Path(folder) / METRICS_NAME, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
