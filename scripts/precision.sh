#!/usr/bin/env bash
# Does bf16 pay on this CPU? Training target tokens/s of fp32 and bf16 (the 15-minute recipe's model and
# batches, $STEPS updates after a 10-update warm-up, 2 threads), with oneDNN as it is and capped at
# older instruction sets (ONEDNN_MAX_CPU_ISA): AVX512_CORE is AVX-512 without native bf16 (oneDNN
# emulates it), AVX2 has no bf16 LSTM kernel at all (the run stops with one line, exit 2).
# One JSON line per run. Knobs: DATA (default data/multi30k), OUT (default
# checkpoints/precision), STEPS (default 60), ISAS (default "DEFAULT AVX512_CORE AVX2").
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-data/multi30k} SRC=de TGT=en
source "$(dirname "$0")/knobs.sh"  # TEST_SPLIT
OUT=${OUT:-checkpoints/precision}
STEPS=${STEPS:-60}
[ -f "$OUT/preprocess.json" ] || seq2seq preprocess --data "$DATA" --src de --tgt en --out "$OUT" \
  --test-split "$TEST_SPLIT" --vocab-size 4000 >&2
for isa in ${ISAS:-DEFAULT AVX512_CORE AVX2}; do
  for precision in fp32 bf16; do
    status=0
    ONEDNN_MAX_CPU_ISA=$isa seq2seq train --data "$DATA" --src de --tgt en --out "$OUT" --test-split "$TEST_SPLIT" \
      --overwrite --max-steps $((STEPS + 10)) --log-every 10 --valid-every 1000000 --valid-bleu-sentences 0 \
      --max-tokens 4000 --dropout 0.2 --threads 2 --precision "$precision" > "$OUT/$isa-$precision.log" 2>&1 || status=$?
    ISA=$isa PRECISION=$precision STATUS=$status LOG="$OUT/$isa-$precision.log" "$SEQ2SEQ_PY" - "$OUT/metrics.jsonl" <<'EOF'
import json, os, sys
out = {"onednn_max_cpu_isa": os.environ["ISA"], "precision": os.environ["PRECISION"], "exit": int(os.environ["STATUS"])}
if out["exit"]:
    out["error"] = open(os.environ["LOG"], encoding="utf-8").read().strip().splitlines()[-1]
else:
    from seq2seq.runfiles import read_metrics
    recs = read_metrics(sys.argv[1])
    train = recs["train"][1:]  # the first 10 updates are the warm-up
    hw = recs["hardware"][0]
    out["cpu"] = hw["cpu"]
    out["tgt_tok_s"] = round((train[-1]["tokens"] - train[0]["tokens"]) / (train[-1]["elapsed_s"] - train[0]["elapsed_s"]))
print(json.dumps(out))
EOF
  done
done
