#!/usr/bin/env bash
# Write a Hugging Face dataset (Hub name, dataset folder or local data files) as $OUT/{split}.{lang}
# text files plus manifest.json. Extra flags go to `seq2seq download` (--src-column, --revision, --streaming).
# Examples: scripts/download.sh                      # Multi30k de-en -> data/multi30k
#           DATASET=wmt14 SUBSET=de-en scripts/download.sh --streaming
#           DATASET='corpus/*.jsonl' scripts/download.sh   # -> data/corpus (a glob: its folder's name)
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATASET=${DATASET:-bentrevett/multi30k}
SUBSET=${SUBSET:-}
SRC=${SRC:-de}
TGT=${TGT:-en}
case "$DATASET" in
  *[*?[]*) name=$(basename "$(dirname "$DATASET")");;  # a glob: its folder's name (corpus/*.jsonl -> corpus)
  *) name=$(basename "$DATASET");;
esac
NAME=${NAME:-${name%%.*}}  # a file's name without .jsonl (OUT is a folder)
if [ -z "${OUT:-}" ] && { [ -z "$NAME" ] || [[ "$NAME" == *[*?[/]* ]]; }; then
  echo "scripts/download.sh: DATASET $DATASET names no folder to call data/NAME (a glob in the current folder?): set OUT or NAME" >&2
  exit 2
fi
OUT=${OUT:-data/$NAME}
subset=(); [ -n "$SUBSET" ] && subset=(--subset "$SUBSET")
seq2seq download --dataset "$DATASET" "${subset[@]}" --src "$SRC" --tgt "$TGT" --out "$OUT" "$@"
