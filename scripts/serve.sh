#!/usr/bin/env bash
# Serve $CHECKPOINT (default $RUN/best.pt, or an ONNX model from `seq2seq export`) over HTTP on $HOST:$PORT
# (default 127.0.0.1:8000; PORT=0 picks a free one): POST /translate, GET /health (docs/serving.md).
# Extra flags pass through: default decode settings (--beam-size 1) and limits (--max-sentences 64); those the
# knobs give (--checkpoint, --model, --host, --port) are refused: the later flag would win, the knob be ignored.
# Stops cleanly on SIGTERM or Ctrl-C (requests in flight finish first).
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
for arg in "$@"; do
  case $(flag_of "$arg" --checkpoint --model --host --port) in
    --checkpoint | --model)
      echo "serve.sh: CHECKPOINT gives the model (CHECKPOINT=FILE scripts/serve.sh; several: seq2seq serve --model" \
        "NAME=PATH ...); drop $arg" >&2; exit 2 ;;
    --host) echo "serve.sh: HOST gives the address (HOST=0.0.0.0 scripts/serve.sh); drop $arg" >&2; exit 2 ;;
    --port) echo "serve.sh: PORT gives the port (PORT=9000 scripts/serve.sh); drop $arg" >&2; exit 2 ;;
  esac
done
CHECKPOINT=${CHECKPOINT:-$RUN/best.pt}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# exec: the server gets the signals itself (no shell in between to swallow SIGTERM)
exec "$SEQ2SEQ_PY" -m seq2seq serve --checkpoint "$CHECKPOINT" --host "$HOST" --port "$PORT" "$@"
