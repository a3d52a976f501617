#!/usr/bin/env bash
# vog beside eager PyTorch: the same network, batch, precision and threads, on synthetic
# images in memory. Builds vog (release), runs `vog bench` and scripts/bench_pytorch.py on
# each configuration, and prints one table with the ratio vog / PyTorch per row.
#
#   bash scripts/bench.sh                       # widths 16 and 64, train and score, fp32
#   WIDTHS="16" PRECISIONS="fp32,bf16" SECONDS_PER_ROW=20 ROUNDS=3 bash scripts/bench.sh
#   DEVICE=cuda BATCH=128 bash scripts/bench.sh
#
# Figures are noisy on a shared machine: ROUNDS=3 alternates vog and PyTorch three times
# and prints each side's median rate with the range of the per-round ratios.
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
ROUNDS="${ROUNDS:-1}"
THREADS="${THREADS:-$(nproc)}"
VOG="${VOG:-target/release/vog}"
if [ "$VOG" = target/release/vog ]; then
  cargo build --release --locked --quiet
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), device $DEVICE, $THREADS threads" >&2
for r in $(seq 1 "$ROUNDS"); do
  for w in $WIDTHS; do
    common=(--what "$WHAT" --width "$w" --batch-size "$BATCH" --precision "$PRECISIONS"
            --device "$DEVICE" --checkpoints "$K" --seconds "$SECONDS_PER_ROW" --threads "$THREADS")
    "$VOG" bench "${common[@]}" --format json --quiet > "$tmp/vog-$w-$r.json"
    "$VOG_PYTHON" scripts/bench_pytorch.py "${common[@]}" > "$tmp/torch-$w-$r.json"
  done
done
"$VOG_PYTHON" - "$tmp" "$ROUNDS" $WIDTHS <<'PY'
import json, statistics, sys
tmp, rounds, widths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
# Per row: the median rate of each side over the rounds, and the range of the per-round
# ratios (rounds alternate vog and PyTorch, so a slow spell of the machine hits both).
print(f"{'what':<6} {'prec':<5} {'width':>5} {'batch':>5} {'K':>3} {'vog':>10} {'pytorch':>10} {'vog/pt':>7} {'range':>11}  unit")
for w in widths:
    ours = [json.load(open(f"{tmp}/vog-{w}-{r}.json")) for r in range(1, rounds + 1)]
    theirs = [json.load(open(f"{tmp}/torch-{w}-{r}.json")) for r in range(1, rounds + 1)]
    for i, a in enumerate(ours[0]):
        assert all((o[i]["what"], o[i]["precision"]) == (a["what"], a["precision"]) for o in ours + theirs)
        ra = statistics.median(o[i]["rate"] for o in ours)
        rb = statistics.median(t[i]["rate"] for t in theirs)
        ratios = [o[i]["rate"] / t[i]["rate"] for o, t in zip(ours, theirs)]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if rounds > 1 else "-"
        k = a["checkpoints"] or "-"
        print(f"{a['what']:<6} {a['precision']:<5} {a['width']:>5} {a['batch_size']:>5} {k:>3} "
              f"{ra:>10.1f} {rb:>10.1f} {ra / rb:>7.2f} {spread:>11}  {a['unit']}")
PY
