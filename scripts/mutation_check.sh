#!/usr/bin/env bash
# Break each guarded behaviour in a scratch copy of the repository and show that its tests fail
# (seq2seq/devtools/mutation_check.py; the table of the last run is in docs/development.md).
# Not part of the suite. Flags: --jobs N (default 2), --only TEXT, --list, --timeout S,
# --rev COMMIT (default HEAD: the committed files; "worktree" for the working tree as it is).
set -euo pipefail
SEQ2SEQ_FORCE_VENV=1 source "$(dirname "$0")/env.sh"  # pytest lives in the venv's dev extra
cd "$ROOT"
"$SEQ2SEQ_PY" -m seq2seq.devtools.mutation_check "$@"
