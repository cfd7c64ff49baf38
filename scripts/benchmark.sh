#!/usr/bin/env bash
# Speed benchmark on Multi30k de->en: prints one JSON object (also saved to $OUT/benchmark.json).
# Knobs: DATA (default data/multi30k), OUT (default checkpoints/benchmark), PEERS (default
# ../shared/peers.json; ratios are left out if it does not exist). Flags: --quick, --checkpoint C.
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-data/multi30k} SRC=de TGT=en
source "$(dirname "$0")/knobs.sh"  # TEST_SPLIT: test, or test_2016_flickr where DATA has it
OUT=${OUT:-checkpoints/benchmark}
mkdir -p "$OUT"
PEERS=${PEERS:-../shared/peers.json}
peers=(); [ -f "$PEERS" ] && peers=(--peers "$PEERS")
seq2seq benchmark --data "$DATA" --test-split "$TEST_SPLIT" --out "$OUT" "${peers[@]}" "$@" | tee "$OUT/benchmark.json"
