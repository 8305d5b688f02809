"""Trainer benchmark: our MAGRPO vs CoMLRL's MAGRPOTrainer, and memory for 1, 2, 4 agents.

Side by side, in fresh processes:

1. Per-update time and peak memory of ``baselines/magrpo.py`` and of CoMLRL's
   ``MAGRPOTrainer`` (``comlrl==1.4.3``, its own venv) on the same model, the same prompts
   (the env's observations in the model's chat template), the same reward (computed by the
   env in both cases), group size 4, one update per task, two agents. Setups (``--sizes``):

   * ``tiny`` / ``small``: the offline tiny model and a 26 M-parameter model of the same
     family on CommonWord-v0, 8 new tokens, one thread, full fine-tuning (CoMLRL's set-up);
   * ``smollm2``: SmolLM2-135M-Instruct (the named model ``smollm2-135m``) on
     SummaryPair-v0, 128 new tokens, two threads; ours with LoRA adapters on one frozen base
     and with full fine-tuning, CoMLRL with its full copies.
2. Peak memory of one MAGRPO update with 1, 2 and 4 LoRA agents on one frozen base (the
   26 M model, so weights dominate the process's own footprint), against full copies.

Memory is the peak resident set size of the worker process minus its size after the
imports (``VmHWM`` - ``VmRSS`` at start), so library imports do not count.

Run (writes baselines/results/llm/bench_trainers.json and .md)::

    python benchmarks/bench_trainers.py --tasks 12
    python benchmarks/bench_trainers.py --comlrl-python peers/comlrl-venv/bin/python
    python benchmarks/bench_trainers.py --sizes smollm2 --tasks 3 --out smollm2
    python benchmarks/bench_trainers.py --sizes smollm2 --tasks 3 --bf16 --out smollm2_bf16

``--bf16`` adds, for ``smollm2``, both trainers with the model's weights in bfloat16 (ours:
the frozen base in bfloat16, the LoRA adapters in float32, as peft keeps them; CoMLRL: its
full copies in bfloat16), each compared with the other's bfloat16 run. Sampled answers
differ from the float32 runs' (rounding), so their rewards are compared, not their tokens.

CoMLRL's venv: ``python3 -m venv peers/comlrl-venv && peers/comlrl-venv/bin/pip install
comlrl==1.4.3 torch==2.13.0 pettingzoo gymnasium`` (its worker builds prompts and rewards
with this project's envs, which need pettingzoo and gymnasium).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "baselines" / "results" / "llm"
DEFAULT_PEER = str(ROOT / "peers" / "comlrl-venv" / "bin" / "python")
GROUP_SIZE = 4
SETUPS = {
    "tiny": {"env": "CommonWord-v0", "env_kwargs": {"max_turns": 1}, "tokens": 8, "threads": 1},
    "small": {"env": "CommonWord-v0", "env_kwargs": {"max_turns": 1}, "tokens": 8, "threads": 1},
    "smollm2": {"env": "SummaryPair-v0", "env_kwargs": {}, "tokens": 128, "threads": 2},
}
"""Per model: the env whose prompts and reward both trainers use, new tokens, torch threads."""
ADAPTERS = {
    "tiny": ("full",),
    "small": ("full",),
    "smollm2": ("lora", "full"),
}
"""Our modes timed per model (CoMLRL always fine-tunes full copies): LoRA adapters on one
frozen base or full copies. ``--adapter lora+gc`` / ``full+gc`` time the trainers'
``--gradient-checkpointing`` path (transformers' checkpointing, each response scored with
its whole prompt, no shared cache); it is no longer in the default set: the default update
already recomputes the prompt pass in chunks and scores responses a row at a time, and
measured at git a3fe04a the ``+gc`` path took 1.8x the time of the default one for more
memory (87.8 s and 2,197 MiB against 49.4 s and 1,919 MiB)."""


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _is_bf16(mode: str) -> bool:
    """Whether a trainer mode (``lora``, ``full+gc``, ``lora+bf16``...) runs in bfloat16."""
    return "bf16" in mode.split("+")


def _model_path(size: str) -> str:
    from mallm_envs.agents.tiny_model import TinyModelConfig, tiny_model_path

    if size == "smollm2":
        # The peer's venv has no weights package: the driver passes the cached folder on.
        if os.environ.get("MALLM_BENCH_SMOLLM2"):
            return os.environ["MALLM_BENCH_SMOLLM2"]
        from mallm_envs.data.models import named_model_path

        return str(named_model_path("smollm2-135m"))
    if size == "tiny":
        return str(tiny_model_path())
    config = TinyModelConfig(
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
    )
    return str(tiny_model_path(config=config))


# --- workers (run in their own process) -----------------------------------------------


def worker_ours(size: str, tasks: int, adapter: str = "full") -> dict:
    """One run of our MAGRPO; ``adapter`` is ``lora`` or ``full``, ``+gc`` for gradient
    checkpointing. Our per-update KL/entropy diagnostic is off: CoMLRL computes none."""
    import torch

    setup = SETUPS[size]
    torch.set_num_threads(setup["threads"])
    import peft  # noqa: F401  (imported before the baseline, as CoMLRL's worker does)
    import transformers  # noqa: F401

    from baselines import magrpo

    path = _model_path(size)
    baseline = _status_kib("VmRSS")
    with tempfile.TemporaryDirectory() as folder:
        mode, *extras = adapter.split("+")
        args = magrpo.Args(
            env_id=setup["env"],
            env_kwargs=json.dumps(setup["env_kwargs"]),
            model=path,
            adapter=mode,
            gradient_checkpointing="gc" in extras,
            dtype="bfloat16" if _is_bf16(adapter) else "float32",
            log_kl=False,
            group_size=GROUP_SIZE,
            max_new_tokens=setup["tokens"],
            learning_rate=1e-5,
            num_updates=tasks,
            checkpoint_every=10**9,
            output_dir=folder,
            tensorboard=False,
            progress=False,
            threads=setup["threads"],
        )
        peak = {}

        def before_last_checkpoint(step: int, metrics: dict) -> None:
            # The run writes a checkpoint after its last update; CoMLRL's timed run writes
            # none, so memory is read one update earlier (checkpoints are not updates).
            if step == tasks - 1:
                peak["kib"] = _status_kib("VmHWM")

        began = time.perf_counter()
        rows = magrpo.train(args, on_step=before_last_checkpoint)
        total = time.perf_counter() - began
    return {
        "trainer": "ours",
        "adapter": adapter,
        "team_return_mean": sum(r["team_return"] for r in rows) / len(rows),
        "seconds_per_update": sum(r["time/step"] for r in rows) / len(rows),
        "seconds_total_with_setup": total,
        "peak_mib": (peak["kib"] - baseline) / 1024,
    }


class PeerSetupError(RuntimeError):
    """The peer trainer would not see the prompts and completions ours sees."""


def peer_items(tokenizer: Any, env_id: str, env_kwargs: dict, tasks: int) -> list[dict]:
    """CoMLRL's dataset: per task, its seed and each role's chat-formatted prompt.

    CoMLRL takes a prompt to end at its first pad token. SmolLM2's pad token is its
    ``<|im_end|>``, which the chat template writes inside every prompt (after the system
    turn), so each completion would be cut to nothing and score 0 while CoMLRL's update
    scored the prompt's tail. Its ``<|endoftext|>`` never appears in a prompt: the tokenizer
    gets that pad token. Raises :class:`PeerSetupError` if a prompt still holds the pad token.
    """
    import mallm_envs

    if (
        tokenizer.pad_token_id == tokenizer.eos_token_id
        and "<|endoftext|>" in tokenizer.get_vocab()
    ):
        tokenizer.pad_token = "<|endoftext|>"
    roles = list(mallm_envs.make(env_id, **env_kwargs).possible_agents)
    items = []
    for seed in range(tasks):
        env = mallm_envs.make(env_id, **env_kwargs)
        env.reset(seed=seed)
        item: dict[str, Any] = {"seed": seed}
        for index, role in enumerate(roles):
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": env.observe(role)["text"]}],
                tokenize=False,
                add_generation_prompt=True,
            )
            if tokenizer.pad_token_id in tokenizer(prompt)["input_ids"]:
                raise PeerSetupError(
                    f"the pad token {tokenizer.pad_token!r} is inside {role}'s prompt: CoMLRL "
                    "would cut the prompt there and score the wrong tokens"
                )
            item[f"prompt_{index}"] = prompt
        items.append(item)
    return items


def worker_comlrl(size: str, tasks: int, adapter: str = "full") -> dict:
    """One run of CoMLRL's trainer; ``adapter`` is ``full`` or ``full+bf16`` (copies in
    bfloat16)."""
    import torch

    setup = SETUPS[size]
    torch.set_num_threads(setup["threads"])
    from comlrl.trainers.reinforce.magrpo import MAGRPOConfig, MAGRPOTrainer
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import mallm_envs

    path = _model_path(size)
    tokenizer = AutoTokenizer.from_pretrained(path)
    roles = list(mallm_envs.make(setup["env"], **setup["env_kwargs"]).possible_agents)
    items = peer_items(tokenizer, setup["env"], setup["env_kwargs"], tasks)
    rewards_seen: list[float] = []
    words_seen: list[int] = []

    def reward(*completions: list[str], batch_items=None) -> list[float]:
        # The same reward as ours: the env scores the joint action.
        words_seen.extend(len(texts[0].split()) for texts in completions)
        env = mallm_envs.make(setup["env"], **setup["env_kwargs"])
        env.reset(seed=int(batch_items[0]["seed"]))
        for role, texts in zip(roles, completions):
            assert env.agent_selection == role
            env.step(texts[0])
        rewards_seen.append(float(env.rewards[roles[0]]))
        return [rewards_seen[-1]]

    formatters = [
        (lambda item, index=index: item[f"prompt_{index}"]) for index in range(len(roles))
    ]
    baseline = _status_kib("VmRSS")
    dtype = torch.bfloat16 if _is_bf16(adapter) else torch.float32
    agents = [AutoModelForCausalLM.from_pretrained(path, dtype=dtype) for _ in roles]
    config = MAGRPOConfig(
        num_train_epochs=1,
        agent_learning_rate=1e-5,
        num_agents=len(roles),
        num_generations=GROUP_SIZE,
        max_new_tokens=setup["tokens"],
        temperature=0.7,
        top_p=0.9,
        top_k=None,
        num_turns=1,
        eval_interval=0,
        eval_num_samples=0,
        rollout_buffer_size=1,
        train_batch_size=1,
        advantage_normalization=False,
        early_termination_threshold=None,
        logging_steps=10**9,
    )
    trainer = MAGRPOTrainer(
        agents=agents,
        tokenizer=tokenizer,
        train_dataset=Dataset.from_list(items),
        reward_func=reward,
        formatters=formatters,
        args=config,
        wandb_config=None,
    )
    trainer.verbose = False
    began = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - began
    return {
        "trainer": "comlrl",
        "adapter": adapter,
        "team_return_mean": sum(rewards_seen) / max(len(rewards_seen), 1),
        "completion_words_mean": sum(words_seen) / max(len(words_seen), 1),
        "seconds_per_update": total / tasks,
        "peak_mib": (_status_kib("VmHWM") - baseline) / 1024,
    }


def worker_memory(size: str, agents: int, adapter: str) -> dict:
    import torch

    torch.set_num_threads(1)
    import peft  # noqa: F401  (imports are not the agents' memory)
    import transformers  # noqa: F401

    from mallm_envs.agents.llm import MultiAgentLM, SamplingConfig

    path = _model_path(size)
    baseline = _status_kib("VmRSS")
    names = [f"agent_{i}" for i in range(agents)]
    lm = MultiAgentLM(names, path, adapter=adapter)
    optimizers = {
        p: torch.optim.AdamW(lm.trainable_parameters(a), lr=1e-5) for a, p in lm.policy_of.items()
    }
    generator = torch.Generator().manual_seed(0)
    prompt = "You and your partner each see the same words. Your words: apple, river, stone."
    out = lm.generate(
        {a: [prompt] for a in names},
        num_samples=GROUP_SIZE,
        sampling=SamplingConfig(max_new_tokens=16),
        generator=generator,
    )
    for agent in names:
        samples = out[agent][0]
        optimizer = optimizers[lm.policy_name(agent)]
        optimizer.zero_grad()
        logprobs = lm.sequence_logprobs(
            agent, [s.prompt_ids for s in samples], [s.response_ids for s in samples]
        )
        advantages = torch.linspace(-1, 1, len(samples))
        (-(advantages * logprobs).mean()).backward()
        optimizer.step()
    return {
        "agents": agents,
        "adapter": adapter,
        "peak_mib": (_status_kib("VmHWM") - baseline) / 1024,
        **lm.memory_report(),
    }


# --- driver ---------------------------------------------------------------------------


def _run(python: str, *arguments: str) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if "smollm2" in arguments:
        environment["MALLM_BENCH_SMOLLM2"] = _model_path("smollm2")
    result = subprocess.run(
        [python, __file__, *arguments],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"worker {arguments} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12, help="updates timed per trainer")
    parser.add_argument("--comlrl-python", default=DEFAULT_PEER)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=list(SETUPS))
    parser.add_argument("--worker", choices=["ours", "comlrl", "memory"])
    parser.add_argument("--size", default="tiny", choices=list(SETUPS))
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--adapter", default="lora")
    parser.add_argument("--no-memory", action="store_true", help="skip the 1/2/4-agent sweep")
    parser.add_argument("--out", default="bench_trainers", help="results file stem")
    parser.add_argument(
        "--bf16", action="store_true", help="smollm2: also both trainers with bfloat16 weights"
    )
    options = parser.parse_args()

    if options.worker == "ours":
        print(json.dumps(worker_ours(options.size, options.tasks, options.adapter)))
        return
    if options.worker == "comlrl":
        print(json.dumps(worker_comlrl(options.size, options.tasks, options.adapter)))
        return
    if options.worker == "memory":
        print(json.dumps(worker_memory(options.size, options.agents, options.adapter)))
        return

    ours_python = sys.executable
    _run(ours_python, "--worker", "memory", "--size", "small", "--agents", "1")  # build caches
    report: dict = {
        "group_size": GROUP_SIZE,
        "setups": {size: SETUPS[size] for size in options.sizes},
        "tasks": options.tasks,
    }
    report["trainers"] = {}
    peer = Path(options.comlrl_python)
    tasks = str(options.tasks)
    for size in options.sizes:
        entry: dict = {}
        modes = list(ADAPTERS[size])
        peer_modes = {"comlrl": "full"}  # entry name: the peer's mode
        if options.bf16 and size == "smollm2":
            modes.append("lora+bf16")
            peer_modes["comlrl+bf16"] = "full+bf16"
        for adapter in modes:
            entry[f"ours-{adapter}"] = _run(
                ours_python, "--worker", "ours", "--size", size, "--tasks", tasks,
                "--adapter", adapter,
            )  # fmt: skip
        if peer.is_file():
            for name, peer_mode in peer_modes.items():
                entry[name] = _run(
                    str(peer), "--worker", "comlrl", "--size", size, "--tasks", tasks,
                    "--adapter", peer_mode,
                )  # fmt: skip
            for adapter in modes:
                # Each of ours against the peer at the same precision.
                theirs = entry["comlrl+bf16" if _is_bf16(adapter) else "comlrl"]
                ours = entry[f"ours-{adapter}"]
                entry[f"time_ratio_comlrl_over_ours-{adapter}"] = (
                    theirs["seconds_per_update"] / ours["seconds_per_update"]
                )
                entry[f"memory_ratio_comlrl_over_ours-{adapter}"] = theirs["peak_mib"] / max(
                    ours["peak_mib"], 1e-9
                )
        else:
            entry["comlrl"] = f"skipped: {peer} not found"
        report["trainers"][size] = entry
    memory = {}
    if not options.no_memory:
        for adapter in ("lora", "full"):
            for agents in (1, 2, 4):
                memory[f"{adapter}-{agents}"] = _run(
                    ours_python, "--worker", "memory", "--size", "small", "--agents", str(agents),
                    "--adapter", adapter,
                )  # fmt: skip
        for adapter in ("lora", "full"):
            one = memory[f"{adapter}-1"]["peak_mib"]
            for agents in (2, 4):
                memory[f"{adapter}-{agents}"]["ratio_vs_1_agent"] = (
                    memory[f"{adapter}-{agents}"]["peak_mib"] / one
                )
        report["memory_small_model"] = memory
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
        ).stdout.strip()
    except OSError:
        revision = ""
    report["git_revision"] = revision or None
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{options.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "| model | trainer | s / update | peak MiB | mean team return |",
        "|---|---|---|---|---|",
    ]
    for size, entry in report["trainers"].items():
        for name, value in entry.items():
            if isinstance(value, dict):
                lines.append(
                    f"| {size} | {name} | {value['seconds_per_update']:.3f} | "
                    f"{value['peak_mib']:.1f} | {value.get('team_return_mean', float('nan')):.3f} |"
                )
        for adapter in [k.removeprefix("ours-") for k in entry if k.startswith("ours-")]:
            key = f"time_ratio_comlrl_over_ours-{adapter}"
            if key in entry:
                peer_name = "CoMLRL bf16" if _is_bf16(adapter) else "CoMLRL"
                lines.append(
                    f"| {size} | ratio {peer_name} / ours-{adapter} | {entry[key]:.2f}x | "
                    f"{entry[f'memory_ratio_comlrl_over_ours-{adapter}']:.2f}x | |"
                )
    if memory:
        lines += ["", "| adapter | agents | peak MiB | ratio vs 1 agent |", "|---|---|---|---|"]
        for value in memory.values():
            ratio = value.get("ratio_vs_1_agent")
            lines.append(
                f"| {value['adapter']} | {value['agents']} | {value['peak_mib']:.1f} | "
                f"{'' if ratio is None else f'{ratio:.2f}x'} |"
            )
    lines += ["", f"git revision: {report['git_revision']}"]
    (RESULTS / f"{options.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
