#!/usr/bin/env bash
# The main job on a fresh machine: sets up libtorch (cached), builds vog, prints what it
# sees, and trains a small ResNet-18 on the built-in synthetic dataset, saving checkpoints
# in runs/synth. Extra arguments go to `vog train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release --locked
./target/release/vog info
./target/release/vog train --dataset synth --width 16 --epochs 10 --save-epochs all \
  --out runs/synth --overwrite "$@"
echo "run directory: runs/synth (run.json, config.toml, checkpoints/)"
