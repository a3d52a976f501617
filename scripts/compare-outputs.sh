#!/usr/bin/env bash
# Nothing a user sees changes: runs the same commands with two builds of vog and compares
# every file they write, byte for byte.
#
#   bash scripts/compare-outputs.sh capture VOG DIR   # run the commands with binary VOG, keep the files in DIR
#   bash scripts/compare-outputs.sh compare DIR_A DIR_B
#
# The commands: `vog demo` (whole), `vog demo --prune` reduced (400/150 images, 12 epochs),
# and a run of the authors' protocol (per-step learning rate, no shuffling, gradients
# captured in the first and last epoch) scored from its checkpoints and from its captured
# gradients, evaluated, ranked with grids, reported and verified; plus every command's
# --help. Both builds run in one working folder ($VOG_COMPARE_WORK, default
# /tmp/vog-compare-work) so that paths inside files agree.
#
# compare prints one line per file that is not byte-identical, then the counts: identical,
# identical once the fields that measure time or name a process are masked (JSON keys
# ending in "seconds", "images_per_second", "started_unix", and "run_id", a digest of the
# start time; in printed text, durations and rates; the lock file's pid), different, missing
# on one side. It exits 1 when any file differs or is missing.
set -euo pipefail

capture() {
  local vog out work
  out=$2
  work=${VOG_COMPARE_WORK:-/tmp/vog-compare-work}
  rm -rf "$work" "$out"
  mkdir -p "$work/help" "$work/bin" "$out"
  # Called `vog` whatever the build's file is named: usage lines print the program's name.
  ln -s "$(realpath "$1")" "$work/bin/vog"
  vog=$work/bin/vog
  cd "$work"
  for cmd in "" info download data train score rank eval report review demo experiment verify bench merge crossval prune; do
    # shellcheck disable=SC2086
    "$vog" $cmd --help >"help/${cmd:-vog}.txt" 2>&1 || true
  done
  "$vog" demo --out demo --quiet >demo.txt 2>&1
  "$vog" demo --prune --train 400 --test 150 --epochs 12 --out prune --quiet >prune.txt 2>&1
  "$vog" train --dataset synth --train-subset 240 --test-subset 80 --width 4 --epochs 4 \
    --batch-size 50 --lr-step batch --no-shuffle --device cpu \
    --capture-epochs first:1,last:1 --capture-targets logit,logprob --save-epochs all \
    --label-noise 0.2 --quiet --out asrun >asrun.txt 2>&1
  {
    "$vog" score --run asrun --split both --target logit,logprob --quiet
    "$vog" score --run asrun --captured --target logit,logprob --quiet
    "$vog" eval asrun/scores-train-captured.csv --out asrun-eval-captured
    "$vog" eval asrun/scores-both-all.csv --out asrun-eval
    "$vog" rank asrun/scores-both-all.csv --per-class --top 4 --grid asrun-grid.png
    "$vog" rank asrun/scores-train-captured.csv --top 20 --format csv
    "$vog" report --run asrun --out asrun-report.html
    "$vog" verify asrun
  } >>asrun.txt 2>&1
  rm -r "$work/bin"
  cp -a "$work/." "$out/"
  echo "captured $(find "$out" -type f | wc -l) files in $out"
}

# The file with the fields that measure time or name a process masked.
masked() {
  local file=$1
  case "$file" in
    *.json)
      python3 - "$file" <<'EOF'
import json, sys
def mask(v):
    if isinstance(v, dict):
        return {k: ("<masked>" if k.endswith(("seconds", "images_per_second", "started_unix", "run_id")) else mask(x)) for k, x in v.items()}
    if isinstance(v, list):
        return [mask(x) for x in v]
    return v
try:
    print(json.dumps(mask(json.load(open(sys.argv[1]))), sort_keys=True))
except ValueError:
    print(open(sys.argv[1], errors="replace").read())
EOF
      ;;
    *.vog.lock) echo "<lock>" ;;
    *.txt) sed -E 's/[0-9]+(\.[0-9]+)? (s|ms|min)\b/<time>/g; s/[0-9]+(\.[0-9]+)? (img|image x checkpoint|images?)\/s/<rate>/g' "$file" ;;
    *) cat "$file" ;;
  esac
}

compare() {
  local a=$1 b=$2 same=0 masked_same=0 differ=0 missing=0 rel
  while IFS= read -r rel; do
    if [ ! -f "$a/$rel" ] || [ ! -f "$b/$rel" ]; then
      echo "missing on one side: $rel"
      missing=$((missing + 1))
    elif cmp -s "$a/$rel" "$b/$rel"; then
      same=$((same + 1))
    elif cmp -s <(masked "$a/$rel") <(masked "$b/$rel"); then
      echo "identical once timings are masked: $rel"
      masked_same=$((masked_same + 1))
    else
      echo "DIFFERENT: $rel"
      differ=$((differ + 1))
    fi
  done < <( (cd "$a" && find . -type f; cd "$b" && find . -type f) | sed 's|^\./||' | sort -u)
  echo "$((same + masked_same + differ + missing)) files: $same byte-identical, $masked_same identical once timings are masked, $differ different, $missing missing on one side"
  [ "$differ" = 0 ] && [ "$missing" = 0 ]
}

case "${1:-}" in
  capture) shift; capture "$@" ;;
  compare) shift; compare "$@" ;;
  *) echo "usage: $0 capture VOG DIR | compare DIR_A DIR_B" >&2; exit 2 ;;
esac
