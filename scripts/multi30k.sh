#!/usr/bin/env bash
# The Multi30k de->en recipe: SentencePiece 4k per language, the default model (emb 256, bi-LSTM
# 2x128, LSTM decoder 256, general attention, tied embeddings) trained for $MINUTES of wall clock
# with bf16 autocast, dropout 0.2 (lr constant, then annealed over the last half of the budget), then
# beam-5 translation of the test split scored with sacreBLEU.
# Knobs: DATA (default ../shared/data/multi30k), RUN, MINUTES (default 15), TEST_SPLIT; extra flags go to train.
set -euo pipefail
export DATA=${DATA:-../shared/data/multi30k} SRC=${SRC:-de} TGT=${TGT:-en}
export TEST_SPLIT=${TEST_SPLIT:-test_2016_flickr} RUN=${RUN:-checkpoints/multi30k.$SRC-$TGT}
here="$(dirname "$0")"
[ -f "$RUN/preprocess.json" ] || "$here/preprocess.sh" --vocab-size 4000
"$here/train.sh" --max-minutes "${MINUTES:-15}" --precision bf16 --lr 2e-3 --max-tokens 4000 --dropout 0.2 \
  --valid-every 400 --lr-schedule anneal --anneal-fraction 0.5 --patience 0 "$@"
"$here/translate.sh"
