#!/usr/bin/env bash
# The CoopCode-v1 runs: 3 seeds of MAGRPO and of the shared-critic actor-critic, trained by
# ../train.sh (settings and usage there).
# Usage: bash baselines/results/llm/coopcode-v1/train.sh [RUN ...]   e.g. magrpo-s0 maac-s1
exec bash "$(dirname "$0")/../train.sh" CoopCode-v1 "$@"
