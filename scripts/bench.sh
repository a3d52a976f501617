#!/usr/bin/env bash
# vog beside eager PyTorch: the same network, batch, precision and threads, on synthetic
# images in memory. Builds vog (release), runs `vog bench` and scripts/bench_pytorch.py on
# each configuration, and prints one table with the ratio vog / PyTorch per row.
#
#   bash scripts/bench.sh                       # widths 16 and 64, train and score, fp32
#   WIDTHS="16" PRECISIONS="fp32,bf16" SECONDS_PER_ROW=20 bash scripts/bench.sh
#   DEVICE=cuda BATCH=128 bash scripts/bench.sh
#
# Figures are noisy on a shared machine: run it twice and compare.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where the environment is already set (scripts/env.sh sourced, or a GPU machine with
# torch preinstalled and VOG_PYTHON=python3), no setup.
if [ -z "${VOG_PYTHON:-}" ]; then
  bash scripts/setup.sh
  source scripts/env.sh
fi
WIDTHS="${WIDTHS:-16 64}"
WHAT="${WHAT:-train,score}"
PRECISIONS="${PRECISIONS:-fp32}"
DEVICE="${DEVICE:-cpu}"
BATCH="${BATCH:-128}"
K="${K:-6}"
SECONDS_PER_ROW="${SECONDS_PER_ROW:-10}"
THREADS="${THREADS:-$(nproc)}"
VOG="${VOG:-target/release/vog}"
if [ "$VOG" = target/release/vog ]; then
  cargo build --release --locked --quiet
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), device $DEVICE, $THREADS threads" >&2
for w in $WIDTHS; do
  common=(--what "$WHAT" --width "$w" --batch-size "$BATCH" --precision "$PRECISIONS"
          --device "$DEVICE" --checkpoints "$K" --seconds "$SECONDS_PER_ROW" --threads "$THREADS")
  "$VOG" bench "${common[@]}" --format json --quiet > "$tmp/vog-$w.json"
  "$VOG_PYTHON" scripts/bench_pytorch.py "${common[@]}" > "$tmp/torch-$w.json"
done
"$VOG_PYTHON" - "$tmp" $WIDTHS <<'PY'
import json, sys
tmp, widths = sys.argv[1], sys.argv[2:]
print(f"{'what':<6} {'prec':<5} {'width':>5} {'batch':>5} {'K':>3} {'vog':>10} {'pytorch':>10} {'vog/pt':>7}  unit")
for w in widths:
    ours = json.load(open(f"{tmp}/vog-{w}.json"))
    theirs = json.load(open(f"{tmp}/torch-{w}.json"))
    for a, b in zip(ours, theirs):
        assert (a["what"], a["precision"]) == (b["what"], b["precision"])
        ra, rb = a["rate"], b["rate"]
        fmt = lambda r: f"{r:.1f}"
        ratio = f"{ra / rb:.2f}"
        k = a["checkpoints"] or "-"
        print(f"{a['what']:<6} {a['precision']:<5} {a['width']:>5} {a['batch_size']:>5} {k:>3} {fmt(ra):>10} {fmt(rb):>10} {ratio:>7}  {a['unit']}")
PY
