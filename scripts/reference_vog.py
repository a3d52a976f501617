#!/usr/bin/env python3
"""Reference VoG in PyTorch: the correctness oracle for `vog score`.

Loads a run's checkpoints (safetensors, torchvision names) into an independent PyTorch
CIFAR ResNet-18, computes each example's input gradients at every checkpoint one
checkpoint-stack at a time (no streaming), reduces them with the paper's formula or a
variant, z-scores within each trained class, and writes the same CSV as `vog score`.

Supports runs on CIFAR-format binaries (cifar10/cifar100, e.g. written by `vog data synth`)
without subsets. Usage:

    python scripts/reference_vog.py --run RUN --out ref.csv [--split test|train|both]
        [--epochs 1,2,3] [--target logit,prob] [--reduce paper|official|cv]
        [--channels mean|all] [--grad-norm none|unit]
"""
import argparse
import csv
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet18(nn.Module):
    def __init__(self, classes, width):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        c = width
        for stage in range(4):
            out = width << stage
            blocks = []
            for b in range(2):
                blocks.append(BasicBlock(c, out, 2 if stage > 0 and b == 0 else 1))
                c = out
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in range(4):
            x = getattr(self, f"layer{stage + 1}")(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def load_model(path, classes, width):
    model = ResNet18(classes, width)
    missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    bad = [k for k in missing if not k.endswith("num_batches_tracked")]
    if bad or unexpected:
        sys.exit(f"error: checkpoint {path}: missing {bad}, unexpected {unexpected}")
    return model.eval()


def read_cifar(spec):
    kind, d = spec["kind"], spec["dir"]
    if kind == "cifar10":
        folder, label_bytes = "cifar-10-batches-bin", 1
        files = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
        names_file = "batches.meta.txt"
    elif kind == "cifar100":
        folder, label_bytes = "cifar-100-binary", 2
        files = {"train": ["train.bin"], "test": ["test.bin"]}
        names_file = "fine_label_names.txt"
    else:
        sys.exit(f"error: the reference reads CIFAR-format runs only, not '{kind}'")
    if os.path.isdir(os.path.join(d, folder)):
        d = os.path.join(d, folder)
    names = [l.strip() for l in open(os.path.join(d, names_file)) if l.strip()]
    splits = {}
    for split, fs in files.items():
        raw = np.concatenate([np.fromfile(os.path.join(d, f), dtype=np.uint8) for f in fs])
        rec = raw.reshape(-1, label_bytes + 3072)
        labels = rec[:, label_bytes - 1].astype(np.int64)
        images = rec[:, label_bytes:].reshape(-1, 3, 32, 32)
        ids = [f"{split}/{i:06d}" for i in range(len(labels))]
        splits[split] = (images, labels, ids)
    return names, splits


def target_values(logits, y, target):
    pick = lambda t: t.gather(1, y[:, None]).squeeze(1)
    if target == "logit":
        return pick(logits)
    if target == "prob":
        return pick(logits.softmax(1))
    if target == "logprob":
        return pick(logits.log_softmax(1))
    if target == "margin":
        others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
        return pick(logits) - others.amax(1)
    raise ValueError(target)


def pixel_map(grad, channels, grad_norm):
    g = grad.double()
    m = g.mean(1).flatten(1) if channels == "mean" else g.flatten(1)
    if grad_norm == "unit":
        m = m / m.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return m


def reduce(stack, how):
    """stack: K x B x N float64 -> B values, straight from the definitions."""
    mu = stack.mean(0)
    var = ((stack - mu) ** 2).mean(0)
    paper = var.mean(1).sqrt()
    if how == "paper":
        return paper
    if how == "official":
        return var.sqrt().mean(1)
    return paper / stack.abs().mean((0, 2))


def checkpoint_scores(models, x, y):
    """B x 3 float64: loss and label probability at the last checkpoint, EL2N (mean over
    the checkpoints of |softmax - onehot|_2), straight from the definitions."""
    with torch.no_grad():
        logits = [m(x).double() for m in models]
    onehot = F.one_hot(y, logits[0].shape[1]).double()
    el2n = torch.stack([(l.softmax(1) - onehot).norm(dim=1) for l in logits]).mean(0)
    loss = F.cross_entropy(logits[-1], y, reduction="none")
    prob = logits[-1].softmax(1).gather(1, y[:, None]).squeeze(1)
    return torch.stack([loss, el2n, prob], 1).numpy()


def zscore(raw, classes):
    out = np.zeros_like(raw)
    for c in np.unique(classes):
        m = classes == c
        std = raw[m].std()
        if m.sum() > 1 and std > 0:
            out[m] = (raw[m] - raw[m].mean()) / std
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="test", choices=["test", "train", "both"])
    p.add_argument("--epochs", default=None)
    p.add_argument("--target", default="logit")
    p.add_argument("--reduce", default="paper", choices=["paper", "official", "cv"])
    p.add_argument("--channels", default="mean", choices=["mean", "all"])
    p.add_argument("--grad-norm", default="none", choices=["none", "unit"])
    p.add_argument("--batch-size", type=int, default=100)
    a = p.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    run = json.load(open(os.path.join(a.run, "run.json")))
    cfg = run["config"]
    if cfg.get("train_subset") or cfg.get("test_subset"):
        sys.exit("error: the reference does not reproduce subsets")
    epochs = [int(e) for e in a.epochs.split(",")] if a.epochs else run["saved_epochs"]
    classes, width = len(run["dataset"]["class_names"]), cfg["hyper"]["width"]
    models = [
        load_model(os.path.join(a.run, f"checkpoints/epoch-{e:04d}.safetensors"), classes, width)
        for e in epochs
    ]
    names, splits = read_cifar(cfg["dataset"])
    assigned = {}
    if run.get("label_noise_file"):
        for r in csv.DictReader(open(os.path.join(a.run, run["label_noise_file"]))):
            assigned[r["id"]] = int(r["assigned_label"])
    mean = torch.tensor(run["normalization"]["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(run["normalization"]["std"], dtype=torch.float32).view(1, 3, 1, 1)
    targets = a.target.split(",")

    header = ["id", "split", "index", "label", "label_name", "trained_label", "noisy", "predicted", "correct"]
    for i, t in enumerate(targets):
        header += ["vog_raw", "vog"] if i == 0 else [f"vog_raw_{t}", f"vog_{t}"]
    header += ["loss", "el2n", "prob"]
    rows = []
    for split in (["train", "test"] if a.split == "both" else [a.split]):
        images, labels, ids = splits[split]
        trained = np.array([assigned.get(i, l) for i, l in zip(ids, labels)])
        raw = {t: [] for t in targets}
        predicted, baselines = [], []
        for s in range(0, len(labels), a.batch_size):
            x = (torch.from_numpy(images[s : s + a.batch_size]).float() / 255.0 - mean) / std
            y = torch.from_numpy(trained[s : s + a.batch_size])
            maps = {t: [] for t in targets}
            for model in models:
                for t in targets:
                    xx = x.clone().requires_grad_(True)
                    logits = model(xx)
                    (g,) = torch.autograd.grad(target_values(logits, y, t).sum(), xx)
                    maps[t].append(pixel_map(g, a.channels, a.grad_norm))
            predicted.append(logits.argmax(1).numpy())
            baselines.append(checkpoint_scores(models, x, y))
            for t in targets:
                raw[t].append(reduce(torch.stack(maps[t]), a.reduce).numpy())
        predicted = np.concatenate(predicted)
        baselines = np.concatenate(baselines)
        cols = []
        for t in targets:
            r = np.concatenate(raw[t])
            cols.append((r, zscore(r, trained)))
        for i in range(len(labels)):
            row = [ids[i], split, i, int(labels[i]), names[labels[i]], int(trained[i]),
                   str(bool(trained[i] != labels[i])).lower(), int(predicted[i]),
                   str(bool(predicted[i] == labels[i])).lower()]
            for r, z in cols:
                row += [repr(float(r[i])), repr(float(z[i]))]
            row += [repr(float(v)) for v in baselines[i]]
            rows.append(row)
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


if __name__ == "__main__":
    main()
