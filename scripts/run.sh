#!/usr/bin/env bash
# The main job on a fresh machine: sets up libtorch (cached), builds vog, prints what it
# sees, and runs `vog demo`: a small ResNet-18 trained on synthetic data with shuffled
# labels and planted atypical images, scored, evaluated and reported in runs/demo
# (under 3 minutes on a 2-core CPU, plus the first build). Extra arguments go to `vog demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release --locked
./target/release/vog info
./target/release/vog demo --out runs/demo "$@"
