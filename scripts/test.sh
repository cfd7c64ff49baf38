#!/usr/bin/env bash
# Run the test suite (sets up .venv first if needed). Extra flags go to pytest.
set -euo pipefail
SEQ2SEQ_FORCE_VENV=1 source "$(dirname "$0")/env.sh"  # pytest lives in the venv's dev extra
cd "$ROOT"
"$SEQ2SEQ_PY" -m pytest tests "$@"
