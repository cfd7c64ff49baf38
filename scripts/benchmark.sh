#!/usr/bin/env bash
# Speed benchmark on Multi30k de->en: prints one JSON object (also saved to $OUT/benchmark.json).
# Knobs: DATA (default ../shared/data/multi30k), OUT (default checkpoints/benchmark). Flags: --quick, --checkpoint C.
set -euo pipefail
source "$(dirname "$0")/env.sh"
OUT=${OUT:-checkpoints/benchmark}
mkdir -p "$OUT"
seq2seq benchmark --data "${DATA:-../shared/data/multi30k}" --out "$OUT" "$@" | tee "$OUT/benchmark.json"
