#!/usr/bin/env bash
# Create or reuse a virtualenv ($VENV, default .venv) with seq2seq and its dependencies.
# torch is installed first as $TORCH_SPEC (default torch==2.13.0, a CPU build on these
# machines) so that resolving the other dependencies never pulls a CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV=${VENV:-$ROOT/.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp="$VENV/.seq2seq-installed"
want="$(sha256sum < "$ROOT/pyproject.toml" | cut -d' ' -f1) $TORCH_SPEC"
[ -x "$VENV/bin/python" ] || ${PYTHON:-python3} -m venv "$VENV"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $VENV ..."
  "$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev,plot,tensorboard,onnx]"
  echo "$want" > "$stamp"
fi
