#!/usr/bin/env bash
# The copy task (Arjovsky, Shah & Bengio 2016) at D = 100: GRU and LSTM of hidden size 128, Adam 3e-3,
# <= 20,000 updates of 64, validated every 500 (the learning curve is in memory_span.json, rows[].curve).
# --cells gru solved D = 100 (99.32 %) after 13,500 updates: 16.2 minutes on one core of the 2-core AMD EPYC
# (2026-12-04; docs/science.md).
# Writes memory_span.{json,csv,png} and gradient_flow.png into $OUT. Other flags go to `seq2seq memory-span`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
seq2seq memory-span --out "${OUT:-checkpoints/memory_span_copy}" --task copy --cells gru lstm --delays 100 \
    --hidden 128 --lr 3e-3 --retry-lrs "" --steps 20000 --eval-every 500 --seeds 1 "$@"
