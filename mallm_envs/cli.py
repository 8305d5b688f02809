"""The ``mallm`` command.

mallm list                                  ids, agents and one-line descriptions
mallm play ID [--agents random] [--seed 0]  play one episode and print its transcript
mallm demo                                  a scripted episode of every registered env
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
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


def format_episode(episode: Any, *, max_observation_lines: int | None = None) -> str:
    """A readable transcript: each observation, action, and each turn's reward."""
    out: list[str] = [
        f"== {episode.env_id}  seed={episode.seed}  agents={', '.join(episode.agents)}"
    ]
    last_turn = 0
    for step in episode.steps:
        info = step.info or {}
        turn = int(info.get("turn", 0)) if isinstance(info, dict) else 0
        if turn > last_turn:
            out.append(_turn_summary(turn, step))
            last_turn = turn
        if step.action is None:
            continue
        text = (step.observation or {}).get("text", "")
        lines = text.splitlines()
        if max_observation_lines is not None and len(lines) > max_observation_lines:
            hidden = len(lines) - max_observation_lines
            lines = [*lines[:max_observation_lines], f"... ({hidden} more lines)"]
        out.append(f"-- {step.agent} observes:")
        out.extend(textwrap.indent(line, "   | ") for line in lines)
        out.append(f"-- {step.agent} acts:")
        out.extend(textwrap.indent(line, "   > ") for line in (step.action.splitlines() or [""]))
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


def cmd_play(args: argparse.Namespace) -> int:
    import mallm_envs
    from mallm_envs.agents.spec import build_agents
    from mallm_envs.core import run_episode

    kwargs = json.loads(args.kwargs) if args.kwargs else {}
    env = mallm_envs.make(args.env_id, **kwargs)
    agents = build_agents(args.agents, env, seed=args.seed)
    options = json.loads(args.options) if args.options else None
    episode = run_episode(env, agents, seed=args.seed, options=options)
    print(format_episode(episode, max_observation_lines=args.max_lines))
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
        print(format_episode(episode, max_observation_lines=args.max_lines))
        print()
        success = any(bool(i.get("success")) for i in episode.final_infos.values())
        rows.append((env_id, which, episode.turns, episode.team_return, success))
        env.close()
    print(f"{'env':<28} {'agents':<9} {'turns':>5} {'return':>9}  success")
    for env_id, which, turns, ret, success in rows:
        print(f"{env_id:<28} {which:<9} {turns:>5} {ret:>+9.3f}  {success}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mallm", description="Cooperative multi-agent text environments."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the registered environment ids")
    p.add_argument("--json", action="store_true", help="print the full specs as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("play", help="play one episode and print the transcript")
    p.add_argument("env_id")
    p.add_argument(
        "--agents",
        default="random",
        help="random | scripted | fixed:TEXT | module:factory; one for all roles or comma-separated per role",
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
        "--out", default=None, help="also write the transcript (JSON lines; .gz to compress)"
    )
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("demo", help="a scripted episode of every registered env")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-lines", type=int, default=12)
    p.set_defaults(func=cmd_demo)
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
