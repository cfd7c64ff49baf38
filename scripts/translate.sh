#!/usr/bin/env bash
# Translate with $CKPT (default $RUN/best.pt) and score with sacreBLEU when a reference exists.
# Default input: the test split $DATA/$TEST_SPLIT.$SRC, output $RUN/$TEST_SPLIT.hyp.$TGT, reference
# $DATA/$TEST_SPLIT.$TGT. INPUT=- reads stdin and writes stdout (scored only if REF is given).
# CKPT="a.pt b.pt c.pt" (several files, space-separated) translates with their ensemble.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
CKPT=${CKPT:-$RUN/best.pt}
if [ -e "$CKPT" ]; then ckpts=("$CKPT"); else read -r -a ckpts <<< "$CKPT"; fi
BEAM=${BEAM:-5}
if [ "${INPUT:-}" = - ]; then
  OUTPUT=${OUTPUT:--}
else
  INPUT=${INPUT:-$DATA/$TEST_SPLIT.$SRC}
  OUTPUT=${OUTPUT:-$RUN/$TEST_SPLIT.hyp.$TGT}
  REF=${REF:-$DATA/$TEST_SPLIT.$TGT}
fi
io=(); [ "$INPUT" != - ] && io+=(--input "$INPUT"); [ "$OUTPUT" != - ] && io+=(--output "$OUTPUT")
seq2seq translate --checkpoint "${ckpts[@]}" --beam-size "$BEAM" "${io[@]}" "$@"
if [ -n "${REF:-}" ] && [ "$OUTPUT" != - ] && [ -f "$REF" ]; then
  echo "$OUTPUT vs $REF (beam $BEAM):"
  seq2seq evaluate --hyp "$OUTPUT" --ref "$REF"
fi
