#!/usr/bin/env bash
# Memory span of RNN vs GRU vs LSTM: recall symbols across D blank steps at an equal parameter
# and training budget. Writes memory_span.{csv,json,png} into $OUT (default checkpoints/memory_span).
# --quick: a < 1 minute smoke run. Other flags go to `seq2seq memory-span`, e.g. --delays 5 10 20 --steps 3000.
set -euo pipefail
source "$(dirname "$0")/env.sh"
seq2seq memory-span --out "${OUT:-checkpoints/memory_span}" "$@"
