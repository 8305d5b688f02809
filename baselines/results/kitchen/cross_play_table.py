"""Self-play against cross-play for every kitchen entry on the boards, one row per layout.

Reads the submissions under ``leaderboards/Kitchen-v0*/`` (``mallm board`` verifies them)
and prints a Markdown table: per layout and agent, the self-play team return, the
cross-play team return (mean over the held-out partners), the gap and the worst partner.

Run from the repository root:  python baselines/results/kitchen/cross_play_table.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from mallm_envs.leaderboard.board import cross_play_stats
from mallm_envs.leaderboard.verify import parse_submission

LAYOUTS = (
    "cramped_room",
    "asymmetric_advantages",
    "coordination_ring",
    "forced_coordination",
    "counter_circuit",
)


def load(path: Path):
    return parse_submission(json.loads(gzip.decompress(path.read_bytes())))


def rows(root: Path = Path("leaderboards"), env_id: str = "Kitchen-v0") -> list[list[str]]:
    table = []
    for layout in LAYOUTS:
        board = root / (env_id if layout == "cramped_room" else f"{env_id}@{layout}")
        self_play = {load(p).agent["name"]: load(p) for p in sorted(board.glob("*.json.gz"))}
        for path in sorted((board / "cross-play").glob("*.json.gz")):
            cross = load(path)
            name = cross.agent["name"]
            stats = cross_play_stats(cross.episodes, cross.cross_play["games"])
            mean = stats["team_return"]["mean"]
            own = self_play.get(name)
            own_mean = own.summary["team_return"]["mean"] if own else None
            worst = stats["worst"]
            table.append(
                [
                    layout,
                    name,
                    "-" if own_mean is None else f"{own_mean:.1f}",
                    f"{mean:.1f} [{stats['team_return']['low']:.1f}, "
                    f"{stats['team_return']['high']:.1f}]",
                    "-" if own_mean is None else f"{own_mean - mean:+.1f}",
                    f"{worst} {stats['partners'][worst]['mean']:.1f}",
                ]
            )
    return table


def main() -> None:
    head = ["layout", "agent", "self-play", "cross-play [95% CI]", "gap", "worst partner"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
