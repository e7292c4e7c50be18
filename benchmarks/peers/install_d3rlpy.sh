#!/usr/bin/env bash
# Create benchmarks/peers/.venv-d3rlpy for the offline peer (d3rlpy 2.8.1, which pins gymnasium 1.0.0 and so
# cannot share benchmarks/peers/.venv, pinned to gymnasium 1.4). torch 2.13.0 goes in first (the CPU wheel found
# via pip's configured find-links, or PyPI) and later installs are constrained to it, so no CUDA build is pulled.
# Idempotent. Usage: bash benchmarks/peers/install_d3rlpy.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-d3rlpy"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
if "$VPY" -c "import d3rlpy, torch, h5py, mujoco; assert d3rlpy.__version__ == '2.8.1'" 2>/dev/null; then
  echo "d3rlpy already installed in $VENV"; exit 0
fi
"$VPY" -m pip install --quiet --upgrade pip
"$VPY" -m pip install --quiet "torch==2.13.0"
CONSTRAINTS="$(mktemp)"; trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==2.13.0" > "$CONSTRAINTS"
"$VPY" -m pip install --quiet -c "$CONSTRAINTS" "d3rlpy==2.8.1" "gymnasium[mujoco]==1.0.0" "h5py~=3.16"
"$VPY" -c "import d3rlpy, torch, gymnasium; print('d3rlpy', d3rlpy.__version__, 'torch', torch.__version__, 'gymnasium', gymnasium.__version__)"
