#!/usr/bin/env bash
# Does bf16 pay on this CPU? Training target tokens/s of fp32 and bf16 (the 15-minute recipe's model and
# batches, $STEPS updates after a 10-update warm-up, 2 threads), with oneDNN as it is and capped at
# older instruction sets (ONEDNN_MAX_CPU_ISA): AVX512_CORE is AVX-512 without native bf16 (oneDNN
# emulates it), AVX2 has no bf16 LSTM kernel at all (the run stops with one line, exit 2).
# One JSON line per run (seq2seq/devtools/precision.py: tokens/s from update 10's train record to the last one's).
# Knobs: DATA (default data/multi30k), OUT (default checkpoints/precision; a folder holding another run's
# last.pt/best.pt is refused, as each measurement trains there with --overwrite), STEPS (default 60; a multiple of
# 10), ISAS (default "DEFAULT AVX512_CORE AVX2").
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-data/multi30k} SRC=de TGT=en
source "$(dirname "$0")/knobs.sh"  # TEST_SPLIT
OUT=${OUT:-checkpoints/precision}
STEPS=${STEPS:-60}
measure() { "$SEQ2SEQ_PY" -m seq2seq.devtools.precision "$@"; }  # seq2seq/devtools/precision.py
STEPS=$(measure check --out "$OUT" --steps "$STEPS")  # a multiple of 10; OUT no other run's folder (--overwrite)
[ -f "$OUT/preprocess.json" ] || seq2seq preprocess --data "$DATA" --src de --tgt en --out "$OUT" \
  --test-split "$TEST_SPLIT" --vocab-size 4000 >&2
for isa in ${ISAS:-DEFAULT AVX512_CORE AVX2}; do
  for precision in fp32 bf16; do
    status=0 log=$OUT/$isa-$precision.log
    ONEDNN_MAX_CPU_ISA=$isa seq2seq train --data "$DATA" --src de --tgt en --out "$OUT" --test-split "$TEST_SPLIT" \
      --overwrite --max-steps $((STEPS + 10)) --log-every 10 --valid-every 1000000 --valid-bleu-sentences 0 \
      --max-tokens 4000 --dropout 0.2 --threads 2 --precision "$precision" > "$log" 2>&1 || status=$?
    measure result --metrics "$OUT/metrics.jsonl" --isa "$isa" --precision "$precision" --status "$status" --log "$log"
  done
done
