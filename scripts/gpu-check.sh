#!/usr/bin/env bash
# The whole GPU check of issues 10 and 11 in one command, for a machine with a CUDA GPU and
# torch 2.11 preinstalled but no Rust and no network. Build here, then send it with the
# binary and the data (the device tool's `carry`):
#
#   cargo build --release --locked && mkdir -p .gpu && cp ../shared/data/cifar10-jpg.tar.gz .gpu/
#   (on the GPU machine, carrying target/release/vog and .gpu)
#   bash scripts/gpu-check.sh "$OUT"
#
# It writes into OUT (default gpu-check): info.txt, bench.txt (vog beside eager PyTorch at
# widths 16 and 64, fp32/bf16/fp16, train and score with K=10), batch.txt (scoring at
# batch sizes SCORE_BATCHES, "128 256 512 1024"), channels-last.txt (eager PyTorch at
# the widest of WIDTHS in channels_last, beside bench.txt's contiguous rows), gpu-mem.csv (nvidia-smi
# every 200 ms), train.txt (a full-width CIFAR-10 training of EPOCHS epochs in bf16 with
# its test accuracy), score-run.txt (that run scored on both splits in fp32 and bf16),
# as-run.txt and as-run-report.html (vog experiment of the authors' protocol,
# configs/paper-cifar10-noise20-as-run.toml, ASRUN_EPOCHS epochs: capture cost and both
# protocols' AUROCs), r50.txt (a TorchScript ResNet-50 on 224x224 inputs, K=3, scored
# whole and as two shards) and summary.txt. Settings by environment: DEVICE (cuda), EPOCHS
# (30), ASRUN_EPOCHS (6), ASRUN_ARGS (extra `vog experiment` flags), WIDTHS ("16 64"), R50_IMAGES (2000), SECONDS_PER_ROW (4), TRAIN_ARGS (extra
# `vog train` flags), PYTHON (python3), VOG (target/release/vog). Smoke test on a CPU:
#   DEVICE=cpu EPOCHS=3 ASRUN_EPOCHS=2 WIDTHS=2 R50_IMAGES=4 SECONDS_PER_ROW=1 SCORE_BATCHES=8 PYTHON=$VOG_PYTHON \
#     TRAIN_ARGS="--train-subset 256 --test-subset 128 --width 2" ASRUN_ARGS="$TRAIN_ARGS" \
#     bash scripts/gpu-check.sh /tmp/gc
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-gpu-check}")
mkdir -p "$out"
py=${PYTHON:-python3}
vog=$(realpath "${VOG:-target/release/vog}")
device=${DEVICE:-cuda}
epochs=${EPOCHS:-30}
asrun_epochs=${ASRUN_EPOCHS:-6}
r50_images=${R50_IMAGES:-2000}
work=$(mktemp -d)
trap 'kill $sampler 2>/dev/null; rm -rf "$work"' EXIT
LD_LIBRARY_PATH="$($py -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'):${LD_LIBRARY_PATH:-}"
export LD_LIBRARY_PATH
summary="$out/summary.txt"
note() { echo "$*" | tee -a "$summary"; }
timed() { local s=$SECONDS; "$@"; local rc=$?; note "  ($((SECONDS - s)) s, exit $rc)"; return $rc; }

"$vog" info | tee "$out/info.txt"
sampler=""
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 200 >"$out/gpu-mem.csv" &
    sampler=$!
fi

note "== bench: vog beside eager PyTorch on $device"
VOG=$vog VOG_PYTHON=$py DEVICE=$device WIDTHS=${WIDTHS:-16 64} PRECISIONS=fp32,bf16,fp16 K=10 \
    SECONDS_PER_ROW=${SECONDS_PER_ROW:-4} timed bash scripts/bench.sh 2>&1 | tee "$out/bench.txt"

widest=${WIDTHS:-16 64}
widest=${widest##* }
note "== eager PyTorch in channels_last (vog runs contiguous), width $widest: what the layout is worth"
$py scripts/bench_pytorch.py --what train,score --width "$widest" --batch-size 128 --precision fp32,bf16 \
    --device "$device" --checkpoints 10 --seconds "${SECONDS_PER_ROW:-4}" --channels-last \
    2>&1 >/dev/null | tee "$out/channels-last.txt" | tee -a "$summary"

note "== score: batch size (width 64, K=10), for the CUDA default of vog score --run (512)"
for b in ${SCORE_BATCHES:-128 256 512 1024}; do
    "$vog" bench --what score --width 64 --checkpoints 10 --batch-size "$b" \
        --precision fp32,bf16 --device "$device" --seconds "${SECONDS_PER_ROW:-4}" --quiet
done 2>&1 | tee "$out/batch.txt" | tee -a "$summary"

note "== train: CIFAR-10, width 64, $epochs epochs, bf16, batch 128"
mkdir -p "$work/data"
tar -xzf .gpu/cifar10-jpg.tar.gz -C "$work/data"
root=$(dirname "$(find "$work/data" -maxdepth 3 -type d -name train | head -n 1)")
sed -e "s/^epochs = .*/epochs = $epochs/" \
    -e "s/^lr_milestones = .*/lr_milestones = [$((epochs / 2)), $((epochs * 5 / 6))]/" \
    -e 's/^save_epochs = .*/save_epochs = "last:3"/' -e 's/^precision = .*/precision = "bf16"/' \
    configs/cifar10.toml >"$work/train.toml"
# shellcheck disable=SC2086
timed "$vog" train --dataset "$root" --config "$work/train.toml" --device "$device" --quiet \
    ${TRAIN_ARGS:-} --out "$work/run" 2>&1 | tee "$out/train.txt"
$py - "$work/run/run.json" <<'PY' | tee -a "$out/train.txt" "$summary"
import json, sys
m = json.load(open(sys.argv[1]))
last = m["epochs"][-1]
ips = [e.get("images_per_second") for e in m["epochs"] if e.get("images_per_second")]
print(f"epochs {len(m['epochs'])}, test accuracy {last.get('test_accuracy')}, "
      f"train img/s median {sorted(ips)[len(ips) // 2] if ips else None}")
PY

note "== score the run: both splits, its 3 checkpoints, default batch size"
for p in fp32 bf16; do
    "$vog" score --run "$work/run" --split both --device "$device" --precision "$p" --quiet \
        --out "$work/run-$p.csv" >>"$out/score-run.txt" 2>&1
    note "  $p: $(tail -n 1 "$out/score-run.txt")"
done

note "== the paper as its authors ran it: configs/paper-cifar10-noise20-as-run.toml, $asrun_epochs epochs"
# Batch 50, the LR stepped per batch (0.001 from step 250 on), no shuffle, gradients captured
# during training in the first and last epoch; scored from checkpoints and from the captures.
sed -e "s|^dataset = .*|dataset = \"$root\"|" configs/paper-cifar10-noise20-as-run.toml >"$work/as-run.toml"
# shellcheck disable=SC2086
timed "$vog" experiment "$work/as-run.toml" --epochs "$asrun_epochs" --device "$device" --quiet \
    ${ASRUN_ARGS:-} --out "$work/as-run" 2>&1 | tee "$out/as-run.txt"
cp "$work/as-run/report.html" "$out/as-run-report.html" 2>/dev/null
$py - "$work/as-run/run/run.json" "$work/as-run/results.json" <<'PY' | tee -a "$out/as-run.txt" "$summary"
import json, sys
m = json.load(open(sys.argv[1]))
ep = m["epochs"]
cap = [e for e in ep if e["epoch"] in m["config"].get("captured_epochs", [])]
rest = [e for e in ep if e not in cap]
med = lambda xs: sorted(xs)[len(xs) // 2] if xs else None
print(f"as-run: test accuracy {ep[-1].get('test_accuracy')}, epoch seconds with capture "
      f"{med([e['seconds'] for e in cap])}, without {med([e['seconds'] for e in rest])}")
for s in json.load(open(sys.argv[2]))["stages"]:
    for l in s["evaluation"].get("leaderboards", []):
        for e in l["entries"]:
            if e["score"] in ("vog", "vog_logprob"):
                print(f"  {s['split']} {s['stage']} {l['question']} {e['score']}: AUROC {e.get('auroc')} "
                      f"[{e.get('ci_low')}, {e.get('ci_high')}] {e['verdict']}")
PY

note "== TorchScript ResNet-50, 224x224 (resized CIFAR-10 test images), K=3"
$py - "$work/r50" <<'PY'
import os, sys, torch, torch.nn as nn
class Bottleneck(nn.Module):
    def __init__(s, cin, mid, stride):
        super().__init__()
        cout = mid * 4
        s.body = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        s.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                  if stride != 1 or cin != cout else nn.Identity())
    def forward(s, x):
        return torch.relu(s.body(x) + s.skip(x))
def resnet50(classes):
    layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
    for mid, n, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(n):
            layers.append(Bottleneck(cin, mid, stride if i == 0 else 1)); cin = mid * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)
os.makedirs(sys.argv[1], exist_ok=True)
for t in range(3):
    torch.manual_seed(t)
    m = resnet50(10).eval()
    torch.jit.save(torch.jit.trace(m, torch.zeros(1, 3, 224, 224)), f"{sys.argv[1]}/r50-{t}.pt")
PY
{
    echo "path,label"
    find "$root/test" -name '*.jp*g' | sort | head -n "$r50_images" |
        while read -r f; do echo "${f#"$root"/},$(basename "$(dirname "$f")")"; done
} >"$root/r50.csv"
ls "$root/test" >"$work/classes.txt"
r50=(--model "$work/r50" --data "$root/r50.csv" --classes "$work/classes.txt" --split test
    --normalize imagenet --resize 256 --crop 224 --batch-size 128)
for p in fp32 bf16; do
    "$vog" score "${r50[@]}" --device "$device" --precision "$p" --quiet \
        --out "$work/r50-$p.csv" >>"$out/r50.txt" 2>&1
    note "  $p: $(tail -n 1 "$out/r50.txt")"
done
start=$SECONDS
DEVICES=$device,$device VOG=$vog bash scripts/score-multi-gpu.sh "$work/r50-2.csv" "${r50[@]}" \
    >>"$out/r50.txt" 2>&1
note "  two shards at once on one device, then merge, in $((SECONDS - start)) s: $(tail -n 1 "$out/r50.txt")"
$py - "$work/r50-fp32.csv" "$work/r50-2.csv" "$work/r50-bf16.csv" <<'PY' | tee -a "$summary"
import csv, sys
def raw(p):
    with open(p) as f:
        return {r["id"]: float(r["vog_raw"]) for r in csv.DictReader(f)}
def ranks(v):
    order = sorted(range(len(v)), key=v.__getitem__)
    r = [0] * len(v)
    for i, j in enumerate(order):
        r[j] = i
    return r
def spearman(a, b):
    ra, rb, n = ranks(a), ranks(b), len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))
a, b, c = (raw(p) for p in sys.argv[1:])
ids = sorted(a)
worst = max(abs(a[i] - b[i]) / abs(a[i]) for i in ids)
print(f"sharded vs whole fp32: max relative difference {worst:.1e} over {len(ids)} images")
print(f"bf16 vs fp32 Spearman {spearman([a[i] for i in ids], [c[i] for i in ids]):.4f}")
PY
if [[ -n $sampler ]]; then
    kill "$sampler"
    note "peak GPU memory used: $(cut -d, -f2 "$out/gpu-mem.csv" | grep -o '[0-9]*' | sort -n | tail -n 1) MiB"
fi
