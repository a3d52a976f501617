#!/usr/bin/env python3
"""Reference for gradients captured during training: the oracle of `vog score --captured`.

With one optimizer step per epoch, the network just stepped in a capture epoch is that
epoch's checkpoint. Given the batches the capture saw (written by a run trained with
VOG_TEST_CAPTURE_DUMP=DIR: each batch's normalized, augmented input, labels and example
indices), this recomputes every example's input gradient of each target in eager PyTorch
at each capture epoch's checkpoint, then VoG with the paper's reduction, straight from the
definitions (reference_vog.py's network and formulas). Usage:

    python scripts/reference_captured.py RUN DUMP OUT.csv [--target logit,logprob]
"""
import argparse
import csv
import glob
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_vog import load_model, pixel_map, reduce, target_values  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("dump")
    p.add_argument("out")
    p.add_argument("--target", default="logit")
    a = p.parse_args()
    m = json.load(open(os.path.join(a.run, "run.json")))
    epochs = m["captured"]["epochs"]
    width = m["config"]["hyper"]["width"]
    classes = len(m["dataset"]["class_names"])
    n = m["dataset"]["train_examples"]
    targets = a.target.split(",")
    maps = {t: [None] * len(epochs) for t in targets}
    for k, epoch in enumerate(epochs):
        model = load_model(os.path.join(a.run, f"checkpoints/epoch-{epoch:04d}.safetensors"), classes, width)
        files = sorted(glob.glob(os.path.join(a.dump, f"capture-{k + 1:04d}-batch-*.safetensors")))
        if not files:
            sys.exit(f"error: no captured batches of capture epoch {k + 1} in {a.dump}")
        for t in targets:
            maps[t][k] = torch.zeros(n, 32 * 32, dtype=torch.float64)
        for f in files:
            b = load_file(f)
            x = b["input"].clone().requires_grad_(True)
            logits = model(x)
            for t in targets:
                (g,) = torch.autograd.grad(target_values(logits, b["labels"], t).sum(), x, retain_graph=True)
                maps[t][k][b["idx"]] = pixel_map(g, "mean", "none")
    values = {t: reduce(torch.stack(maps[t]), "paper").numpy() for t in targets}
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index"] + targets)
        for i in range(n):
            w.writerow([i] + [repr(float(values[t][i])) for t in targets])


if __name__ == "__main__":
    main()
