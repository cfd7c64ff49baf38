#!/usr/bin/env bash
# Longer spans (issue 31): LSTM and GRU at delays 1,000 and 2,000 on recall and adding, chrono initialisation,
# Adam 0.01, <= 2,000 updates of 64 (a cell stops at its first unsolved delay), one seed.
# Writes memory_span.{json,csv,png} and gradient_flow.png into $OUT. Other flags go to `seq2seq memory-span`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
seq2seq memory-span --out "${OUT:-checkpoints/memory_span_long}" --task recall adding --cells gru lstm \
    --delays 1000 2000 --seeds 1 --retry-lrs "" "$@"
