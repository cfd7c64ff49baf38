#!/usr/bin/env bash
# Create or reuse a virtualenv ($VENV, default .venv) with seq2seq and its dependencies.
# torch is installed first as $TORCH_SPEC (default torch==2.13.0) so that resolving the other dependencies
# never pulls another torch; from $TORCH_INDEX when set (e.g. https://download.pytorch.org/whl/cpu, torch's CPU
# builds: PyPI's Linux torch is a CUDA build), else from pip's own configuration. A venv that has a torch keeps it
# unless TORCH_SPEC is given (then pip installs that spec, a no-op where the torch there meets it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV=${VENV:-$ROOT/.venv}
asked=${TORCH_SPEC:-}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp="$VENV/.seq2seq-installed"
want="$(sha256sum < "$ROOT/pyproject.toml" | cut -d' ' -f1) $TORCH_SPEC"
[ -x "$VENV/bin/python" ] || ${PYTHON:-python3} -m venv "$VENV"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $VENV ..."
  index=(); [ -n "${TORCH_INDEX:-}" ] && index=(--index-url "$TORCH_INDEX")
  if [ -n "$asked" ] || ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q ${index[@]+"${index[@]}"} "$TORCH_SPEC"
  fi
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev,plot,tensorboard,onnx]"
  echo "$want" > "$stamp"
fi
