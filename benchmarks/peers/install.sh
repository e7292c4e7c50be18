#!/usr/bin/env bash
# Create benchmarks/peers/.venv with the peer libraries (SB3, SBX) pinned in requirements.txt.
# torch==2.13.0 is installed first (pip prefers the local CPU wheel, 2.13.0+cpu, found via find-links);
# everything else is installed with the constraint torch==2.13.0 so that no later step swaps it for a
# newer (CUDA) build. Idempotent: a second run only checks the pins and exits.
# Usage: bash benchmarks/peers/install.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

check() {
  # Exit 0 when every pin in requirements.txt is satisfied in the venv (importable and at the pinned version).
  "$VPY" - "$HERE/requirements.txt" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
ok = True
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    req = Requirement(line)
    try:
        have = version(req.name)
    except PackageNotFoundError:
        print(f"missing {req.name}"); ok = False; continue
    # torch's CPU wheel reports 2.13.0+cpu; the pin 2.13.0 matches it
    if not req.specifier.contains(have.split("+")[0], prereleases=True):
        print(f"{req.name} {have} does not match {req.specifier}"); ok = False
sys.exit(0 if ok else 1)
EOF
}

if "$VPY" -c "import packaging" 2>/dev/null && check >/dev/null 2>&1; then
  echo "peers already installed in $VENV:"
  "$VPY" -m pip list 2>/dev/null | grep -iE "^(torch|stable.baselines3|sbx-rl|jax|jaxlib|flax|gymnasium|mujoco) " || true
  exit 0
fi

"$VPY" -m pip install --quiet --upgrade pip packaging
echo "installing $TORCH_PIN (CPU) first"
"$VPY" -m pip install "$TORCH_PIN"
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "$TORCH_PIN" > "$CONSTRAINTS"
echo "installing the rest of requirements.txt, constrained to $TORCH_PIN"
grep -v -E '^\s*(#|$)' "$HERE/requirements.txt" | grep -v -E '^torch([=<>~! ]|$)' > "$CONSTRAINTS.req"
trap 'rm -f "$CONSTRAINTS" "$CONSTRAINTS.req"' EXIT
"$VPY" -m pip install -c "$CONSTRAINTS" -r "$CONSTRAINTS.req"

if ! check; then
  echo "install.sh: the peer venv does not match requirements.txt" >&2
  exit 1
fi
"$VPY" - <<'EOF'
import torch, stable_baselines3, sbx, jax, gymnasium
print(f"torch {torch.__version__} (cuda: {torch.version.cuda}), sb3 {stable_baselines3.__version__}, "
      f"sbx {sbx.__version__}, jax {jax.__version__}, gymnasium {gymnasium.__version__}")
EOF
echo "peers installed in $VENV"
