#!/usr/bin/env bash
# Idempotent set-up: installs the pinned PyTorch wheel (the source of libtorch for tch)
# into a virtual environment in a cache outside the checkout, so every clone and CI run
# reuses it. Prints nothing but progress; source scripts/env.sh afterwards.
set -euo pipefail
TORCH_VERSION=2.11.0
CACHE="${VOG_CACHE:-$HOME/.cache/vog}"
VENV="$CACHE/torch-$TORCH_VERSION"
STAMP="$VENV/.vog-ready"

# Oracles the tests check vog against (never called by vog itself), pinned.
ORACLES=("cleanlab==2.7.1" "pillow==11.3.0" "scikit-learn==1.9.1")

ensure_oracles() {
  if ! "$VENV/bin/python" -c 'import cleanlab, PIL, sklearn' 2>/dev/null; then
    echo "setup: installing ${ORACLES[*]} (test oracles)" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${ORACLES[@]}"
  fi
}

if [ -f "$STAMP" ]; then
  ensure_oracles
  exit 0
fi
echo "setup: installing torch==$TORCH_VERSION into $VENV (about 1 minute, 4.7 GB)" >&2
rm -rf "$VENV"
mkdir -p "$CACHE"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "torch==$TORCH_VERSION" "safetensors>=0.4" "numpy>=1.24"
"$VENV/bin/python" -c 'import torch; print("setup: torch", torch.__version__)' >&2
ensure_oracles
touch "$STAMP"
