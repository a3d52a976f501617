# Sourced by the other scripts: points the tch build at the cached PyTorch's libtorch.
# Run scripts/setup.sh first.
VOG_TORCH_VERSION=2.11.0
VOG_VENV="${VOG_CACHE:-$HOME/.cache/vog}/torch-$VOG_TORCH_VERSION"
for d in "$VOG_VENV"/lib/python3*/site-packages/torch; do LIBTORCH="$d"; done
if [ ! -d "${LIBTORCH:-}/lib" ]; then
  echo "env: no torch found under $VOG_VENV: run scripts/setup.sh" >&2
  return 1
fi
export LIBTORCH VOG_VENV
export VOG_PYTHON="$VOG_VENV/bin/python"
