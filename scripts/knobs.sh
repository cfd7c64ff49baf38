# Sourced by preprocess.sh, train.sh and translate.sh: the corpus and run-folder knobs.
split_given=" ${TRAIN_SPLIT+train} ${VAL_SPLIT+val} ${TEST_SPLIT+test} "  # before the defaults below
DATA=${DATA:-data/multi30k}
SRC=${SRC:-de}
TGT=${TGT:-en}
RUN=${RUN:-checkpoints/$(basename "$DATA").$SRC-$TGT}
TRAIN_SPLIT=${TRAIN_SPLIT:-train}
VAL_SPLIT=${VAL_SPLIT:-val}
# the test split: `test` (what `seq2seq download` writes), or Multi30k's test_2016_flickr where the folder has it
[ -f "$DATA/test_2016_flickr.$SRC" ] && test_default=test_2016_flickr || test_default=test
TEST_SPLIT=${TEST_SPLIT:-$test_default}
# the split flags: those set here (a knob, or test_2016_flickr found); a --config [data] table names the others
SPLIT_FLAGS=()
[[ $split_given == *" train "* ]] && SPLIT_FLAGS+=(--train-split "$TRAIN_SPLIT")
[[ $split_given == *" val "* ]] && SPLIT_FLAGS+=(--val-split "$VAL_SPLIT")
[[ $split_given == *" test "* || $TEST_SPLIT != test ]] && SPLIT_FLAGS+=(--test-split "$TEST_SPLIT")
true  # the last test above must not end a `set -e` script that sources this
