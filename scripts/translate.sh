#!/usr/bin/env bash
# Translate with $CKPT (default $RUN/best.pt) and score with sacreBLEU when a reference exists.
# Default input: the test split $DATA/$TEST_SPLIT.$SRC, output $RUN/$TEST_SPLIT.hyp.$TGT (with CKPT given and
# no RUN: beside the checkpoint), scored against $DATA/$TEST_SPLIT.$TGT. INPUT=FILE (another file) writes to
# OUTPUT (default: stdout) and is scored only against a REF given; INPUT=- reads stdin.
# CKPT="a.pt b.pt c.pt" (several files, space-separated) translates with their ensemble; one file a line
# (CKPT=$'run 1/best.pt\nrun 2/best.pt', what multi30k.sh's SEEDS passes) for paths with spaces; a single
# existing file is taken whole (CKPT="my run/best.pt"). BEAM is the beam size (unset: a --config's [decode]
# beam_size, else seq2seq's default, 5; set, it beats the --config's, as a flag does). OUTPUT=- prints the
# test split's translations, unscored. OUTPUT naming REF (or a link to it) is refused. Flags go to
# `seq2seq translate`; those the knobs give (--beam-size, --input, --output, --src, --tgt) are refused, and so are
# those whose output is no translation a line (--n-best, --nbest-format, --alignments, a --config's [decode] n_best)
# where the output is scored.
# SRC and TGT, the test split's languages (and INPUT's, where given), must be the model's: `seq2seq translate
# --src SRC --tgt TGT` refuses a model of another pair (it translated into nonsense, BLEU 0.05, exit 0).
set -euo pipefail
run_given=${RUN+yes} ckpt_given=${CKPT+yes} ref_given=${REF:+yes} input_given=${INPUT:+yes}
src_given=${SRC:+yes} tgt_given=${TGT:+yes}
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
for arg in "$@"; do
  case $(flag_of "$arg" --beam-size --input --output --src --tgt) in
    --beam-size) echo "translate.sh: BEAM gives the beam size (BEAM=1 scripts/translate.sh); drop $arg" >&2; exit 2 ;;
    --src | --tgt) echo "translate.sh: SRC and TGT give the languages (SRC=en TGT=de scripts/translate.sh); drop $arg" >&2
      exit 2 ;;
    --input | --output)
      echo "translate.sh: INPUT and OUTPUT give the files (INPUT=FILE OUTPUT=FILE scripts/translate.sh); drop $arg" >&2
      exit 2 ;;
  esac
done
CKPT=${CKPT:-$RUN/best.pt}
if [[ $CKPT == *$'\n'* ]]; then  # one file a line: paths with spaces
  ckpts=(); while IFS= read -r line; do [ -z "$line" ] || ckpts+=("$line"); done <<< "$CKPT"
elif [ -e "$CKPT" ]; then ckpts=("$CKPT")
else read -r -a ckpts <<< "$CKPT"; fi
beam=(); [ -n "${BEAM:-}" ] && beam=(--beam-size "$BEAM")  # unset: a --config's beam_size (a flag would beat it)
langs=()  # checked against the model's: the test split's always, another INPUT's where SRC/TGT are given
if [ -z "$input_given" ] || [ -n "$src_given" ]; then langs+=(--src "$SRC"); fi
if [ -z "$input_given" ] || [ -n "$tgt_given" ]; then langs+=(--tgt "$TGT"); fi
if [ -n "${INPUT:-}" ]; then  # another input than the test split: no file of the run is written or scored
  OUTPUT=${OUTPUT:--}
else
  INPUT=$DATA/$TEST_SPLIT.$SRC
  folder=$RUN; [ -n "$ckpt_given" ] && [ -z "$run_given" ] && folder=$(dirname "${ckpts[0]}")
  OUTPUT=${OUTPUT:-$folder/$TEST_SPLIT.hyp.$TGT}
  REF=${REF:-$DATA/$TEST_SPLIT.$TGT}
fi
io=(); [ "$INPUT" != - ] && io+=(--input "$INPUT"); [ "$OUTPUT" != - ] && io+=(--output "$OUTPUT")
if [ -n "$ref_given" ] && { [ "$OUTPUT" = - ] || [ ! -f "$REF" ]; }; then  # else the REF given would be ignored
  why="OUTPUT is standard output: set OUTPUT=FILE to score it"; [ "$OUTPUT" = - ] || why="no such file"
  echo "translate.sh: REF=$REF cannot be scored against: $why" >&2; exit 2
fi
[ -f "${REF:-}" ] || REF=  # the test split's references, where it has them
if [ -n "$REF" ] && [ "$OUTPUT" = - ]; then
  echo "translate.sh: OUTPUT is standard output: not scored (set OUTPUT=FILE to score it against $REF)" >&2; REF=
fi
if [ -n "$REF" ] && [ "$OUTPUT" -ef "$REF" ]; then  # the same file, by its path or a link
  echo "translate.sh: OUTPUT=$OUTPUT is the reference REF=$REF: it would be overwritten, then scored against" \
    "itself; set another OUTPUT" >&2; exit 2
fi
args=("$@") n_best_flag="" config=""
for i in "${!args[@]}"; do
  arg=${args[$i]} flag=$(flag_of "${args[$i]}" --n-best --nbest-format --alignments --config)
  if [ "$flag" = --config ]; then  # its [decode] n_best is read below, where the output is scored
    if [[ $arg == *=* ]]; then config=${arg#*=}; else config=${args[$((i + 1))]:-}; fi
    continue
  fi
  if [ "$flag" = --n-best ]; then  # --n-best 1 prints one translation a line: scored as it is
    if [[ $arg == *=* ]]; then value=${arg#*=}; else value=${args[$((i + 1))]:-}; fi
    n_best_flag=$value; [ "$value" = 1 ] && flag=
  fi
  if [ -n "$REF" ] && [ -n "$flag" ]; then
    echo "translate.sh: $flag writes lines that are not one translation each, and OUTPUT is scored against" \
      "REF=$REF; drop $arg (or run seq2seq translate)" >&2; exit 2
  fi
done
# a --n-best flag beats the file's; a pipe (<(...)) is left unread: seq2seq translate must read it whole
if [ -n "$REF" ] && [ -f "$config" ] && [ -z "$n_best_flag" ]; then
  n_best=$("$SEQ2SEQ_PY" -c 'import sys
from seq2seq.config_toml import load_toml
try:
    print(load_toml(sys.argv[1], ("decode",)).get("decode", {}).get("n_best", 1))
except Exception:  # a file seq2seq translate refuses with its own message
    print(1)' "$config")
  if [ "$n_best" != 1 ]; then
    echo "translate.sh: --config $config sets [decode] n_best = $n_best, whose lines are not one translation" \
      "each, and OUTPUT is scored against REF=$REF; add --n-best 1 (or run seq2seq translate)" >&2; exit 2
  fi
fi
seq2seq translate --checkpoint "${ckpts[@]}" "${beam[@]}" "${langs[@]}" "${io[@]}" "$@"
if [ -n "${REF:-}" ]; then
  echo "$OUTPUT vs $REF (beam ${BEAM:-of --config, else 5}):"
  seq2seq evaluate --hyp "$OUTPUT" --ref "$REF"
fi
