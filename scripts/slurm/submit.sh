#!/usr/bin/env bash
# Queues a sharded `vog score` on Slurm: an array of N scoring tasks, then a merge that runs
# only if all of them succeed. Prints the two job ids.
#
#   bash scripts/slurm/submit.sh N OUT.csv --model ts/ --data images/ --normalize imagenet ...
#
# Everything after OUT.csv goes to `vog score` (not --out or --shard). sbatch options come
# from the environment (SBATCH_PARTITION, SBATCH_GRES=gpu:1, SBATCH_TIMELIMIT, ...); VOG
# names the binary every node runs (default: vog on PATH). Tasks score on DEVICE (default
# cuda), so a GPU must be asked for (SBATCH_GRES or SBATCH_GPUS...); DEVICE=cpu scores on
# CPUs on purpose. OUT.csv must be on a file system every node shares.
set -euo pipefail
if [[ $# -lt 3 ]]; then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
n=$1
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: N must be a positive whole number of shards, not '$n'" >&2
    exit 2
fi
device=${DEVICE:-cuda}
if [[ $device != cpu && -z ${SBATCH_GRES:-}${SBATCH_GPUS:-}${SBATCH_GPUS_PER_TASK:-}${SBATCH_GPUS_PER_NODE:-} ]]; then
    echo "error: the tasks score on $device but ask for no GPU: set SBATCH_GRES=gpu:1 (or SBATCH_GPUS_PER_TASK=1), or DEVICE=cpu to score on CPUs" >&2
    exit 2
fi
export DEVICE=$device
if ! command -v sbatch > /dev/null; then
    echo "error: sbatch is not on PATH: run this on a Slurm login node (or load the Slurm module)" >&2
    exit 1
fi
out=$(realpath -m "$2")
shift 2
here=$(cd "$(dirname "$0")" && pwd)
logs=$(dirname "$out")
array=$(sbatch --parsable --array="0-$((n - 1))" --output="$logs/vog-score-%A_%a.log" \
    --export=ALL "$here/score-array.sbatch" "$out" "$@")
merge=$(sbatch --parsable --dependency="afterok:$array" --output="$logs/vog-merge-%j.log" \
    --export=ALL "$here/merge.sbatch" "$out" "$n")
echo "scoring array $array ($n tasks), merge $merge -> $out"
