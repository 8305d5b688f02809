#!/usr/bin/env bash
# The frozen kitchen policies shipped in mallm_envs/envs/kitchen/policies/ (short runs on the
# shared 2-core machine, one at a time, one thread each), then their board entries.
# Run from the repository root: bash baselines/results/kitchen/train_policies.sh [mappo|sb3|submit]
# When a layout's partner population changes (python -m mallm_envs.leaderboard.population ID),
# only its cross-play entries need playing again (scripted, MAPPO and SB3 of seed 1):
#   python baselines/results/kitchen/cross_play_entries.py LAYOUT [...]
set -euo pipefail
export OMP_NUM_THREADS=1 PYTHONPATH=.
PY=${PY:-.venv/bin/python}
LOGS=baselines/results/kitchen/logs
LAYOUTS="cramped_room asymmetric_advantages coordination_ring forced_coordination counter_circuit"
COMMON="--total-timesteps 2000000 --shaping-horizon 1000000 --time-limit-minutes 4 --no-evaluate"
what=${1:-all}
if [[ $what == mappo || $what == all ]]; then
  for layout in $LAYOUTS; do
    $PY baselines/kitchen_mappo.py --layout $layout --seed 1 $COMMON \
      --csv-path baselines/results/kitchen/mappo_${layout}_seed1_short.csv > $LOGS/mappo_${layout}_seed1.log
  done
  # The held-out MAPPO partner of the cramped-room population: another seed.
  $PY baselines/kitchen_mappo.py --layout cramped_room --seed 2 $COMMON \
    --csv-path baselines/results/kitchen/mappo_cramped_room_seed2_short.csv > $LOGS/mappo_cramped_room_seed2.log
  # The MAPPO partners (seed 2) of the other layouts' populations: bound by the joint steps
  # of the layout's seed-1 run rather than by wall-clock time (the machine was busier then),
  # at the lowest priority. The learning rate anneals to 0 over these steps (seed 1: over 2M).
  for pair in asymmetric_advantages:819200 coordination_ring:1075200 \
      counter_circuit:1433600 forced_coordination:1587200; do
    layout=${pair%%:*}
    nice -n 19 $PY baselines/kitchen_mappo.py --layout $layout --seed 2 \
      --total-timesteps ${pair##*:} --shaping-horizon 1000000 --time-limit-minutes 1000 \
      --no-evaluate --csv-path baselines/results/kitchen/mappo_${layout}_seed2_short.csv \
      > $LOGS/mappo_${layout}_seed2.log
  done
fi
if [[ $what == sb3 || $what == all ]]; then
  for layout in $LAYOUTS; do
    $PY baselines/kitchen_ppo_sb3.py --layout $layout --seed 1 $COMMON \
      --csv-path baselines/results/kitchen/sb3_ppo_${layout}_seed1_short.csv > $LOGS/sb3_${layout}_seed1.log
  done
fi
if [[ $what == submit || $what == all ]]; then
  # Self-play and cross-play board entries of every shipped seed-1 policy (Kitchen-v0 boards).
  $PY - <<'PY'
import json
import sys
from pathlib import Path

sys.path.insert(0, "baselines")
from kitchen_mappo import play_policy  # noqa: E402

for algo, label, spec in (("mappo", "MAPPO", "MappoChef"), ("sb3ppo", "SB3 PPO", "PpoChef")):
    for path in sorted(Path("mallm_envs/envs/kitchen/policies").glob(f"{algo}_*_seed1.json")):
        record = json.loads(path.read_text())
        training = record["training"]
        play_policy(
            path,
            name=f"{label} (seed 1)",
            spec=f"mallm_envs.envs.kitchen.partners:{spec}",
            description=f"{training['script']}, {record['layout']}, seed 1, "
            f"{training['joint_steps']} joint steps (a short run); actions sampled",
            submit="leaderboards",
        )
PY
fi
