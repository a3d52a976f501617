#!/usr/bin/env bash
# Sets up libtorch (cached) and the browser the page tests drive (Debian's chromium), builds
# vog and runs the checks, the whole test suite and the sharded-scoring scripts
# (multi-device and a real one-node Slurm cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh
source scripts/env.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
bash scripts/test-sharding.sh
