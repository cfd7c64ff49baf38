#!/usr/bin/env bash
# Memory span against truncated BPTT (issue 31): LSTM and GRU on recall and adding with the gradient cut
# every K steps, K in 10 25 50 100 and full (training's chunk rule; the state is carried across chunks).
# Writes $OUT/k{K}/ (each K's memory-span sweep) and $OUT/tbptt_sweep.{json,png}; prints the table.
# K = 10, 25, 50, 100 took 9.3 min wall (2 workers) on the 2-core AMD EPYC, 2026-12-04, the full-BPTT column
# read from the default study (--resume, kfull/; docs/science.md). --quick: a seconds-long smoke run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$SEQ2SEQ_PY" -m seq2seq.science.span_tbptt --out "${OUT:-checkpoints/memory_span_tbptt}" "$@"
