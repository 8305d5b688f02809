#!/usr/bin/env bash
# MAGRPO and the shared-critic actor-critic (MAAC) training SmolLM2-135M-Instruct pairs on a
# code or writing pair env, one LoRA adapter per agent on one frozen base. Each run
# checkpoints every 5 updates and resumes where it stopped, so this script can be rerun
# after an interruption (a session's end) and continues. Held-out evaluation (greedy, the
# env's official test split) every 10 updates is logged as eval/*.
# Usage: bash baselines/results/llm/train.sh ENV_ID [RUN ...]
#   e.g. bash baselines/results/llm/train.sh SummaryPair-v1 magrpo-s0-lr5e-4
# A run is TRAINER-sSEED[-lrLR]: magrpo-s0 is AdamW lr 1e-4; magrpo-s0-lr5e-4 the same run at
# lr 5e-4 (see the results README for why). Run folders: baselines/results/llm/<env>/<run>/,
# <env> the env id in lower case (coopcode-v1, summarypair-v1).
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ $# -lt 1 ]; then echo "usage: $0 ENV_ID [RUN ...]" >&2; exit 2; fi
ENV_ID="$1"; shift
case "$ENV_ID" in
  CoopCode-v1) EVAL_EPISODES=21 ;;
  SummaryPair-v1|ExpandPair-v1) EVAL_EPISODES=26 ;;
  CodePair-v1) EVAL_EPISODES=31 ;;
  *) echo "no training settings for $ENV_ID" >&2; exit 2 ;;
esac
HERE="baselines/results/llm/${ENV_ID,,}"
mkdir -p "$HERE"
PY="${PY:-.venv/bin/python}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
RUNS=("$@")
if [ ${#RUNS[@]} -eq 0 ]; then
  RUNS=(magrpo-s0 maac-s0 magrpo-s1 maac-s1 magrpo-s2 maac-s2)
fi
COMMON=(--env-id "$ENV_ID" --model smollm2-135m --adapter lora
  --max-grad-norm 1.0 --tasks-per-update 2 --num-updates 40 --max-new-tokens 256
  --eval-every 10 --eval-episodes "$EVAL_EPISODES" --checkpoint-every 5 --threads 2
  --no-progress --log-completions 2)
for run in "${RUNS[@]}"; do
  if [[ ! "$run" =~ ^(magrpo|maac)-s([0-9]+)(-lr([0-9.e-]+))?$ ]]; then
    echo "a run is TRAINER-sSEED[-lrLR] (TRAINER magrpo or maac), got $run" >&2; exit 2
  fi
  trainer="${BASH_REMATCH[1]}"
  seed="${BASH_REMATCH[2]}"
  lr="${BASH_REMATCH[4]:-1e-4}"
  echo "== $ENV_ID $run ($(date -u +%H:%M:%S))"
  case "$trainer" in
    magrpo) extra=(--group-size 4) ;;
    maac) extra=(--critic shared --critic-model smollm2-135m --rollouts 4) ;;
  esac
  "$PY" -u -m "baselines.$trainer" "${COMMON[@]}" "${extra[@]}" --seed "$seed" \
    --learning-rate "$lr" \
    --output-dir "$HERE/$run" 2>&1 | grep --line-buffered -v -i "warn" | tee -a "$HERE/$run.log"
done
