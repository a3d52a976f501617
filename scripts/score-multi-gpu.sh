#!/usr/bin/env bash
# Scores on several devices of one machine at once: one shard per device, then one merge.
#
#   DEVICES=cuda:0,cuda:1 bash scripts/score-multi-gpu.sh OUT.csv --model ts/ --data images/ \
#       --normalize imagenet --resize 256 --crop 224
#
# Everything after OUT.csv goes to every `vog score` (not --device, --out or --shard). The
# shards are OUT.shard-I.csv (kept; delete them once merged) and their logs OUT.shard-I.log.
# DEVICES defaults to every GPU this process may use: those CUDA_VISIBLE_DEVICES names
# where it is set (libtorch numbers them cuda:0, cuda:1, ... in that order), else every GPU
# nvidia-smi lists. VOG is the binary (default: vog on PATH, else target/release/vog). Exits
# non-zero, naming the log, if any shard fails; then nothing is merged.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
out=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)
vog=${VOG:-$(command -v vog || echo "$here/target/release/vog")}
if [[ -z ${DEVICES:-} ]]; then
    if [[ -n ${CUDA_VISIBLE_DEVICES+set} ]]; then
        # nvidia-smi ignores CUDA_VISIBLE_DEVICES; libtorch sees only the devices it names.
        n=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c '[^[:space:]]' || true)
        found="CUDA_VISIBLE_DEVICES='$CUDA_VISIBLE_DEVICES' names"
    else
        n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
        found="nvidia-smi lists"
    fi
    if [[ $n -eq 0 ]]; then
        echo "error: no GPU to score on ($found none); set DEVICES (e.g. DEVICES=cpu,cpu)" >&2
        exit 2
    fi
    DEVICES=$(seq -s, -f 'cuda:%g' 0 $((n - 1)))
fi
IFS=, read -r -a devices <<<"$DEVICES"
count=${#devices[@]}
pids=()
for i in "${!devices[@]}"; do
    "$vog" score "$@" --device "${devices[$i]}" --shard "$i/$count" --quiet \
        --out "$out.shard-$i.csv" >"$out.shard-$i.log" 2>&1 &
    pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "error: shard $i/$count on ${devices[$i]} failed: $(tail -n 1 "$out.shard-$i.log")" >&2
        failed=1
    fi
done
[[ $failed -eq 0 ]] || exit 1
shards=()
for i in "${!devices[@]}"; do shards+=("$out.shard-$i.csv"); done
"$vog" merge "${shards[@]}" --out "$out"
