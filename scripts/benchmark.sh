#!/usr/bin/env bash
# Speed benchmark on Multi30k de->en: prints one JSON object (also saved to $OUT/benchmark.json).
# Knobs: DATA (default data/multi30k), OUT (default checkpoints/benchmark), PEERS (default
# $PEERS_HOME/peers.json, written on this machine by ../shared/peers/run.sh, else ../shared/peers.json).
# Ratios come only against a peers entry measured on a machine like this one (same CPU model, capability
# and native bf16); any other entry is reported as skipped. Flags: --quick, --checkpoint C, --input-feeding
# (train with the peer's input feeding: the JSON's architectures say what each side trained).
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-data/multi30k} SRC=de TGT=en
source "$(dirname "$0")/knobs.sh"  # TEST_SPLIT: test, or test_2016_flickr where DATA has it
OUT=${OUT:-checkpoints/benchmark}
mkdir -p "$OUT"
PEERS_HOME=${PEERS_HOME:-${TMPDIR:-/tmp}/seq2seq-peers}  # where ../shared/peers/run.sh writes this machine's peer figures
if [ -z "${PEERS:-}" ]; then PEERS=$PEERS_HOME/peers.json; [ -f "$PEERS" ] || PEERS=../shared/peers.json; fi
peers=(); [ -f "$PEERS" ] && peers=(--peers "$PEERS")
seq2seq benchmark --data "$DATA" --test-split "$TEST_SPLIT" --out "$OUT" "${peers[@]}" "$@" | tee "$OUT/benchmark.json"
