#!/usr/bin/env bash
# Ablation study of the Multi30k recipe (scripts/multi30k.sh's 15-minute settings with dropout 0.3: lr 2e-3,
# batches of <= 4,000 tokens; MINUTES=0, no time limit, so not its short-budget ones) at a fixed number of updates:
# every variant trains from the same prepared data and seed for $STEPS updates (the anneal
# schedule runs over the steps), $JOBS at a time with one thread each, and is scored on the
# validation split with beam 5 (tuning never looks at the test split).
# Knobs: DATA (default data/multi30k), OUT (default checkpoints/ablation), STEPS (default 1000; a whole number
# from 1 to 10^12, train's --max-steps bound), JOBS (default 2; 1 to 64), BASE (a run folder prepared for the
# ablation, with val as its test split:
# RUN=BASE TEST_SPLIT=val scripts/preprocess.sh --vocab-size 4000, to copy the tokenizers and encoded data from;
# another is refused up front; default: prepare once into $OUT/prepared),
# VARIANTS (names to run, default all). Tokenizer variants prepare their own data (PREP flags);
# the others reuse BASE. Prints one line per variant and writes $OUT/ablation.tsv. A variant that fails gets a
# '?' row while the others run on, and the study then exits 1 with one line naming the failed variants.
# A bad STEPS, JOBS, VARIANTS or BASE is refused up front: one line, exit 2, before anything is prepared or trained.
set -euo pipefail
here="$(dirname "$0")"
export DATA=${DATA:-data/multi30k} SRC=${SRC:-de} TGT=${TGT:-en}
OUT=${OUT:-checkpoints/ablation} STEPS=${STEPS:-1000} JOBS=${JOBS:-2}
# checked before anything is prepared or trained: whole numbers, JOBS from 1 to 64 (each job trains with one thread),
# STEPS from 1 (0 would be no limit: MINUTES=0 leaves --max-steps the only bound) to seq2seq train's --max-steps bound
if [[ ! $JOBS =~ ^[0-9]{1,3}$ ]] || (( 10#$JOBS < 1 || 10#$JOBS > 64 )); then
  echo "ablation.sh: JOBS gives the variants trained at once, a whole number from 1 to 64; got '$JOBS'" >&2
  exit 2
fi
if [[ ! $STEPS =~ ^[0-9]{1,13}$ ]] || (( 10#$STEPS < 1 || 10#$STEPS > 1000000000000 )); then
  echo "ablation.sh: STEPS gives each variant's updates, a whole number from 1 to 1000000000000 (seq2seq train" \
    "--max-steps); got '$STEPS'" >&2
  exit 2
fi
JOBS=$((10#$JOBS)) STEPS=$((10#$STEPS))
declare -A FLAGS=(
  [baseline]=""
  [no-label-smoothing]="--label-smoothing 0"
  [untied-embeddings]="--no-tie-embeddings"
  [dropout-0.1]="--dropout 0.1"
  [subword-alpha-0.1]="--subword-alpha 0.1"
  [input-feeding]="--input-feeding"
  [vocab-8000]="" [joint-vocab-8000]="" [bpe]=""
)
declare -A PREP=(  # preprocessing flags after the recipe's --vocab-size 4000
  [vocab-8000]="--vocab-size 8000"
  [joint-vocab-8000]="--joint-vocab --vocab-size 8000"
  [bpe]="--sp-model-type bpe"
)
all="input-feeding baseline no-label-smoothing untied-embeddings dropout-0.1 subword-alpha-0.1 vocab-8000"
all+=" joint-vocab-8000 bpe"
read -r -a names <<< "${VARIANTS:-$all}"
for name in "${names[@]}"; do
  [ -n "${FLAGS[$name]+set}" ] || { echo "unknown variant '$name' (known: ${!FLAGS[*]})" >&2; exit 2; }
done
if [ -n "${BASE:-}" ]; then  # the variants train with --test-split val (tuning never looks at test): BASE must match
  base_split=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"]["test_split"])' \
    "$BASE/preprocess.json" 2>/dev/null) || base_split=
  if [ "$base_split" != val ]; then
    echo "ablation.sh: BASE=$BASE is not prepared for the ablation (test split: ${base_split:-no preprocess.json" \
      "read}; the variants need val): prepare it with RUN=BASE TEST_SPLIT=val scripts/preprocess.sh" \
      "--vocab-size 4000, or leave BASE out" >&2
    exit 2
  fi
fi
mkdir -p "$OUT"
if [ -z "${BASE:-}" ]; then
  BASE=$OUT/prepared
  [ -f "$BASE/preprocess.json" ] || RUN=$BASE TEST_SPLIT=val "$here/preprocess.sh" --vocab-size 4000
fi

one() {  # train and score one variant; its log goes to $OUT/NAME.log
  local name=$1 run=$OUT/$1 log=$OUT/$1.log
  mkdir -p "$run"
  : > "$log"
  if [ -n "${PREP[$name]:-}" ]; then
    # shellcheck disable=SC2086  # PREP values are flag lists
    RUN=$run TEST_SPLIT=val "$here/preprocess.sh" --vocab-size 4000 ${PREP[$name]} >> "$log" 2>&1
  else
    cp -r "$BASE/preprocess.json" "$BASE"/spm.*.model "$BASE/cache" "$run/" >> "$log" 2>&1
  fi
  # shellcheck disable=SC2086  # FLAGS values are flag lists
  RUN=$run TEST_SPLIT=val MINUTES=0 /usr/bin/time -f "%e s wall, %M KB peak RSS" \
    "$here/multi30k.sh" --max-steps "$STEPS" --threads 1 --dropout 0.3 ${FLAGS[$name]} >> "$log" 2>&1
}
declare -A name_of=() failed=()  # a variant that fails is reported at the end; the others run on
finished() {  # wait for one variant to end; a failure is noted, not the end of the study
  local pid status=0
  wait -n -p pid || status=$?
  (( status == 0 )) || failed[${name_of[$pid]}]=$status
}
running=0
for name in "${names[@]}"; do
  one "$name" &
  name_of[$!]=$name running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then finished; running=$((running - 1)); fi
done
while (( running > 0 )); do finished; running=$((running - 1)); done

printf 'variant\tflags\tval_bleu_beam5\tval_chrf\tupdates\ttrain_s\n' > "$OUT/ablation.tsv"
why=()
for name in "${names[@]}"; do
  log=$OUT/$name.log metrics=$OUT/$name/metrics.jsonl
  flags="${PREP[$name]:+preprocess ${PREP[$name]}}${FLAGS[$name]}"
  bleu=? chrf=? updates=? secs=?
  if [ -n "${failed[$name]+set}" ] || [ ! -s "$metrics" ]; then  # a '?' row
    error=$(grep -v -e ' s wall, .* KB peak RSS$' -e '^Command exited with non-zero status' "$log" | tail -1 || true)
    why+=("$name ($log: ${error:-no output})")  # its last line but /usr/bin/time's
  else
    bleu=$(grep -o 'BLEU = [0-9.]*' "$log" | tail -1 | cut -d' ' -f3 || true)
    chrf=$(grep -o 'chrF = [0-9.]*' "$log" | tail -1 | cut -d' ' -f3 || true)
    last=$(tail -1 "$metrics")
    updates=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("step", ""))' "$last")
    secs=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1]).get("elapsed_s", 0)))' "$last")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${flags:-(recipe)}" "${bleu:-?}" "${chrf:-?}" "$updates" "$secs" \
    >> "$OUT/ablation.tsv"
done
column -t -s $'\t' "$OUT/ablation.tsv"
if (( ${#why[@]} )); then
  printf -v list '%s; ' "${why[@]}"
  echo "ablation.sh: ${#why[@]} of ${#names[@]} variants failed: ${list%; }" >&2
  exit 1
fi
