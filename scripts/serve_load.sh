#!/usr/bin/env bash
# Load test for a running `seq2seq serve` (scripts/serve.sh): REQUESTS requests (default 200) from
# CONCURRENCY client threads (default 8), SENTENCES sentences each (default 8) from INPUT (default
# $DATA/$VAL_SPLIT.$SRC), against URL (default http://$HOST:$PORT, 127.0.0.1:8000). Prints one JSON
# object. Extra flags pass through, e.g. --options '{"beam_size": 1}' or --health.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
URL=${URL:-http://${HOST:-127.0.0.1}:${PORT:-8000}}
INPUT=${INPUT:-$DATA/$VAL_SPLIT.$SRC}
"$SEQ2SEQ_PY" -m seq2seq.devtools.serve_load --url "$URL" --input "$INPUT" --requests "${REQUESTS:-200}" \
  --concurrency "${CONCURRENCY:-8}" --sentences "${SENTENCES:-8}" "$@"
