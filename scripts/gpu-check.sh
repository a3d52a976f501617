#!/usr/bin/env bash
# The GPU check, in stages that each fit one command of a rationed GPU window (under 7
# minutes on one H100 by the estimates below, each under its own `timeout`), in order of
# value. For a machine with a CUDA GPU and torch 2.11 preinstalled but no Rust and no
# network. Build here, then carry the binary and the data (the device tool's `carry`):
#
#   cargo build --release --locked && mkdir -p .gpu && cp ../shared/data/cifar10-jpg.tar.gz .gpu/
#   (on the GPU machine, carrying target/release/vog and .gpu; one command, timeout 600 s)
#   bash scripts/gpu-check.sh 1,2,3 "$OUT"          # stages 1-3 first, then give the machine back
#   bash scripts/gpu-check.sh 4,5 "$OUT"
#
# Stages (estimates for one H100, from FLOP counts and the CPU timings of docs/results.md):
#   1 fail fast (seconds): the binary runs, every shared library resolves, vog info sees
#     CUDA; otherwise one line saying which, and no later stage runs.
#   2 correctness (about 2 min): a width-16 run on 5,000 CIFAR-10 images trained 4 epochs
#     with --deterministic, killed and resumed, beside an uninterrupted one (bit-identical
#     or not), and the same pair without --deterministic; its VoG on the GPU beside the
#     CPU's (relative error, TF32 off and on); fp32 beside bf16 scores (Spearman). Most of
#     it is process and CUDA start-up and unpacking the 60,000 JPEGs: the networks are small.
#   3 the paper's recipe at full width (about 3 min): 3 epochs of all 50,000 images in
#     fp32 and in bf16 (img/s, test accuracy; 3.3 GFLOP an image and step, about 500 TFLOP
#     a precision, 20-40 s at the 15-25 TFLOP/s cuDNN reaches in fp32 without TF32);
#     scoring throughput at K = 6 and 10 with the batch `vog score --run` takes on CUDA
#     (512), and K = 10 at batches 128 and 1024 (8 bench rows of 4 s and a warm-up each).
#   4 the authors' protocol (about 4 min): configs/paper-cifar10-noise20-as-run.toml for 3
#     epochs (batch 50, gradients captured in the first and last): capture cost.
#   5 vog beside eager PyTorch on the same GPU (about 2 min): scripts/bench.sh, width 64.
# Stages 1-3 together: about 5-6 min, inside BUDGET_SECONDS' 570.
#
# Every stage appends to OUT/summary.txt, one line per figure:
#   STAGE NAME: VALUE (expect EXPECTATION) ok|FAILED|seen|skipped
# ("seen" for a measurement without an expectation), ending with the stage's own line
# `STAGE stage: exit RC in S s (expect exit 0 within LIMIT s) ok|FAILED`, or `STAGE stage:
# not started: ... skipped` where the budget had too little left for it (the script then
# names the stages to run next and exits 1). Everything else (logs, run.json files, the
# as-run report) goes into OUT/logs.tar.gz, rewritten after every stage: two files in all.
#
# Settings by environment: DEVICE (cuda), VOG (target/release/vog), PYTHON (python3), DATA
# (.gpu/cifar10-jpg.tar.gz; without it a synthetic image folder), STAGE_SECONDS (420, one
# stage's timeout), BUDGET_SECONDS (570, the whole command's), MIN_STAGE_SECONDS (60).
# DRY_RUN=1 shrinks every size to seconds on a CPU: the dry run tests/gpu_check.rs runs as
#   DRY_RUN=1 DEVICE=cpu bash scripts/gpu-check.sh 1,2,3,4,5 /tmp/gc
set -uo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

# --- settings --------------------------------------------------------------------------
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
vog=$(realpath -m "${VOG:-target/release/vog}")
limit=${STAGE_SECONDS:-420}
# The whole command's seconds: one device command may run 600 s, and a command killed from
# outside loses whatever it had not written. A stage starts only with at least MIN_STAGE
# seconds of it left (plus the seconds kept back for the timeout's kill and the archive),
# and its timeout never reaches past it; a stage that cannot start is recorded as skipped.
budget=${BUDGET_SECONDS:-570} min_stage=${MIN_STAGE_SECONDS:-60} reserve=20
if [[ ${DRY_RUN:-0} == 1 ]]; then
    small=(--train-subset 200 --test-subset 100 --width 2)
    small_epochs=3 full=(--train-subset 100 --test-subset 50 --width 2) full_epochs=1
    bench_width=2 bench_seconds=1 bench_precisions=fp32 asrun_epochs=2 synth_train=400 synth_test=150
    score_rows="6:32 10:32 10:16 10:64"
    # Networks of width 2 rank too coarsely for fp32's and bf16's orders to agree as a full
    # network's do; the dry run checks that the figure is made.
    spearman_min=0.9
else
    small=(--train-subset 5000 --test-subset 1000 --width 16)
    small_epochs=4 full=(--width 64) full_epochs=3
    bench_width=64 bench_seconds=4 bench_precisions=fp32,bf16 asrun_epochs=3 synth_train=5000 synth_test=1000
    # K:batch of each scoring row of stage 3
    score_rows="6:512 10:512 10:128 10:1024"
    spearman_min=0.99
fi

# --- the summary -----------------------------------------------------------------------
# figure STAGE NAME VALUE EXPECT VERDICT
figure() { printf '%s %s: %s (expect %s) %s\n' "$1" "$2" "$3" "$4" "$5" >>"$summary"; }
# check STAGE NAME VALUE EXPECT CONDITION...: ok where the condition holds, else FAILED
# (and a non-zero status).
check() {
    local s=$1 n=$2 v=$3 e=$4
    shift 4
    if "$@"; then figure "$s" "$n" "$v" "$e" ok; else figure "$s" "$n" "$v" "$e" FAILED; return 1; fi
}
log() { cat >>"$work/logs/$1"; }

libtorch_env() {
    local lib
    lib=$("$py" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null) || return 0
    export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
}

# The data every stage trains on: CIFAR-10 JPEG folders from DATA, or a synthetic folder.
data_root() {
    local tarball=${DATA:-.gpu/cifar10-jpg.tar.gz}
    if [[ -f $work/data/root ]]; then cat "$work/data/root"; return; fi
    mkdir -p "$work/data"
    if [[ -f $tarball ]]; then
        tar -xzf "$tarball" -C "$work/data"
        dirname "$(find "$work/data" -maxdepth 3 -type d -name train | head -n 1)" >"$work/data/root"
    else
        "$vog" data synth --format folder --train "$synth_train" --test "$synth_test" \
            --out "$work/data/synth" 2>&1 | log data.txt
        echo "$work/data/synth" >"$work/data/root"
    fi
    cat "$work/data/root"
}

json_field() { "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }

# --- stage 1: fail fast ----------------------------------------------------------------
stage1() {
    if ! "$vog" --version >/dev/null 2>"$work/logs/version.txt"; then
        figure 1 binary-runs "no: $(head -c 200 "$work/logs/version.txt" | tr '\n' ' ')" yes FAILED
        return 1
    fi
    figure 1 binary-runs yes yes ok
    local missing
    missing=$(ldd "$vog" 2>&1 | grep 'not found' | awk '{print $1}' | tr '\n' ' ')
    check 1 libraries-resolve "${missing:-all}" all test -z "$missing" || return 1
    "$vog" info --json >"$work/logs/info.json" 2>&1 || { figure 1 vog-info "failed" "a JSON report" FAILED; return 1; }
    local count
    count=$(json_field "$work/logs/info.json" '["cuda_devices"]')
    if [[ $device == cpu ]]; then
        figure 1 cuda-devices "$count" "any (a CPU dry run)" seen
    else
        check 1 cuda-devices "$count" "at least 1" test "$count" -ge 1 || return 1
    fi
}

# --- stage 2: correctness --------------------------------------------------------------
train_small() { # NAME EXTRA...: a small run on the stage's data
    local name=$1
    shift
    "$vog" train --dataset "$(data_root)" "${small[@]}" --epochs "$small_epochs" --save-epochs all \
        --batch-size 128 --device "$device" --quiet "$@" --out "$work/$name" 2>&1 | log train.txt
}

# Trains NAME with EXTRA, killed (SIGKILL) once its first epoch is committed (run.json
# records a resume state: a file in resume/ may still be the temporary one, and a run
# killed before its first commit cannot be resumed), then resumed.
train_killed() {
    local name=$1
    shift
    "$vog" train --dataset "$(data_root)" "${small[@]}" --epochs "$small_epochs" --save-epochs all \
        --batch-size 128 --device "$device" --quiet "$@" --out "$work/$name" >>"$work/logs/train.txt" 2>&1 &
    local pid=$!
    until grep -qs '"resume": {' "$work/$name/run.json" || ! kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    kill -9 "$pid" 2>/dev/null && echo killed >"$work/$name.killed"
    wait "$pid" 2>/dev/null
    "$vog" train --resume "$work/$name" --quiet 2>&1 | log train.txt
}

same_checkpoints() { # RUN_A RUN_B: yes where every checkpoint is byte-identical
    local a=$1 b=$2 f
    for f in "$a"/checkpoints/*.safetensors; do
        cmp -s "$f" "$b/checkpoints/$(basename "$f")" || { echo no; return; }
    done
    echo yes
}

compare_scores() { # A.csv B.csv: "max_rel median_rel spearman" of vog_raw
    "$py" - "$1" "$2" <<'PY'
import csv, sys
def raw(p):
    with open(p) as f:
        return {r["id"]: float(r["vog_raw"]) for r in csv.DictReader(f)}
a, b = raw(sys.argv[1]), raw(sys.argv[2])
ids = sorted(a)
rel = sorted(abs(a[i] - b[i]) / max(abs(a[i]), 1e-30) for i in ids)
def ranks(v):
    r = [0] * len(v)
    for k, j in enumerate(sorted(range(len(v)), key=v.__getitem__)):
        r[j] = k
    return r
ra, rb, n = ranks([a[i] for i in ids]), ranks([b[i] for i in ids]), len(ids)
rho = 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))
print(f"{rel[-1]:.1e} {rel[len(rel) // 2]:.1e} {rho:.5f}")
PY
}

score_small() { # RUN DEVICE PRECISION OUT [ENV...]
    local run=$1 dev=$2 p=$3 out=$4
    shift 4
    env "$@" "$vog" score --run "$run" --split test --target logit --device "$dev" --precision "$p" \
        --quiet --out "$out" 2>&1 | log score.txt
}

stage2() {
    train_small det-a --deterministic
    train_killed det-b --deterministic
    local same
    same=$(same_checkpoints "$work/det-a" "$work/det-b")
    [[ -f $work/det-b.killed ]] || same="$same (finished before the kill)"
    check 2 deterministic-kill-resume-identical "$same" yes test "${same%% *}" = yes
    train_small fast-a
    train_killed fast-b
    same=$(same_checkpoints "$work/fast-a" "$work/fast-b")
    figure 2 benchmark-kill-resume-identical "$same" "either: cuDNN benchmark mode" seen
    score_small "$work/det-a" "$device" fp32 "$work/gpu.csv"
    score_small "$work/det-a" cpu fp32 "$work/cpu.csv"
    score_small "$work/det-a" "$device" fp32 "$work/tf32.csv" VOG_TF32=1
    score_small "$work/det-a" "$device" bf16 "$work/bf16.csv"
    local max med rho
    read -r max med rho < <(compare_scores "$work/cpu.csv" "$work/gpu.csv")
    check 2 vog-device-vs-cpu-max-rel "$max (median $med)" "below 1e-3 in fp32" \
        "$py" -c "import sys; sys.exit(not $max < 1e-3)"
    read -r max med rho < <(compare_scores "$work/cpu.csv" "$work/tf32.csv")
    figure 2 vog-device-tf32-vs-cpu-max-rel "$max (median $med)" "about 1e-3 on CUDA: TF32 keeps 10 mantissa bits" seen
    read -r max med rho < <(compare_scores "$work/gpu.csv" "$work/bf16.csv")
    check 2 vog-bf16-vs-fp32-spearman "$rho" "at least $spearman_min" \
        "$py" -c "import sys; sys.exit(not $rho >= $spearman_min)"
}

# --- stage 3: the paper's recipe at full width -----------------------------------------
stage3() {
    local p acc ips
    for p in fp32 bf16; do
        "$vog" train --dataset "$(data_root)" "${full[@]}" --epochs "$full_epochs" --save-epochs last:2 \
            --precision "$p" --device "$device" --quiet --out "$work/full-$p" 2>&1 | log train-full.txt
        cp "$work/full-$p/run.json" "$work/logs/run-full-$p.json" 2>/dev/null
        acc=$(json_field "$work/full-$p/run.json" '["epochs"][-1]["test_accuracy"]' 2>/dev/null)
        ips=$(json_field "$work/full-$p/run.json" '["epochs"][-1]["images_per_second"]' 2>/dev/null)
        ips=${ips%.*}
        check 3 "train-$p-img-per-s" "${ips:-none}" "a rate (last epoch)" test -n "$ips"
        figure 3 "train-$p-test-accuracy" "${acc:-none} after $full_epochs epochs" "above chance" seen
    done
    # K = 6 and 10 at the batch `vog score --run` takes on CUDA (512), and K = 10 at 128 and
    # 1024 beside it: that default was chosen from CPU memory figures, not GPU timings.
    local kb k b rate
    for kb in $score_rows; do
        k=${kb%:*} b=${kb#*:}
        "$vog" bench --what score --width "$bench_width" --checkpoints "$k" --batch-size "$b" \
            --precision "$bench_precisions" --device "$device" --seconds "$bench_seconds" \
            --format json --quiet >"$work/logs/bench-k$k-b$b.json" 2>&1
        rate=$("$py" -c "import json,sys; print(' '.join(f\"{r['precision']} {r['rate']:.0f}\" for r in json.load(open(sys.argv[1]))))" "$work/logs/bench-k$k-b$b.json" 2>/dev/null)
        check 3 "score-k$k-b$b-image-x-checkpoint-per-s" "${rate:-none}" "a rate per precision" test -n "$rate"
    done
}

# --- stage 4: the authors' protocol ----------------------------------------------------
stage4() {
    sed -e "s|^dataset = .*|dataset = \"$(data_root)\"|" configs/paper-cifar10-noise20-as-run.toml >"$work/as-run.toml"
    local extra=()
    [[ ${DRY_RUN:-0} == 1 ]] && extra=("${full[@]}")
    # shellcheck disable=SC2086
    "$vog" experiment "$work/as-run.toml" --epochs "$asrun_epochs" --device "$device" --quiet \
        "${extra[@]}" --out "$work/as-run" 2>&1 | log as-run.txt
    cp "$work/as-run/report.html" "$work/logs/as-run-report.html" 2>/dev/null
    cp "$work/as-run/run/run.json" "$work/logs/run-as-run.json" 2>/dev/null
    local cost
    cost=$("$py" - "$work/as-run/run/run.json" <<'PY' 2>/dev/null
import json, sys
m = json.load(open(sys.argv[1]))
cap = m["config"].get("captured_epochs", [])
with_c = [e["seconds"] for e in m["epochs"] if e["epoch"] in cap]
without = [e["seconds"] for e in m["epochs"] if e["epoch"] not in cap]
w = sorted(with_c)[len(with_c) // 2] if with_c else None
o = sorted(without)[len(without) // 2] if without else None
print(f"{w:.1f} s with capture, {o:.1f} s without" if w and o else f"{w:.1f} s with capture")
PY
)
    check 4 as-run-epoch-seconds "${cost:-none}" "capture about 2x a plain epoch" test -n "$cost"
}

# --- stage 5: vog beside eager PyTorch -------------------------------------------------
stage5() {
    VOG=$vog VOG_PYTHON=$py DEVICE=$device WIDTHS=$bench_width PRECISIONS=$bench_precisions K=10 \
        SECONDS_PER_ROW=$bench_seconds bash scripts/bench.sh >"$work/logs/bench.txt" 2>&1
    local rc=$? rows
    rows=$(grep -cE '^\s*(train|score)' "$work/logs/bench.txt")
    check 5 bench-rows "$rows (exit $rc)" "a row per task and precision, exit 0" test "$rc" = 0 -a "$rows" -gt 0
    grep -E '^\s*(train|score)' "$work/logs/bench.txt" | head -n 8 | while read -r row; do
        figure 5 bench-row "$(echo "$row" | tr -s ' ')" "vog / PyTorch near 1 or above" seen
    done
}

# --- one stage, in a process of its own under `timeout` -------------------------------
if [[ ${1:-} == --inner ]]; then
    stage=$2 work=$3 summary=$4
    libtorch_env
    "stage$stage"
    rc=$?
    # A stage whose figures failed fails, whatever its last command returned.
    grep -q "^$stage .* FAILED\$" "$summary" && exit 1
    exit $rc
fi

stages=${1:?usage: gpu-check.sh STAGES [OUT], e.g. 1,2,3}
for s in ${stages//,/ }; do
    [[ $s =~ ^[1-5]$ ]] || { echo "gpu-check: unknown stage '$s' (1 to 5)" >&2; exit 2; }
done
out=$(realpath -m "${2:-gpu-check}")
mkdir -p "$out"
summary=$out/summary.txt
work=$(mktemp -d)
mkdir -p "$work/logs"
trap 'rm -rf "$work"' EXIT
# The archive is rewritten after every stage, so that a command killed from outside still
# returns the logs of the stages that ended.
archive() { tar -czf "$out/logs.tar.gz.tmp" -C "$work" logs && mv "$out/logs.tar.gz.tmp" "$out/logs.tar.gz"; }
archive
rc_all=0 not_started=()
for s in ${stages//,/ }; do
    left=$((budget - SECONDS))
    if ((left - reserve < min_stage)); then
        figure "$s" stage "not started: $left s of the $budget s budget left" \
            "at least $((min_stage + reserve)) s left to start" skipped
        not_started+=("$s")
        rc_all=1
        continue
    fi
    this=$((left - reserve < limit ? left - reserve : limit))
    start=$SECONDS
    timeout --kill-after=10 "$this" bash "$here/scripts/gpu-check.sh" --inner "$s" "$work" "$summary"
    rc=$?
    took=$((SECONDS - start))
    verdict=ok
    [[ $rc == 0 ]] || verdict=FAILED
    [[ $rc == 124 || $rc == 137 ]] && rc="$rc (timed out)"
    figure "$s" stage "exit $rc in $took s" "exit 0 within $this s" "$verdict"
    archive
    if [[ $verdict == FAILED ]]; then
        rc_all=1
        if [[ $s == 1 ]]; then
            echo "gpu-check: stage 1 failed: $(grep '^1 .*FAILED$' "$summary" | head -n 1)" >&2
            break
        fi
    fi
done
cat "$summary"
if ((${#not_started[@]})); then
    list=$(IFS=,; echo "${not_started[*]}")
    echo "gpu-check: stages $list did not fit the $budget s budget; run them next: bash scripts/gpu-check.sh $list OUT" >&2
fi
exit $rc_all
