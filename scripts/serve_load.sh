#!/usr/bin/env bash
# Load test of `seq2seq serve`: at each client count of CONCURRENCY (default 1,8,32), that many client
# threads send requests of SENTENCES sentences each (default 8, from INPUT, default $DATA/$VAL_SPLIT.$SRC):
# REQUESTS requests per level (default 200), or for DURATION seconds per level when it is set.
# Bounds, refused up front (one line, exit 2, before a server is started or a request sent): SENTENCES 1 to 100,000
# (no server takes more), each CONCURRENCY level 1 to 1,024 and CONCURRENCY x SENTENCES at most 1,000,000, REQUESTS
# 1 to 1,000,000, DURATION seconds > 0 and at most 86,400 (24 hours; a level also ends at 1,000,000 requests).
# The server: URL (default http://$HOST:$PORT, 127.0.0.1:8000), a running one (scripts/serve.sh); or,
# with CHECKPOINT set and no URL, one this script starts on a free port (SERVE_FLAGS passed to it) and stops.
# Prints a table (requests/s, sentences/s, p50/p99 ms, dropped, failed) and one JSON line (one level:
# one JSON object). Exit 1 when any request was dropped or failed. Extra flags pass through, e.g.
# --options '{"beam_size": 1}', --warmup 8 or --health.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
INPUT=${INPUT:-$DATA/$VAL_SPLIT.$SRC}
if [ -n "${URL:-}" ] && [ -n "${CHECKPOINT:-}${SERVE_FLAGS:-}" ]; then  # else they would be ignored
  echo "serve_load.sh: URL names a running server; CHECKPOINT and SERVE_FLAGS start one: set one or the other" >&2
  exit 2
fi
if [ -n "${DURATION:-}" ]; then amount=(--duration "$DURATION"); else amount=(--requests "${REQUESTS:-200}"); fi
knobs=(--input "$INPUT" "${amount[@]}" --concurrency "${CONCURRENCY:-1,8,32}" --sentences "${SENTENCES:-8}")
"$SEQ2SEQ_PY" -m seq2seq.devtools.serve_load --check "${knobs[@]}" "$@"  # their bounds, before a server starts
if [ -z "${URL:-}" ] && [ -n "${CHECKPOINT:-}" ]; then
  logs=$(mktemp -d)
  # shellcheck disable=SC2086  # SERVE_FLAGS: several flags
  "$SEQ2SEQ_PY" -m seq2seq serve --checkpoint "$CHECKPOINT" --port 0 ${SERVE_FLAGS:-} >"$logs/out" 2>"$logs/err" &
  server=$!
  trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$logs"' EXIT
  until grep -q ' on http://' "$logs/out"; do
    if ! kill -0 "$server" 2>/dev/null; then tail -n 5 "$logs/err" >&2; exit 2; fi
    sleep 0.2
  done
  URL=$(sed -n 's/^serving .* on \(http:[^ ]*\)$/\1/p' "$logs/out")
  echo "serving $CHECKPOINT on $URL ${SERVE_FLAGS:-}" >&2
fi
URL=${URL:-http://${HOST:-127.0.0.1}:${PORT:-8000}}
"$SEQ2SEQ_PY" -m seq2seq.devtools.serve_load --url "$URL" "${knobs[@]}" "$@"
