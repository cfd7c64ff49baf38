# Sourced by preprocess.sh, train.sh and translate.sh: the corpus and run-folder knobs.
DATA=${DATA:-data/multi30k}
SRC=${SRC:-de}
TGT=${TGT:-en}
RUN=${RUN:-checkpoints/$(basename "$DATA").$SRC-$TGT}
TRAIN_SPLIT=${TRAIN_SPLIT:-train}
VAL_SPLIT=${VAL_SPLIT:-val}
TEST_SPLIT=${TEST_SPLIT:-test}
SPLIT_FLAGS=(--train-split "$TRAIN_SPLIT" --val-split "$VAL_SPLIT" --test-split "$TEST_SPLIT")
