#!/usr/bin/env bash
# Serve $CHECKPOINT (default $RUN/best.pt, or an ONNX model from `seq2seq export`) over HTTP on $HOST:$PORT
# (default 127.0.0.1:8000; PORT=0 picks a free one): POST /translate, GET /health (docs/serving.md).
# Extra flags pass through: default decode settings (--beam-size 1) and limits (--max-sentences 64).
# Stops cleanly on SIGTERM or Ctrl-C (requests in flight finish first).
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
CHECKPOINT=${CHECKPOINT:-$RUN/best.pt}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# exec: the server gets the signals itself (no shell in between to swallow SIGTERM)
exec "$SEQ2SEQ_PY" -m seq2seq serve --checkpoint "$CHECKPOINT" --host "$HOST" --port "$PORT" "$@"
