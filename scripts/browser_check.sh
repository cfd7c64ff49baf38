#!/usr/bin/env bash
# The page at / of `seq2seq serve` in a real headless browser (Debian's chromium; CHROMIUM names another):
# serves CHECKPOINT (default $RUN/best.pt), or the models of MODELS ("NAME=PATH NAME=PATH": the check
# picks the last in the page's model picker), on a free port; loads the page, types SENTENCE (default
# "Ein Mann fährt Fahrrad.") and clicks Translate; checks that the page shows the server's own translation,
# the candidates with scores and the attention map with its alignment (clicking the second candidate
# redraws it), then the server's error line for a refused request; writes a screenshot to SCREENSHOT
# (default serve-page.png). One summary line; exit 0 (passed) or 1. Extra flags pass through
# (--beam-size 1, --n-best 2, --serve-flag=--max-beam-size --serve-flag=8). Not part of the test suite.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
if [ -n "${MODELS:-}" ] && [ -n "${CHECKPOINT:-}" ]; then  # else CHECKPOINT would be ignored
  echo "browser_check.sh: MODELS and CHECKPOINT both name what to serve: set one of them" >&2; exit 2
fi
if [ -n "${MODELS:-}" ]; then
  models=()
  for model in $MODELS; do models+=(--model "$model"); done
else
  models=(--checkpoint "${CHECKPOINT:-$RUN/best.pt}")
fi
exec "$SEQ2SEQ_PY" -m seq2seq.devtools.browser_check page "${models[@]}" \
  --screenshot "${SCREENSHOT:-serve-page.png}" --sentence "${SENTENCE:-Ein Mann fährt Fahrrad.}" "$@"
