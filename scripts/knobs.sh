# Sourced by preprocess.sh, train.sh and translate.sh: the corpus and run-folder knobs.
DATA=${DATA:-data/multi30k}
SRC=${SRC:-de}
TGT=${TGT:-en}
RUN=${RUN:-checkpoints/$(basename "$DATA").$SRC-$TGT}
TRAIN_SPLIT=${TRAIN_SPLIT:-train}
VAL_SPLIT=${VAL_SPLIT:-val}
# the test split: `test` (what `seq2seq download` writes), or Multi30k's test_2016_flickr where the folder has it
[ -f "$DATA/test_2016_flickr.$SRC" ] && test_default=test_2016_flickr || test_default=test
TEST_SPLIT=${TEST_SPLIT:-$test_default}
SPLIT_FLAGS=(--train-split "$TRAIN_SPLIT" --val-split "$VAL_SPLIT" --test-split "$TEST_SPLIT")
