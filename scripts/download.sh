#!/usr/bin/env bash
# Write a Hugging Face dataset (Hub name, dataset folder or local data files) as $OUT/{split}.{lang}
# text files plus manifest.json. Extra flags go to `seq2seq download` (--src-column, --revision, --streaming).
# Examples: scripts/download.sh                      # Multi30k de-en -> data/multi30k
#           DATASET=wmt14 SUBSET=de-en scripts/download.sh --streaming
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATASET=${DATASET:-bentrevett/multi30k}
SUBSET=${SUBSET:-}
SRC=${SRC:-de}
TGT=${TGT:-en}
name=$(basename "$DATASET"); NAME=${NAME:-${name%%.*}}  # a file's name without .jsonl (OUT is a folder)
OUT=${OUT:-data/$NAME}
subset=(); [ -n "$SUBSET" ] && subset=(--subset "$SUBSET")
seq2seq download --dataset "$DATASET" "${subset[@]}" --src "$SRC" --tgt "$TGT" --out "$OUT" "$@"
