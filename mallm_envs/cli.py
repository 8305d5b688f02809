"""The ``mallm`` command.

mallm list                                  ids, agents and one-line descriptions
mallm play ID [--agents random] [--seed 0]  play one episode and print its transcript
mallm demo                                  a scripted episode of every registered env
mallm evaluate ID --agent SPEC --out F      play the official suite, write a submission
mallm evaluate ID --agent SPEC --cross-play ... the same with each held-out partner
mallm partners ID                           list an env's partner population
mallm verify FILE ...                       re-check submissions by replay
mallm board [ROOT]                          verify every submission, rebuild the boards
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mallm_envs.core.errors import MallmError


def _registry() -> Any:
    import mallm_envs

    return mallm_envs.registry


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry()
    rows = [(spec.id, ", ".join(spec.agents), spec.description) for spec in registry.values()]
    if args.json:
        print(json.dumps([registry[r[0]].to_dict() for r in rows], indent=2))
        return 0
    width_id = max([len("id")] + [len(r[0]) for r in rows])
    width_agents = max([len("agents")] + [len(r[1]) for r in rows])
    print(f"{'id':<{width_id}}  {'agents':<{width_agents}}  description")
    for env_id, agents, description in rows:
        print(f"{env_id:<{width_id}}  {agents:<{width_agents}}  {description}")
    return 0


def _observation_text(observation: Any) -> str:
    if isinstance(observation, dict) and isinstance(observation.get("text"), str):
        return observation["text"]
    shape = []
    value = observation
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return f"(numeric observation, shape {tuple(shape)})"


def format_episode(
    episode: Any, *, max_observation_lines: int | None = None, max_turns_shown: int | None = None
) -> str:
    """A readable transcript: each observation, action, and each turn's reward.

    ``max_turns_shown`` limits the detail to the first turns (long episodes such as the
    kitchen's 400 steps); the summary line always covers the whole episode.
    """
    hidden_steps = 0
    out: list[str] = [
        f"== {episode.env_id}  seed={episode.seed}  agents={', '.join(episode.agents)}"
    ]
    last_turn = 0
    for step in episode.steps:
        info = step.info or {}
        turn = int(info.get("turn", 0)) if isinstance(info, dict) else 0
        if turn > last_turn:
            if max_turns_shown is None or turn <= max_turns_shown:
                out.append(_turn_summary(turn, step))
            last_turn = turn
        if step.action is None:
            continue
        if max_turns_shown is not None and turn >= max_turns_shown:
            hidden_steps += 1
            continue
        text = _observation_text(step.observation)
        lines = text.splitlines()
        if max_observation_lines is not None and len(lines) > max_observation_lines:
            hidden = len(lines) - max_observation_lines
            lines = [*lines[:max_observation_lines], f"... ({hidden} more lines)"]
        out.append(f"-- {step.agent} observes:")
        out.extend(textwrap.indent(line, "   | ") for line in lines)
        out.append(f"-- {step.agent} acts:")
        action = step.action if isinstance(step.action, str) else repr(step.action)
        out.extend(textwrap.indent(line, "   > ") for line in (action.splitlines() or [""]))
    if hidden_steps:
        out.append(f"... ({hidden_steps} more steps not shown)")
    out.append(f"== team return {episode.team_return:+.3f} over {episode.turns} turn(s)")
    return "\n".join(out)


def _turn_summary(turn: int, step: Any) -> str:
    info = step.info
    components = ", ".join(f"{k}={v:+.3g}" for k, v in info.get("reward_components", {}).items())
    lines = [
        f"== turn {turn} done: reward {step.reward:+.3f}"
        + (f" ({components})" if components else "")
    ]
    lines += [f"   * {event}" for event in info.get("events", [])]
    return "\n".join(lines)


def _env_id(text: str) -> str:
    """An env id, or Gymnasium's ``module:EnvName-v0``: import the module (which registers
    its envs; the current folder is searched too), then look the id up."""
    module, colon, env_id = text.rpartition(":")
    if not colon:
        return text
    import importlib
    import os

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise MallmError(f"cannot import {module!r} to find the env {env_id!r}: {err}") from None
    return env_id


def _agent_specs(values: Any) -> Any:
    """What ``--agent`` gave: one string (split at commas), or several whole ``ROLE=SPEC``."""
    values = list(values or ["random"])
    return values[0] if len(values) == 1 else values


def _llm_settings(args: argparse.Namespace) -> Any:
    from mallm_envs.agents.spec import LLMSettings

    return LLMSettings(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
        allow_download=args.allow_download,
    )


def _add_llm_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "LLM agents", "how llm:, prompting:, checkpoint: and openai: agents load and decode"
    )
    group.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="0 is greedy (default 0.7; checkpoints: as trained)",
    )
    group.add_argument("--top-p", type=float, default=None, help="nucleus mass (default 0.9)")
    group.add_argument(
        "--max-new-tokens", type=int, default=None, help="response budget in tokens (default 256)"
    )
    group.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    group.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")
    group.add_argument(
        "--allow-download", action="store_true", help="let a hub id be fetched (off by default)"
    )


def _recorded_decoding(per_role: Any) -> dict[str, Any] | None:
    """The sampling settings the agents ran with, as their descriptions record them."""
    settings = {
        role: description["sampling"]
        for role, description in (per_role or {}).items()
        if isinstance(description, dict) and isinstance(description.get("sampling"), dict)
    }
    if not settings:
        return None
    values = list(settings.values())
    same = len(settings) == len(per_role) and all(v == values[0] for v in values)
    return values[0] if same else settings  # a mixed team records each role's decoding


def cmd_play(args: argparse.Namespace) -> int:
    import mallm_envs
    from mallm_envs.agents.spec import build_agents
    from mallm_envs.core import run_episode

    kwargs = json.loads(args.kwargs) if args.kwargs else {}
    env = mallm_envs.make(_env_id(args.env_id), **kwargs)
    agents = build_agents(
        _agent_specs(args.agents), env, seed=args.seed, settings=_llm_settings(args)
    )
    options = json.loads(args.options) if args.options else None
    episode = run_episode(env, agents, seed=args.seed, options=options)
    print(
        format_episode(
            episode, max_observation_lines=args.max_lines, max_turns_shown=args.show_turns
        )
    )
    if args.out:
        from mallm_envs.core import save_episodes

        save_episodes(args.out, [episode])
        print(f"transcript written to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import mallm_envs
    from mallm_envs.agents.spec import build_agents
    from mallm_envs.core import run_episode

    rows = []
    for env_id, spec in mallm_envs.registry.items():
        env = mallm_envs.make(env_id)
        which = "scripted" if spec.scripted_agent else "random"
        episode = run_episode(env, build_agents(which, env, seed=args.seed), seed=args.seed)
        print(
            format_episode(
                episode, max_observation_lines=args.max_lines, max_turns_shown=args.show_turns
            )
        )
        print()
        flags = [i["success"] for i in episode.final_infos.values() if "success" in i]
        success = any(flags) if flags else "-"
        rows.append((env_id, which, episode.turns, episode.team_return, success))
        env.close()
    print(f"{'env':<28} {'agents':<9} {'turns':>5} {'return':>9}  success")
    for env_id, which, turns, ret, success in rows:
        print(f"{env_id:<28} {which:<9} {turns:>5} {ret:>+9.3f}  {success}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mallm_envs.agents import spec as agent_spec
    from mallm_envs.agents.spec import build_agents
    from mallm_envs.leaderboard import evaluate
    from mallm_envs.leaderboard.suites import split_board_id
    from mallm_envs.registration import spec as env_spec

    settings = _llm_settings(args)
    args.env_id = _env_id(args.env_id)
    base_id, _variant = split_board_id(args.env_id)
    by_role = agent_spec.role_specs(_agent_specs(args.agent), env_spec(base_id).agents)
    llm_spec = agent_spec.uses_model(by_role)
    if args.decoding and llm_spec:
        raise MallmError(
            "--decoding is recorded from the LLM agents themselves; set it with "
            "--temperature, --top-p and --max-new-tokens instead"
        )
    model = args.model if args.model is not None else agent_spec.team_model(by_role)
    info = {
        "name": args.name or agent_spec.default_name(by_role),
        "spec": agent_spec.team_spec(by_role),
        "model": model,
        "revision": args.revision,
        "decoding": json.loads(args.decoding) if args.decoding else None,
        "description": args.description,
    }
    from mallm_envs.leaderboard.verify import check_agent_info

    check_agent_info(info)
    env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else {}
    if not isinstance(env_kwargs, dict):
        raise MallmError("--env-kwargs must be a JSON object")
    episodes_dir = _episodes_dir(args.out)
    if args.restart and episodes_dir.exists():
        shutil.rmtree(episodes_dir)
    elif any(episodes_dir.glob("episode-*.json")):
        found = len(list(episodes_dir.glob("episode-*.json")))
        print(f"resuming: {found} finished episode(s) in {episodes_dir}", file=sys.stderr)
    try:
        submission = evaluate(
            args.env_id,
            lambda env: build_agents(by_role, env, seed=0, settings=settings),
            agent_info=info,
            limit=args.limit,
            progress=not args.quiet,
            env_kwargs=env_kwargs,
            seed=args.seed,
            episodes_dir=episodes_dir,
            run_config={"llm_settings": dataclasses.asdict(settings)},
            concurrency=args.concurrency,
            batch_episodes=args.batch_episodes,
            cross_play=args.cross_play,
        )
    except KeyboardInterrupt:
        kept = len(list(episodes_dir.glob("episode-*.json")))
        print(
            f"\ninterrupted: {kept} finished episode(s) kept in {episodes_dir}; run the same "
            "command again to resume",
            file=sys.stderr,
        )
        return 130
    if llm_spec:
        submission.agent["decoding"] = _recorded_decoding(submission.agent.get("per_role"))
    submission.save(args.out)
    shutil.rmtree(episodes_dir, ignore_errors=True)  # the submission holds them all now
    if submission.unofficial is not None:
        print(f"unofficial run ({_unofficial_reasons(submission.unofficial)}): not for boards")
    s = submission.summary
    r, sr = s["team_return"], s["success_rate"]
    success = "" if sr is None else f", success {100 * sr['mean']:.1f}%"
    kind = ""
    if submission.cross_play is not None:
        from mallm_envs.leaderboard.board import cross_play_stats

        stats = cross_play_stats(submission.episodes, submission.cross_play["games"])
        kind = " cross-play"
        for name, value in stats["partners"].items():
            print(f"  with {name}: team return {value['mean']:.3f} over {value['n']} episode(s)")
        r = stats["team_return"]
    print(
        f"{submission.board_id}{kind}: {s['episodes']} episodes, team return {r['mean']:.3f} "
        f"[{r['low']:.3f}, {r['high']:.3f}]{success}"
    )
    print(f"submission written to {args.out}")
    return 0


def cmd_partners(args: argparse.Namespace) -> int:
    from mallm_envs.leaderboard.population import load_population
    from mallm_envs.leaderboard.suites import load_suite

    population = load_population(args.board_id)
    suite = load_suite(args.board_id)
    games = population.games(suite)
    print(
        f"{population.board_id}: {len(population.partners)} partners, {len(games)} cross-play "
        f"episodes (population {population.digest}, suite {suite.digest})"
    )
    for partner in population.partners:
        seats = ", ".join(partner.roles)
        print(f"  {partner.name:<18} seats {seats:<22} {partner.description}")
    return 0


def _episodes_dir(out: str) -> Path:
    """Where ``mallm evaluate --out OUT`` keeps finished episodes until OUT is written."""
    return Path(f"{out}.episodes")


def _unofficial_reasons(unofficial: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in unofficial.items() if key != "note")


class _RenamedDisplayLimit(argparse.Action):
    """``--max-turns`` of play and demo: renamed, since it read like the env's ``max_turns``."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        parser.error(
            "--max-turns was a display limit and is now --show-turns N (print the detail of "
            "at most N turns); to change the env's own horizon use --kwargs '{\"max_turns\": N}'"
        )


def cmd_verify(args: argparse.Namespace) -> int:
    from mallm_envs.leaderboard.verify import VerificationError, verify_file

    status = 0
    for path in args.files:
        try:
            report = verify_file(
                path, reproduce_agent=args.reproduce, batch_episodes=args.batch_episodes
            )
        except VerificationError as err:
            print(f"FAIL {path}: {err}")
            status = 1
            continue
        r = report.summary["team_return"]
        kind = " cross-play" if report.submission.cross_play is not None else ""
        print(
            f"OK   {path}: {report.board_id or report.submission.env_id}{kind}, "
            f"{report.summary['episodes']} episodes "
            f"{report.check}, team return {r['mean']:.3f} (actions {report.actions_hash})"
        )
        for note in report.timing_notes:
            print(f"     timing-adjusted {note}")
        if args.reproduce and report.check != "reproduced":
            print(f"     not reproduced: {report.reproduce_note}")
    return status


def cmd_board(args: argparse.Namespace) -> int:
    from mallm_envs.leaderboard import build
    from mallm_envs.leaderboard.board import CROSS_PLAY_SUFFIX

    boards, failures, written = build(
        args.root,
        reproduce=not args.replay_only,
        reproduce_models=args.reproduce_models,
        batch_episodes=args.batch_episodes,
    )
    for env_id, entries in sorted(boards.items()):
        reproduced = sum(e.report.check == "reproduced" for e in entries)
        kind = " cross-play" if env_id.endswith(CROSS_PLAY_SUFFIX) else ""
        print(
            f"{env_id.removesuffix(CROSS_PLAY_SUFFIX)}:{kind} {len(entries)} verified "
            f"submission(s), {reproduced} reproduced"
        )
        for entry in entries:
            if entry.report.reproduce_note.startswith("reproduction failed"):
                print(f"  NOT REPRODUCED {entry.file}: {entry.report.reproduce_note}")
    for failure in failures:
        print(f"REJECTED {failure}")
    for path in written:
        print(f"wrote {path}")
    return 1 if failures else 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_reproduce_batch_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch-episodes",
        type=_positive_int,
        default=1,
        help="reproduce N episodes side by side, their model calls batched (the in-process "
        "models decode batch-invariant, so the actions are the same; faster for LLM entries)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mallm", description="Cooperative multi-agent text environments."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the registered environment ids")
    p.add_argument("--json", action="store_true", help="print the full specs as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("play", help="play one episode and print the transcript")
    p.add_argument(
        "env_id", help="an env id, or module:EnvName-v0 for an env your module registers"
    )
    p.add_argument(
        "--agents",
        "--agent",
        dest="agents",
        action="append",
        default=None,
        help="agent spec (random, scripted, fixed:TEXT, llm:MODEL, openai:MODEL@URL, "
        "module:factory, file.py:factory; default random): one for all roles, comma-separated "
        "per role, or repeated as ROLE=SPEC (--agent helper=scripted --agent main=llm:tiny)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--kwargs",
        default=None,
        help='env keyword arguments as JSON, e.g. \'{"schedule": "sequential"}\'',
    )
    p.add_argument("--options", default=None, help="reset options as JSON")
    p.add_argument(
        "--max-lines",
        type=int,
        default=None,
        help="show at most this many lines of each observation",
    )
    p.add_argument(
        "--show-turns",
        type=int,
        default=None,
        help="print the detail of at most this many turns (display only; the summary line "
        "covers the whole episode)",
    )
    p.add_argument("--max-turns", action=_RenamedDisplayLimit, help=argparse.SUPPRESS)
    p.add_argument(
        "--out", default=None, help="also write the transcript (JSON lines; .gz to compress)"
    )
    _add_llm_arguments(p)
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("demo", help="a scripted episode of every registered env")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-lines", type=int, default=12)
    p.add_argument("--show-turns", type=int, default=2, help="print the detail of this many turns")
    p.add_argument("--max-turns", action=_RenamedDisplayLimit, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("evaluate", help="play an env's official suite and write a submission")
    p.add_argument(
        "env_id", help="an env id, or module:EnvName-v0 for an env your module registers"
    )
    p.add_argument(
        "--agent",
        required=True,
        action="append",
        help="agent spec (as for play): one for all roles, comma-separated per role, or "
        "repeated as ROLE=SPEC for a mixed team",
    )
    p.add_argument("--out", required=True, help="submission file to write (.json.gz)")
    p.add_argument(
        "--name", default=None, help="name shown on the board (default: made from the specs)"
    )
    p.add_argument("--model", default=None, help="model id or path, if any")
    p.add_argument("--revision", default=None, help="model revision / commit, if any")
    p.add_argument(
        "--decoding",
        default=None,
        help="decoding settings as JSON, for agents of your own (LLM agents record theirs)",
    )
    p.add_argument("--description", default=None, help="free text")
    p.add_argument(
        "--limit", type=int, default=None, help="play only the first N episodes (not official)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--env-kwargs",
        default=None,
        help="env keyword arguments as JSON, e.g. '{\"max_turns\": 2}' (an unofficial run)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="play episode i with seed SEED+i instead of the suite's seeds (an unofficial run)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="episodes played at once in threads (for served models; a model loaded in this "
        "process is used by one thread at a time)",
    )
    p.add_argument(
        "--batch-episodes",
        type=int,
        default=1,
        help="episodes played side by side with their model calls batched (in-process "
        "models decode batch-invariant: the same transcripts as one at a time; one exception, "
        "checkpoint: LoRA agents with several torch threads)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard the episodes an interrupted run left in OUT.episodes/ (default: resume)",
    )
    p.add_argument(
        "--cross-play",
        action="store_true",
        help="play with each held-out partner of the env's population in each seat it takes "
        "(your agent in the others) instead of self-play; see `mallm partners ID`",
    )
    _add_llm_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("partners", help="list the held-out partners of an env (cross-play)")
    p.add_argument("board_id", help="an env id, or ID@variant (Kitchen-v0@coordination_ring)")
    p.set_defaults(func=cmd_partners)

    p = sub.add_parser("verify", help="re-check submissions by replaying every action")
    p.add_argument("files", nargs="+")
    p.add_argument(
        "--reproduce",
        action="store_true",
        help="also rebuild the declared agent and check it produces the recorded actions",
    )
    _add_reproduce_batch_argument(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("board", help="verify all submissions and rebuild the boards")
    p.add_argument("root", nargs="?", default="leaderboards")
    p.add_argument(
        "--replay-only", action="store_true", help="do not try to reproduce the declared agents"
    )
    p.add_argument(
        "--reproduce-models",
        action="store_true",
        help="also re-run agents that use a language model (slow: minutes to hours per entry)",
    )
    _add_reproduce_batch_argument(p)
    p.set_defaults(func=cmd_board)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MallmError as err:
        print(f"mallm: error: {err}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as err:
        print(f"mallm: error: bad JSON argument: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
