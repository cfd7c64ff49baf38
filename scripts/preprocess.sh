#!/usr/bin/env bash
# Prepare run folder $RUN from $DATA/{split}.{lang}: clean, SentencePiece, encoded caches.
# Example: DATA=data/multi30k SRC=de TGT=en scripts/preprocess.sh --vocab-size 8000
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
seq2seq preprocess --data "$DATA" --src "$SRC" --tgt "$TGT" --out "$RUN" "${SPLIT_FLAGS[@]}" "$@"
