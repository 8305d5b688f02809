#!/usr/bin/env bash
# Cross-play entries of LLM teams: the agent plays each seat with each held-out partner of
# the env's population (`mallm partners ENV_ID`), greedy, 256 new tokens, as the self-play
# references do. An interrupted run resumes from the episodes it finished
# (runs/cross_play/ENV_ID/STEM.json.gz.episodes/).
# Usage: bash baselines/results/llm/cross_play.sh ENV_ID STEM SPEC NAME
#   bash baselines/results/llm/cross_play.sh CoopCode-v1 prompting-parallel-smollm2 \
#        prompting:parallel:smollm2-135m "prompting parallel, SmolLM2-135M"
#   bash baselines/results/llm/cross_play.sh CoopCode-v1 magrpo-s0-smollm2 \
#        checkpoint:baselines/results/llm/coopcode-v1/magrpo-s0 "MAGRPO seed 0, SmolLM2-135M"
# The entry goes to leaderboards/ENV_ID/cross-play/STEM.json.gz. BATCH_EPISODES (default 12)
# episodes play side by side. checkpoint: (LoRA) agents decode batch-invariant with one
# torch thread only, so OMP_NUM_THREADS defaults to 1 for them.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ $# -ne 4 ]; then echo "usage: $0 ENV_ID STEM SPEC NAME" >&2; exit 2; fi
ENV_ID="$1"; STEM="$2"; SPEC="$3"; NAME="$4"
MALLM="${MALLM:-.venv/bin/python -m mallm_envs.cli}"
if [[ "$SPEC" == checkpoint:* ]]; then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
else
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
fi
out="leaderboards/$ENV_ID/cross-play/$STEM.json.gz"
if [ -f "$out" ]; then echo "have $out"; exit 0; fi
scratch="runs/cross_play/$ENV_ID"
mkdir -p "$scratch" "leaderboards/$ENV_ID/cross-play"
echo "== $ENV_ID cross-play $SPEC ($(date -u +%H:%M:%S))"
$MALLM evaluate "$ENV_ID" --agent "$SPEC" --cross-play --out "$scratch/$STEM.json.gz" --quiet \
  --name "$NAME" \
  --temperature 0 --max-new-tokens 256 --batch-episodes "${BATCH_EPISODES:-12}" \
  --description "$NAME with each held-out partner of the population (greedy, 256 new tokens)"
mv "$scratch/$STEM.json.gz" "$out"
