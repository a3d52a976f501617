#!/usr/bin/env bash
# Sharded scoring end to end, as users run it (scripts/test.sh runs this after the tests):
# TorchScript checkpoints on a synthetic image folder, scored whole, then
#   1. by scripts/score-multi-gpu.sh on two devices (DEVICES=cpu,cpu: no GPU needed), and
#   2. by scripts/slurm/submit.sh as a Slurm job array plus a dependent merge job, on a
#      one-node cluster this script starts here (Debian's slurm-wlm and munge, installed
#      if missing; needs root). Where the daemons cannot be installed or started, it says
#      why and runs the array's tasks itself with SLURM_ARRAY_TASK_ID set, then the merge.
# Each merged file must equal the unsharded one byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
vog=${VOG:-$PWD/target/debug/vog}
[[ -x $vog ]] || cargo build --locked --quiet
work=$(mktemp -d)
daemons=()
cleanup() {
    if [[ ${#daemons[@]} -gt 0 ]]; then
        scontrol shutdown >/dev/null 2>&1 || true
        # slurmctld saves its state as it stops: removing its folder under it fails
        # ("Directory not empty"), so wait for the daemons first (10 s at most).
        for _ in $(seq 20); do
            kill -0 "${daemons[@]}" 2>/dev/null || break
            sleep 0.5
        done
        kill "${daemons[@]}" 2>/dev/null || true
    fi
    # A file a stopping daemon still writes must not fail a test that passed.
    rm -rf "$work" 2>/dev/null || { sleep 1 && rm -rf "$work"; } || echo "could not remove '$work'" >&2
}
trap cleanup EXIT

"$vog" data synth --format folder --train 10 --test 150 --seed 4 --out "$work/images" >/dev/null
mkdir -p "$work/ckpt"
"$VOG_PYTHON" scripts/reference_torchscript.py make --out "$work/ckpt" --classes 10
PYTHONPATH=scripts "$VOG_PYTHON" scripts/export_torchscript.py --module reference_torchscript:TinyCNN \
    --kwargs '{"classes": 10}' --input-shape 3,32,32 --out "$work/models" "$work"/ckpt/*.pth >/dev/null
args=(--model "$work/models" --data "$work/images" --split test --normalize cifar10 --batch-size 16)
"$vog" score "${args[@]}" --device cpu --quiet --out "$work/whole.csv" >/dev/null

same() {
    if cmp -s "$work/whole.csv" "$1"; then
        echo "ok: $2 merged equals the unsharded scores ($(($(wc -l <"$1") - 1)) examples)"
    else
        echo "FAILED: $2 merged differs from the unsharded scores" >&2
        exit 1
    fi
}

DEVICES=cpu,cpu VOG=$vog bash scripts/score-multi-gpu.sh "$work/multi.csv" "${args[@]}" >/dev/null
same "$work/multi.csv" "score-multi-gpu.sh (2 devices)"

# Which devices the scripts choose, with a fake nvidia-smi (4 GPUs) and a fake vog that
# records each shard's --device: CUDA_VISIBLE_DEVICES decides over nvidia-smi.
mkdir -p "$work/fake"
printf '#!/bin/sh\nfor i in 0 1 2 3; do echo "GPU $i: Fake GPU (UUID: GPU-$i)"; done\n' >"$work/fake/nvidia-smi"
cat >"$work/fake/vog" <<'FAKE'
#!/usr/bin/env bash
[[ $1 == score ]] || exit 0
while [[ $# -gt 0 ]]; do [[ $1 == --device ]] && echo "$2" >>"$FAKE_LOG"; shift; done
FAKE
chmod +x "$work/fake/nvidia-smi" "$work/fake/vog"
devices_chosen() { # ENV...: the sorted devices score-multi-gpu.sh gave its shards
    : >"$work/fake.log"
    env "$@" PATH="$work/fake:$PATH" VOG="$work/fake/vog" FAKE_LOG="$work/fake.log" \
        bash scripts/score-multi-gpu.sh "$work/fake.csv" --model m >/dev/null 2>"$work/fake.err"
    local rc=$?
    echo "$(sort "$work/fake.log" | tr '\n' ' ')exit $rc"
}
expect_devices() { # WANTED ENV...
    local wanted=$1 got
    shift
    got=$(devices_chosen "$@")
    if [[ $got == "$wanted" ]]; then
        echo "ok: score-multi-gpu.sh with ${*:-no settings}: $got"
    else
        echo "FAILED: score-multi-gpu.sh with ${*:-no settings}: $got, expected $wanted ($(cat "$work/fake.err"))" >&2
        exit 1
    fi
}
set +e
expect_devices "cuda:0 cuda:1 cuda:2 cuda:3 exit 0" -u CUDA_VISIBLE_DEVICES
expect_devices "cuda:0 cuda:1 exit 0" CUDA_VISIBLE_DEVICES=2,3
expect_devices "exit 2" CUDA_VISIBLE_DEVICES=
PATH="$work/fake:$PATH" SBATCH_GRES= DEVICE= bash scripts/slurm/submit.sh 2 "$work/x.csv" --model m 2>"$work/fake.err"
[[ $? == 2 ]] && grep -q "ask for no GPU" "$work/fake.err" ||
    { echo "FAILED: submit.sh queued GPU tasks that ask for no GPU: $(cat "$work/fake.err")" >&2; exit 1; }
echo "ok: submit.sh refuses GPU tasks without a GPU request: $(cat "$work/fake.err")"
SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=2 CUDA_VISIBLE_DEVICES= VOG="$work/fake/vog" \
    bash scripts/slurm/score-array.sbatch "$work/x.csv" --model m 2>"$work/fake.err"
[[ $? == 2 ]] && grep -q "has no GPU" "$work/fake.err" ||
    { echo "FAILED: an array task without a GPU did not stop: $(cat "$work/fake.err")" >&2; exit 1; }
echo "ok: an array task without a GPU stops: $(cat "$work/fake.err")"
set -e

# Starts a one-node Slurm cluster, or sets `why` to the reason it cannot.
why=""
start_cluster() {
    [[ $(id -u) -eq 0 ]] || { why="not root"; return; }
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq slurm-wlm munge >"$work/apt.log" 2>&1 ||
            { apt-get update -qq >>"$work/apt.log" 2>&1 && apt-get install -y -qq slurm-wlm munge >>"$work/apt.log" 2>&1; } ||
            { why="apt-get install slurm-wlm munge failed: $(tail -n 1 "$work/apt.log")"; return; }
    fi
    [[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null &&
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key; }
    mkdir -p /run/munge && chown munge:munge /run/munge
    if ! pgrep -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged 2>"$work/munged.log" || { why="munged: $(tail -n 1 "$work/munged.log")"; return; }
        daemons+=("$(pgrep -x munged)")
    fi
    local s=$work/slurm host
    host=$(hostname)
    mkdir -p "$s/state" "$s/spool"
    cat >"$s/slurm.conf" <<CONF
ClusterName=vogtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool
SlurmctldPidFile=$s/slurmctld.pid
SlurmdPidFile=$s/slurmd.pid
SlurmctldLogFile=$s/slurmctld.log
SlurmdLogFile=$s/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF=$s/slurm.conf
    slurmctld -f "$SLURM_CONF" 2>>"$s/start.log" || { why="slurmctld: $(tail -n 1 "$s/start.log")"; return; }
    daemons+=("$(cat "$s/slurmctld.pid")")
    slurmd -f "$SLURM_CONF" 2>>"$s/start.log" || { why="slurmd: $(tail -n 1 "$s/start.log")"; return; }
    for _ in $(seq 30); do
        if [[ $(sinfo -h -o %T 2>/dev/null) == idle ]]; then
            daemons+=("$(cat "$s/slurmd.pid")")
            return
        fi
        sleep 1
    done
    why="the node never became idle: $(tail -n 1 "$s/slurmd.log")"
}

start_cluster
if [[ -z $why ]]; then
    jobs=$(DEVICE=cpu VOG=$vog bash scripts/slurm/submit.sh 3 "$work/slurm.csv" "${args[@]}")
    echo "$jobs"
    for _ in $(seq 300); do
        [[ -z $(squeue -h 2>/dev/null) ]] && break
        sleep 1
    done
    same "$work/slurm.csv" "a Slurm job array of 3 tasks on a one-node cluster"
else
    echo "no Slurm cluster here ($why): running the array's tasks with SLURM_ARRAY_TASK_ID set"
    for i in 0 1 2; do
        SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=3 VOG=$vog DEVICE=cpu \
            bash scripts/slurm/score-array.sbatch "$work/slurm.csv" "${args[@]}"
    done
    VOG=$vog bash scripts/slurm/merge.sbatch "$work/slurm.csv" 3 >/dev/null
    same "$work/slurm.csv" "the Slurm array's tasks run by hand"
fi
