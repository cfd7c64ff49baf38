#!/usr/bin/env bash
# Run the test suite (sets up .venv first if needed) on 2 worker processes (pytest-xdist; a core each on the
# 2-core machines it is measured on). Extra flags go to pytest: `-n 0` runs it in this one process, `-n 4` on 4.
set -euo pipefail
SEQ2SEQ_FORCE_VENV=1 source "$(dirname "$0")/env.sh"  # pytest lives in the venv's dev extra
cd "$ROOT"
"$SEQ2SEQ_PY" -m pytest -n 2 tests "$@"
