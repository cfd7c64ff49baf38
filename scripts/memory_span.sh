#!/usr/bin/env bash
# Memory span of a tanh RNN, a GRU and an LSTM at an equal parameter budget: the largest delay each
# solves on the delayed-recall task and the adding problem (chrono initialisation for the gated cells,
# Adam 0.01 with retries at 3e-3 and 1e-3, <= 2,000 updates per delay), 3 seeds (--seeds; a cell's span is
# their median). Three seeds took 15.6 and 16.7 minutes on the 2-core AMD EPYC on 2026-12-04 (21.8 and 27.1 before
# the lab computed the GRU itself and gave its workers huge pages; docs/science.md).
# Writes memory_span.{json,csv,png} and gradient_flow.png into $OUT (default checkpoints/memory_span).
# --quick: a 5-second smoke run. Other flags go to `seq2seq memory-span` (--task copy, --init default, ...).
set -euo pipefail
source "$(dirname "$0")/env.sh"
seq2seq memory-span --out "${OUT:-checkpoints/memory_span}" "$@"
