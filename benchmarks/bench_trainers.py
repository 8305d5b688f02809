"""Trainer benchmark: our MAGRPO vs CoMLRL's MAGRPOTrainer, and memory for 1, 2, 4 agents.

Side by side, in fresh processes, one thread each:

1. Per-update time and peak memory of ``baselines/magrpo.py`` and of CoMLRL's
   ``MAGRPOTrainer`` (``comlrl==1.4.3``, its own venv) on the same model (the offline tiny
   model, and a 26 M-parameter model of the same family), the same reward (CommonWord-v0's,
   computed by the env in both cases), group size 4, 8 new tokens, one update per task,
   full fine-tuning of two agents (CoMLRL's set-up).
2. Peak memory of one MAGRPO update with 1, 2 and 4 LoRA agents on one frozen base (the
   26 M model, so weights dominate the process's own footprint), against full copies.

Memory is the peak resident set size of the worker process minus its size after the
imports (``VmHWM`` - ``VmRSS`` at start), so library imports do not count.

Run (writes baselines/results/llm/bench_trainers.json and .md)::

    python benchmarks/bench_trainers.py --tasks 12
    python benchmarks/bench_trainers.py --comlrl-python peers/comlrl-venv/bin/python
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "baselines" / "results" / "llm"
DEFAULT_PEER = str(ROOT / "peers" / "comlrl-venv" / "bin" / "python")
GROUP_SIZE = 4
NEW_TOKENS = 8
ENV_KWARGS = {"max_turns": 1}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _model_path(size: str) -> str:
    from mallm_envs.agents.tiny_model import TinyModelConfig, tiny_model_path

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


def worker_ours(size: str, tasks: int) -> dict:
    import torch

    torch.set_num_threads(1)
    import peft  # noqa: F401  (imported before the baseline, as CoMLRL's worker does)
    import transformers  # noqa: F401

    from baselines import magrpo

    path = _model_path(size)
    baseline = _status_kib("VmRSS")
    with tempfile.TemporaryDirectory() as folder:
        args = magrpo.Args(
            env_kwargs=json.dumps(ENV_KWARGS),
            model=path,
            adapter="full",
            group_size=GROUP_SIZE,
            max_new_tokens=NEW_TOKENS,
            learning_rate=1e-5,
            num_updates=tasks,
            checkpoint_every=10**9,
            output_dir=folder,
            tensorboard=False,
            progress=False,
            threads=1,
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
        "seconds_per_update": sum(r["time/step"] for r in rows) / len(rows),
        "seconds_total_with_setup": total,
        "peak_mib": (peak["kib"] - baseline) / 1024,
    }


def worker_comlrl(size: str, tasks: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from comlrl.trainers.reinforce.magrpo import MAGRPOConfig, MAGRPOTrainer
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import mallm_envs

    path = _model_path(size)
    tokenizer = AutoTokenizer.from_pretrained(path)
    items = []
    for seed in range(tasks):
        env = mallm_envs.make("CommonWord-v0", **ENV_KWARGS)
        env.reset(seed=seed)
        text = env.observe("agent_0")["text"]
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        items.append({"prompt": prompt, "seed": seed})

    def reward(first: list[str], second: list[str], *, batch_items=None) -> list[float]:
        # The same reward as ours: the env scores the joint action.
        env = mallm_envs.make("CommonWord-v0", **ENV_KWARGS)
        env.reset(seed=int(batch_items[0]["seed"]))
        env.step(first[0])
        env.step(second[0])
        return [float(env.rewards["agent_0"])]

    baseline = _status_kib("VmRSS")
    agents = [AutoModelForCausalLM.from_pretrained(path) for _ in range(2)]
    config = MAGRPOConfig(
        num_train_epochs=1,
        agent_learning_rate=1e-5,
        num_agents=2,
        num_generations=GROUP_SIZE,
        max_new_tokens=NEW_TOKENS,
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
        args=config,
        wandb_config=None,
    )
    trainer.verbose = False
    began = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - began
    return {
        "trainer": "comlrl",
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
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--worker", choices=["ours", "comlrl", "memory"])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--adapter", default="lora")
    options = parser.parse_args()

    if options.worker == "ours":
        print(json.dumps(worker_ours(options.size, options.tasks)))
        return
    if options.worker == "comlrl":
        print(json.dumps(worker_comlrl(options.size, options.tasks)))
        return
    if options.worker == "memory":
        print(json.dumps(worker_memory(options.size, options.agents, options.adapter)))
        return

    ours_python = sys.executable
    _run(ours_python, "--worker", "memory", "--size", "small", "--agents", "1")  # build caches
    report: dict = {"group_size": GROUP_SIZE, "max_new_tokens": NEW_TOKENS, "tasks": options.tasks}
    report["trainers"] = {}
    peer = Path(options.comlrl_python)
    for size in options.sizes:
        ours = _run(ours_python, "--worker", "ours", "--size", size, "--tasks", str(options.tasks))
        entry = {"ours": ours}
        if peer.is_file():
            theirs = _run(
                str(peer), "--worker", "comlrl", "--size", size, "--tasks", str(options.tasks)
            )
            entry["comlrl"] = theirs
            entry["time_ratio_comlrl_over_ours"] = (
                theirs["seconds_per_update"] / ours["seconds_per_update"]
            )
            entry["memory_ratio_comlrl_over_ours"] = theirs["peak_mib"] / max(
                ours["peak_mib"], 1e-9
            )
        else:
            entry["comlrl"] = f"skipped: {peer} not found"
        report["trainers"][size] = entry
    memory = {}
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
    (RESULTS / "bench_trainers.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| model | trainer | s / update | peak MiB |", "|---|---|---|---|"]
    for size, entry in report["trainers"].items():
        for name in ("ours", "comlrl"):
            value = entry[name]
            if isinstance(value, dict):
                lines.append(
                    f"| {size} | {name} | {value['seconds_per_update']:.3f} | {value['peak_mib']:.1f} |"
                )
        if "time_ratio_comlrl_over_ours" in entry:
            lines.append(
                f"| {size} | ratio CoMLRL / ours | {entry['time_ratio_comlrl_over_ours']:.2f}x | {entry['memory_ratio_comlrl_over_ours']:.2f}x |"
            )
    lines += ["", "| adapter | agents | peak MiB | ratio vs 1 agent |", "|---|---|---|---|"]
    for value in memory.values():
        ratio = value.get("ratio_vs_1_agent")
        lines.append(
            f"| {value['adapter']} | {value['agents']} | {value['peak_mib']:.1f} | {'' if ratio is None else f'{ratio:.2f}x'} |"
        )
    (RESULTS / "bench_trainers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
