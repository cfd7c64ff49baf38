#!/usr/bin/env bash
# The Multi30k de->en recipe: SentencePiece 4k per language, train for $MINUTES of wall clock (lr 2e-3,
# 6e-3 for a short budget: constant, then annealed over the last half of the budget), then beam-5
# translation of the test split
# scored with sacreBLEU. Precision is `auto` (bf16 where the hardware runs it natively, else fp32).
#   CPU (default): the default model (emb 256, bi-LSTM 2x128, LSTM decoder 256, general attention, tied
#     embeddings), dropout 0.4 where it trains in bf16, 0.3 in fp32 (0.2 with SEEDS), batches of <= 4,000 tokens,
#     15 minutes. A budget under 10
#     minutes (MINUTES=4) trains with dropout 0.1 and lr 6e-3 instead: chosen on val (docs/results.md).
#     MINUTES=0 is no time limit (--max-steps bounds the run, as in scripts/ablation.sh): the 15-minute settings.
#   GPU (DEVICE=cuda, or found by DEVICE=auto): a 12.8 M-parameter model (emb 512, 2-layer bi-LSTM 2x256,
#     2-layer LSTM decoder 512), dropout 0.3, batches of <= 8,000 tokens, 4 minutes.
# SEEDS="1234 2": one model per seed, trained at the same time (each in $RUN.seedS, with the cores shared
#   out: --threads cores/number of seeds), then the test split translated by their ensemble. On 2 CPU cores
#   two 1-thread runs train more tokens per second in total than one 2-thread run (docs/results.md); with
#   15 minutes each model trains on batches of <= 3,000 tokens instead of 4,000 (43.44 BLEU on two pairs,
#   one model 41.72, on a 2-core AMD EPYC, 2026-12-05; on the Intel Xeon of README's results 42.77 and 42.44).
#   Each seed is a whole number from 0 to 2**63 - 1 (`seq2seq train --seed`), given once: another is refused
#   up front (one line, exit 2), before anything is prepared, copied or trained.
# Knobs: DATA (default data/multi30k, from `scripts/download.sh`), RUN, MINUTES, TEST_SPLIT, DEVICE (default cpu; auto: a CUDA
# GPU if there is one), SEEDS; extra flags go to train.
set -euo pipefail
here="$(dirname "$0")"
source "$here/env.sh"
export DATA=${DATA:-data/multi30k} SRC=${SRC:-de} TGT=${TGT:-en}
source "$here/knobs.sh"  # TEST_SPLIT: test, or test_2016_flickr where DATA has it
export TEST_SPLIT RUN=${RUN:-checkpoints/multi30k.$SRC-$TGT}
read -r -a seeds <<< "${SEEDS:-}"
seed_max=9223372036854775807  # seq2seq train --seed's bound (torch.manual_seed's; TRAIN_BOUNDS in seq2seq/config.py)
declare -A seen=()
for i in "${!seeds[@]}"; do  # each a whole number in train's range, each once: before anything is prepared or copied
  seed=${seeds[$i]}
  while [[ $seed == 0?* ]]; do seed=${seed#0}; done  # 007 is seed 7 (and its folder $RUN.seed7)
  if [[ ! $seed =~ ^[0-9]+$ ]] || (( ${#seed} > ${#seed_max} )) || [[ ${#seed} == "${#seed_max}" && $seed > $seed_max ]]
  then
    echo "multi30k.sh: SEEDS gives the seeds, whole numbers from 0 to $seed_max (seq2seq train --seed); got" \
      "'${seeds[$i]}'" >&2
    exit 2
  fi
  if [ -n "${seen[$seed]+set}" ]; then
    echo "multi30k.sh: SEEDS gives seed $seed twice: each seed trains its own model in \$RUN.seedS; give each once" >&2
    exit 2
  fi
  seen[$seed]=1 seeds[i]=$seed
done
for arg in "$@"; do
  if (( ${#seeds[@]} )) && [[ $arg == --seed || $arg == --seed=* ]]; then
    echo "multi30k.sh: SEEDS gives the seeds; drop --seed from the flags" >&2; exit 2
  fi
done
device=$(seq2seq hardware --device "${DEVICE:-cpu}" --get device)  # exits 2 on a device that is not here
if [[ $device == cuda* ]]; then
  recipe=(--max-minutes "${MINUTES:-4}" --emb-size 512 --enc-hidden 256 --enc-layers 2 --dec-hidden 512
          --dec-layers 2 --dropout 0.3 --max-tokens 8000 --lr 2e-3)
elif awk -v m="${MINUTES:-15}" 'BEGIN { exit !(m > 0 && m < 10) }'; then  # a short budget: fewer, bolder updates pay
  recipe=(--max-minutes "$MINUTES" --dropout 0.1 --max-tokens 4000 --lr 6e-3)
else  # with SEEDS (the cores shared out): batches of <= 3,000 tokens, more updates; chosen on val (docs/results.md)
  # one model: dropout 0.4 where training runs in bf16 (5,700-12,900 updates in 15 minutes: val +0.45 to +1.60 over
  # 0.3), 0.3 in fp32 (2,000-2,900 updates on one core: val +0.67 over 0.4); paired runs in docs/results.md
  asked=auto; for ((i = 1; i <= $#; i++)); do
    case ${!i} in --precision) j=$((i + 1)); asked=${!j:-auto} ;; --precision=*) asked=${!i#*=} ;; esac
  done
  precision=$(seq2seq hardware --device "$device" --precision "$asked" --get precision)
  tokens=4000 dropout=0.3; [[ $precision == bf16* ]] && dropout=0.4
  (( ${#seeds[@]} < 2 )) || { tokens=3000; dropout=0.2; }
  recipe=(--max-minutes "${MINUTES:-15}" --dropout "$dropout" --max-tokens "$tokens" --lr 2e-3)
fi
echo "multi30k recipe on $device: ${recipe[*]}" >&2
[ -f "$RUN/preprocess.json" ] || "$here/preprocess.sh" --vocab-size 4000
recipe+=(--valid-every 400 --lr-schedule anneal --anneal-fraction 0.5 --patience 0)
if (( ${#seeds[@]} < 2 )); then
  [ ${#seeds[@]} = 1 ] && recipe+=(--seed "${seeds[0]}")
  "$here/train.sh" --device "$device" "${recipe[@]}" "$@"
  "$here/translate.sh" --device "$device"
  exit
fi
threads=$(( $(nproc) / ${#seeds[@]} )); (( threads > 0 )) || threads=1
pids=() ckpts=()
for seed in "${seeds[@]}"; do  # each model trains in its own copy of the prepared folder
  [ -e "$RUN.seed$seed" ] || cp -r "$RUN" "$RUN.seed$seed"
  echo "training seed $seed in $RUN.seed$seed (--threads $threads; log $RUN.seed$seed.log)" >&2
  RUN=$RUN.seed$seed "$here/train.sh" --device "$device" "${recipe[@]}" --seed "$seed" --threads "$threads" "$@" \
    > "$RUN.seed$seed.log" 2>&1 &
  pids+=($!) ckpts+=("$RUN.seed$seed/best.pt")
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { status=$?; echo "seed ${seeds[$i]} failed: $(tail -1 "$RUN.seed${seeds[$i]}.log")" >&2; }
done
(( status == 0 )) || exit $status
for seed in "${seeds[@]}"; do grep -h "^trained " "$RUN.seed$seed.log" >&2 || true; done
CKPT=$(printf '%s\n' "${ckpts[@]}") "$here/translate.sh" --device "$device"  # one a line: RUN may hold spaces
