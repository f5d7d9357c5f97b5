#!/usr/bin/env bash
# Create .venv and install the project into it.
#
# torch: a CUDA torch that the system Python already has is used as it is (the venv sees the system
# site-packages); otherwise TORCH_SPEC is installed first (default torch==2.13.0, the CPU build that
# this project's CI machines carry on disk), so that resolving the project never pulls a multi-GB
# CUDA wheel on a CPU machine. Override with e.g. TORCH_SPEC="torch==2.7.1" TORCH_INDEX=<url>.
# Afterwards .venv/bin holds python, torchrun and jetmoe (the project's command): nothing needs activating.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "setup: using the system's CUDA torch ($("$PYTHON" -c 'import torch; print(torch.__version__)'))"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP="$VENV/bin/python -m pip"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  if [ -n "${TORCH_INDEX:-}" ]; then
    $PIP install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX"
  else
    $PIP install -q "$TORCH_SPEC"
  fi
fi
echo "setup: installing the project (.[${EXTRAS}])"
$PIP install -q -e ".[${EXTRAS}]"
bash "$(dirname "$0")/venv_torchrun.sh" "$VENV"   # .venv/bin/torchrun also when torch is the system's
"$VENV/bin/python" -c "from importlib.metadata import version as v; import torch; print(f'setup: ok (torch {torch.__version__}, datatrove {v(\"datatrove\")}, pyarrow {v(\"pyarrow\")})')"
