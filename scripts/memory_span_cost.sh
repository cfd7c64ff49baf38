#!/usr/bin/env bash
# The cost of BPTT measured (issue 31): CPU seconds per update and the activations held for backward against
# the sequence length T (50..1,000, H 64; copy and adding) and the hidden size H (16..512, T 200; copy), full BPTT
# and K = 50, per cell.
# Writes $OUT/span_cost.{json,png}; prints every point and the log-log slopes. --rss: fresh process per point.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$SEQ2SEQ_PY" -m seq2seq.science.span_cost --out "${OUT:-checkpoints/memory_span_cost}" "$@"
