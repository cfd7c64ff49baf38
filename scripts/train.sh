#!/usr/bin/env bash
# Train in run folder $RUN (prepared by preprocess.sh, or prepared now). RESUME=1 continues from last.pt.
# Example: DATA=data/multi30k SRC=de TGT=en scripts/train.sh --max-steps 40
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
resume=(); [ "${RESUME:-0}" = 1 ] && resume=(--resume)
seq2seq train --data "$DATA" --src "$SRC" --tgt "$TGT" --out "$RUN" "${SPLIT_FLAGS[@]}" "${resume[@]}" "$@"
