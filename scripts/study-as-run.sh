#!/usr/bin/env bash
# The CPU-scale study of issue 25 (docs/results.md, "the paper as its authors ran it"): which
# protocol gives the paper's direction. Two recipes on the same CIFAR-10 subset with 20% of
# the training labels shuffled, each a `vog experiment`:
#   text   - the paper's text: batch 128, learning-rate milestones in epochs (150/250 of 350,
#            scaled to EPOCHS), shuffled every epoch;
#   as-run - the authors' script: batch 50, milestones in optimizer steps (150/250: 0.001 from
#            step 250 of the first epoch on), one fixed order every epoch;
# both with augmentation, checkpoints at the first three and last three epochs, gradients
# captured during training in the first and the last epoch (logit and logprob), scored from
# the checkpoints (early+late, and the capture epochs alone) and from the captured gradients
# (also as the authors' script reduced them: `--reduce official`, no class normalization).
# Then one table: test accuracy, time, and the AUROC of every (recipe, gradients, target)
# cell for memorization (train split: noisy vs clean) and test difficulty (test split).
#
#   cargo build --release --locked
#   bash scripts/study-as-run.sh DATA [OUT]     # DATA: a CIFAR-10 folder with train/ and test/
#
# Settings by environment: EPOCHS (20), WIDTH (16), TRAIN (10000), TEST (2000), VOG
# (target/release/vog). 16 minutes on a 2-core Intel Xeon VM (AVX-512, AMX-BF16); not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath "${1:?usage: study-as-run.sh DATA [OUT]}")
out=$(realpath -m "${2:-runs/study-as-run}")
vog=$(realpath "${VOG:-target/release/vog}")
epochs=${EPOCHS:-20}
mkdir -p "$out"

# $1 name, $2 batch size, $3 lr_step, $4 shuffle
write_config() {
  cat >"$out/$1.toml" <<EOF
dataset = "$data"
data_dir = "$data"
out = "$out/$1"
device = "cpu"
label_noise = 0.2
train_subset = ${TRAIN:-10000}
test_subset = ${TEST:-2000}

[train]
epochs = 350
batch_size = $2
lr = 0.1
lr_milestones = [150, 250]
lr_gamma = 0.1
lr_step = "$3"
shuffle = $4
momentum = 0.9
weight_decay = 5e-4
width = ${WIDTH:-16}
augment = true
save_epochs = "first:3,last:3"
capture_epochs = "first:1,last:1"
capture_targets = ["logit", "logprob"]
seed = 0

[score]
stages = ["early+late", "first:1,last:1", "captured"]
splits = ["train", "test"]
targets = ["logit", "logprob"]
batch_size = 256
EOF
}

write_config text 128 epoch true
write_config as-run 50 batch false
for recipe in text as-run; do
  start=$(date +%s)
  "$vog" experiment "$out/$recipe.toml" --epochs "$epochs" 2>&1 | tee "$out/$recipe.log"
  echo "$recipe: $(($(date +%s) - start)) s in all" | tee -a "$out/$recipe.log"
  # The script's own VoG: its reduction, no class normalization (the raw columns).
  "$vog" score --run "$out/$recipe/run" --split train --captured --reduce official \
    --target logit,logprob --out "$out/$recipe/official-captured.csv"
  "$vog" eval "$out/$recipe/official-captured.csv" >/dev/null
done
{ nproc; grep -m1 "model name" /proc/cpuinfo; grep -o -m1 -w "avx512f\|avx512_bf16\|amx_bf16" /proc/cpuinfo | sort -u; } >"$out/machine.txt"
python3 scripts/study_table.py "$out/text" "$out/as-run" | tee "$out/table.md"
