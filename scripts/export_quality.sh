#!/usr/bin/env bash
# BLEU/chrF of a checkpoint against its ONNX fp32 and int8 exports on val and test (docs/deploy.md).
#   scripts/export_quality.sh CHECKPOINT      knobs: DATA (default data/multi30k), SRC, TGT, OUT
set -euo pipefail
if [ $# != 1 ]; then
  echo "usage: scripts/export_quality.sh CHECKPOINT   (knobs: DATA, default data/multi30k; SRC, TGT, OUT)" >&2; exit 2
fi
source "$(dirname "$0")/env.sh"
DATA=${DATA:-data/multi30k} SRC=${SRC:-de} TGT=${TGT:-en}
source "$(dirname "$0")/knobs.sh"  # TEST_SPLIT: test, or test_2016_flickr where DATA has it
# OUT: the exports' folder; by default one per checkpoint, checkpoints/export_quality/RUN.NAME for RUN/NAME.pt
"$SEQ2SEQ_PY" -m seq2seq.devtools.export_quality "$1" "$DATA" "$SRC" "$TGT" ${OUT:+--out "$OUT"} \
  --splits "$VAL_SPLIT" "$TEST_SPLIT"
