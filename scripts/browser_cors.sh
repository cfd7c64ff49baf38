#!/usr/bin/env bash
# CORS in a real headless browser (Debian's chromium; CHROMIUM names another): a page served from another
# port (http.server in a temporary folder) calls `seq2seq serve` (CHECKPOINT, default $RUN/best.pt) with
# fetch(). With `--allow-origin` naming that page's origin the call succeeds and the page shows the
# translation of SENTENCE; the browser blocks the same call from a second origin, and to a server started
# without the flag. One summary line; exit 0 (passed) or 1. Not part of the test suite.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/knobs.sh"
CHECKPOINT=${CHECKPOINT:-$RUN/best.pt}
exec "$SEQ2SEQ_PY" -m seq2seq.devtools.browser_check cors --checkpoint "$CHECKPOINT" \
  --sentence "${SENTENCE:-Ein Mann fährt Fahrrad.}" "$@"
