#!/usr/bin/env bash
# Create benchmarks/peers/.venv-rejax for the compiled-PPO peer, rejax 0.1.3 on gymnax, with the pins in
# requirements-rejax.txt (jax/jaxlib 0.10.2, flax 0.12.8, optax 0.2.8 and gymnax 0.0.9: the versions critix
# itself runs). rejax needs no torch, so it has a venv of its own rather than sharing benchmarks/peers/.venv.
# Idempotent: a second run only checks the pins and exits.
# Usage: bash benchmarks/peers/install_rejax.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-rejax"
REQ="$HERE/requirements-rejax.txt"
PY="${PYTHON:-python3}"

[ -x "$VENV/bin/python" ] || { echo "creating $VENV"; "$PY" -m venv "$VENV"; }
VPY="$VENV/bin/python"

check() {
  # Exit 0 when every pin in requirements-rejax.txt is installed at its version and rejax imports.
  "$VPY" - "$REQ" <<'PYEOF'
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
    if not req.specifier.contains(have, prereleases=True):
        print(f"{req.name} {have} does not match {req.specifier}"); ok = False
if ok:
    import rejax  # noqa: F401  (fails if a dependency is broken)
sys.exit(0 if ok else 1)
PYEOF
}

if "$VPY" -c "import packaging" 2>/dev/null && check >/dev/null 2>&1; then
  echo "rejax already installed in $VENV"
  exit 0
fi

"$VPY" -m pip install --quiet --upgrade pip packaging
"$VPY" -m pip install --quiet -r "$REQ"
if ! check; then
  echo "install_rejax.sh: $VENV does not match requirements-rejax.txt" >&2
  exit 1
fi
"$VPY" - <<'PYEOF'
from importlib.metadata import version
print(", ".join(f"{p} {version(p)}" for p in ("rejax", "jax", "jaxlib", "flax", "optax", "gymnax", "distrax")))
PYEOF
echo "rejax installed in $VENV"
