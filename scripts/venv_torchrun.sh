#!/usr/bin/env bash
# Give a venv a bin/torchrun when its torch comes from the system Python (a GPU box's CUDA torch, seen through
# --system-site-packages): pip then installs no torchrun into the venv, and the Makefile and the launch files
# call .venv/bin/torchrun so that nothing needs activating. The script runs that venv's python -m
# torch.distributed.run, which is what torchrun is.
#   bash scripts/venv_torchrun.sh .venv
set -euo pipefail
VENV=${1:?usage: venv_torchrun.sh <venv folder>}
if [ ! -x "$VENV/bin/torchrun" ]; then
  PY="$(cd "$VENV/bin" && pwd)/python"
  printf '#!/bin/sh\n# torchrun of this venv (its torch is the system one): scripts/venv_torchrun.sh\nexec "%s" -m torch.distributed.run "$@"\n' \
    "$PY" > "$VENV/bin/torchrun"
  chmod +x "$VENV/bin/torchrun"
  echo "setup: $VENV/bin/torchrun runs $PY -m torch.distributed.run"
fi
