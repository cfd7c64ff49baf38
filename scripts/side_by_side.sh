#!/usr/bin/env bash
# OpenNMT-py and our training (bf16 where the CPU has it natively, and fp32) on this machine, taking
# turns in slices of time so that both see the same machine (seq2seq/devtools/side_by_side.py); prints
# one JSON object (also saved to $OUT/side_by_side.json). Needs the peer installed by
# ../shared/peers/run.sh (PEERS_HOME, default ${TMPDIR:-/tmp}/seq2seq-peers). About 25 minutes at the
# defaults; run it alone. Knobs: DATA (default data/multi30k), OUT (default checkpoints/side_by_side),
# PEER_CONFIG (default ../shared/peers/configs/onmt_lstm.yaml). Flags: --rounds N, --slice S (30-600), --peer-warmup S, --warmup S.
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-data/multi30k} SRC=de TGT=en
source "$(dirname "$0")/knobs.sh"  # TEST_SPLIT: test, or test_2016_flickr where DATA has it
OUT=${OUT:-checkpoints/side_by_side}
PEERS_HOME=${PEERS_HOME:-${TMPDIR:-/tmp}/seq2seq-peers}
PEER_CONFIG=${PEER_CONFIG:-../shared/peers/configs/onmt_lstm.yaml}
mkdir -p "$OUT"
"$SEQ2SEQ_PY" -m seq2seq.devtools.side_by_side --data "$DATA" --test-split "$TEST_SPLIT" --peers-home "$PEERS_HOME" --peer-config "$PEER_CONFIG" \
  --out "$OUT" "$@" | tee "$OUT/side_by_side.json"
