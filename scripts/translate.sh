#!/usr/bin/env bash
# Translate with $CKPT (default $RUN/best.pt) and score with sacreBLEU when a reference exists.
# Default input: the test split $DATA/$TEST_SPLIT.$SRC, output $RUN/$TEST_SPLIT.hyp.$TGT (with CKPT given and
# no RUN: beside the checkpoint), scored against $DATA/$TEST_SPLIT.$TGT. INPUT=FILE (another file) writes to
# OUTPUT (default: stdout) and is scored only against a REF given; INPUT=- reads stdin.
# CKPT="a.pt b.pt c.pt" (several files, space-separated) translates with their ensemble. BEAM (default 5)
# is the beam size.
set -euo pipefail
run_given=${RUN+yes} ckpt_given=${CKPT+yes} ref_given=${REF:+yes}
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
for arg in "$@"; do
  if [[ $arg == --beam-size || $arg == --beam-size=* ]]; then
    echo "translate.sh: BEAM gives the beam size (BEAM=1 scripts/translate.sh); drop --beam-size" >&2; exit 2
  fi
done
CKPT=${CKPT:-$RUN/best.pt}
if [ -e "$CKPT" ]; then ckpts=("$CKPT"); else read -r -a ckpts <<< "$CKPT"; fi
BEAM=${BEAM:-5}
if [ -n "${INPUT:-}" ]; then  # another input than the test split: no file of the run is written or scored
  OUTPUT=${OUTPUT:--}
else
  INPUT=$DATA/$TEST_SPLIT.$SRC
  folder=$RUN; [ -n "$ckpt_given" ] && [ -z "$run_given" ] && folder=$(dirname "${ckpts[0]}")
  OUTPUT=${OUTPUT:-$folder/$TEST_SPLIT.hyp.$TGT}
  REF=${REF:-$DATA/$TEST_SPLIT.$TGT}
fi
io=(); [ "$INPUT" != - ] && io+=(--input "$INPUT"); [ "$OUTPUT" != - ] && io+=(--output "$OUTPUT")
if [ -n "$ref_given" ] && { [ "$OUTPUT" = - ] || [ ! -f "$REF" ]; }; then  # else the REF given would be ignored
  why="OUTPUT is standard output: set OUTPUT=FILE to score it"; [ "$OUTPUT" = - ] || why="no such file"
  echo "translate.sh: REF=$REF cannot be scored against: $why" >&2; exit 2
fi
[ -f "${REF:-}" ] || REF=  # the test split's references, where it has them
seq2seq translate --checkpoint "${ckpts[@]}" --beam-size "$BEAM" "${io[@]}" "$@"
if [ -n "${REF:-}" ]; then
  echo "$OUTPUT vs $REF (beam $BEAM):"
  seq2seq evaluate --hyp "$OUTPUT" --ref "$REF"
fi
