#!/usr/bin/env bash
# The longer Multi30k recipe: scripts/multi30k.sh with dropout 0.3 for $MINUTES (default 60) in both
# directions at once, de->en and en->de, one thread each (on 2 cores, two 1-thread runs side by side train as
# fast in total as one 2-thread run after the other). Logs: $PREFIX.{de-en,en-de}.log.
# Knobs: DATA, MINUTES, PREFIX (run folders $PREFIX.de-en and $PREFIX.en-de; default
# checkpoints/m30k-long); extra flags go to train. Both directions' results are printed; a failed one as its log's
# last line, and the script then exits with its status, naming it.
set -euo pipefail
here="$(dirname "$0")"
export MINUTES=${MINUTES:-60}
PREFIX=${PREFIX:-checkpoints/m30k-long}
mkdir -p "$(dirname "$PREFIX")"
pids=()
for pair in de-en en-de; do
  SRC=${pair%-*} TGT=${pair#*-} RUN=$PREFIX.$pair "$here/multi30k.sh" --threads 1 --keep-checkpoints 3 --dropout 0.3 "$@" \
    > "$PREFIX.$pair.log" 2>&1 &
  pids+=($!)
done
status=0 failed=() pairs=(de-en en-de)
for i in 0 1; do  # each direction's result is printed, whatever the other's
  pair=${pairs[$i]} code=0
  wait "${pids[$i]}" || code=$?
  echo "== $pair ($PREFIX.$pair.log)"
  if (( code )); then
    status=$code failed+=("$pair (exit $code)")
    echo "failed (exit $code): $(tail -1 "$PREFIX.$pair.log")"
  else
    grep -A2 " vs " "$PREFIX.$pair.log" | tail -3 || echo "no score in the log"
  fi
done
if (( ${#failed[@]} )); then echo "multi30k_long.sh: failed: ${failed[*]}" >&2; fi
exit "$status"
