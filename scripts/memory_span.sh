#!/usr/bin/env bash
# Memory span of a tanh RNN, a GRU and an LSTM at an equal parameter budget: the largest delay each
# solves on the delayed-recall task and the adding problem (chrono initialisation for the gated cells,
# Adam 0.01 with retries at 3e-3 and 1e-3, <= 2,000 updates per delay), 3 seeds (--seeds; a cell's span is
# their median). One seed took 5.6 minutes on 2 cores (docs/science.md), so about 17 minutes for three.
# Writes memory_span.{json,csv,png} and gradient_flow.png into $OUT (default checkpoints/memory_span).
# --quick: a 5-second smoke run. Other flags go to `seq2seq memory-span` (--task copy, --init default, ...).
set -euo pipefail
source "$(dirname "$0")/env.sh"
seq2seq memory-span --out "${OUT:-checkpoints/memory_span}" "$@"
