#!/usr/bin/env bash
# Does bf16 pay on this CPU? Training target tokens/s of fp32 and bf16 (the 15-minute recipe's model and
# batches, $STEPS updates after a 10-update warm-up, 2 threads), with oneDNN as it is and capped at
# older instruction sets (ONEDNN_MAX_CPU_ISA): AVX512_CORE is AVX-512 without native bf16 (oneDNN
# emulates it), AVX2 has no bf16 LSTM kernel at all (the run stops with one line, exit 2).
# One JSON line per run (seq2seq/devtools/precision.py: tokens/s from update 10's train record to the last one's).
# Knobs: DATA (default data/multi30k), OUT (default checkpoints/precision; a folder holding another run's
# last.pt/best.pt is refused, as each measurement trains there with --overwrite), STEPS (default 60; a multiple of
# 10, at most 999,999,999,990: train's --max-steps bound less the warm-up), ISAS (default "DEFAULT AVX512_CORE AVX2";
# each one of oneDNN's ONEDNN_MAX_CPU_ISA values: DEFAULT SSE41 AVX AVX2 AVX2_VNNI AVX2_VNNI_2 AVX512_CORE
# AVX512_CORE_VNNI AVX512_CORE_BF16 AVX512_CORE_FP16 AVX512_CORE_AMX AVX512_CORE_AMX_FP16 and the AVX10_1_512 names,
# as seq2seq/devtools/precision.py lists them; oneDNN ignores another). A bad STEPS, ISAS or OUT is refused up front
# (one line, exit 2, before anything is prepared or trained); the script exits 1 when every training failed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-data/multi30k} SRC=de TGT=en
source "$(dirname "$0")/knobs.sh"  # TEST_SPLIT
OUT=${OUT:-checkpoints/precision}
STEPS=${STEPS:-60} ISAS=${ISAS:-DEFAULT AVX512_CORE AVX2}
measure() { "$SEQ2SEQ_PY" -m seq2seq.devtools.precision "$@"; }  # seq2seq/devtools/precision.py
# STEPS a multiple of 10 within train's bound; ISAS oneDNN's names; OUT no other run's folder (--overwrite)
STEPS=$(measure check --out "$OUT" --steps "$STEPS" --isas "$ISAS")
[ -f "$OUT/preprocess.json" ] || seq2seq preprocess --data "$DATA" --src de --tgt en --out "$OUT" \
  --test-split "$TEST_SPLIT" --vocab-size 4000 >&2
read -r -a isas <<< "$ISAS"
runs=0 failed=0
for isa in "${isas[@]}"; do
  for precision in fp32 bf16; do
    status=0 log=$OUT/$isa-$precision.log runs=$((runs + 1))
    ONEDNN_MAX_CPU_ISA=$isa seq2seq train --data "$DATA" --src de --tgt en --out "$OUT" --test-split "$TEST_SPLIT" \
      --overwrite --max-steps $((STEPS + 10)) --log-every 10 --valid-every 1000000 --valid-bleu-sentences 0 \
      --max-tokens 4000 --dropout 0.2 --threads 2 --precision "$precision" > "$log" 2>&1 || status=$?
    (( status == 0 )) || failed=$((failed + 1))
    measure result --metrics "$OUT/metrics.jsonl" --isa "$isa" --precision "$precision" --status "$status" --log "$log"
  done
done
if (( failed == runs )); then  # nothing measured (one failed run, bf16 where the CPU cannot run it, is a result)
  echo "precision.sh: all $runs trainings failed: nothing measured (their logs: $OUT/*-fp32.log, *-bf16.log)" >&2
  exit 1
fi
