# Sourced by the other scripts: makes `seq2seq` runnable, bootstrapping .venv when needed.
# Uses the active Python if it already has seq2seq (e.g. an activated virtualenv), else
# creates or reuses $VENV (default .venv in the repository) via scripts/setup.sh.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The packages are found, not imported: importing them all took 2 s, before every script's own work. So a Python
# whose torch is there but broken is used, and its import error shows (it fell back to .venv before).
if [ -z "${SEQ2SEQ_FORCE_VENV:-}" ] && ${PYTHON:-python3} -c "import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in ('torch', 'sentencepiece', 'sacrebleu', 'datasets', 'tqdm', 'seq2seq')))" \
  2>/dev/null; then
  SEQ2SEQ_PY=${PYTHON:-python3}
else
  bash "$ROOT/scripts/setup.sh" >&2
  SEQ2SEQ_PY="${VENV:-$ROOT/.venv}/bin/python"
fi
seq2seq() { "$SEQ2SEQ_PY" -m seq2seq "$@"; }
flag_of() {  # the flag among $2... that the argument $1 names (argparse takes a prefix: --out is --output), if any
  local name=${1%%=*} flag
  [[ $name == --?* ]] || return 0
  for flag in "${@:2}"; do [[ $flag == "$name"* ]] && { echo "$flag"; return 0; }; done
  return 0  # none of them
}
