#!/usr/bin/env python3
"""The PyTorch side of `scripts/bench.sh`: the work `vog bench` measures, in eager
PyTorch with the same network (scripts/reference_vog.py's ResNet18), batch, precision and
threads, on synthetic images held in memory. One warm-up pass (4 batches) is excluded.

  train: SGD steps (momentum 0.9, weight decay 5e-4, lr 0.1) in training mode on
         normalized batches in a shuffled order, loss and accuracy summed on the device:
         images per second. bf16/fp16: the forward under torch.autocast, the loss from
         fp32 logits, fp16 with a GradScaler (as vog train --precision).
  score: for each batch and each of K eval-mode models, the input gradient of the summed
         true-class logits, its channel mean in f64 accumulated for VoG, and the loss and
         prediction from the logits: image x checkpoint per second.

Prints a JSON list of rows (what, precision, width, batch_size, checkpoints, threads, rate,
unit), as `vog bench --format json` does. `--channels-last` runs PyTorch in that memory
format instead (vog does not: it corrupted the heap in libtorch's CPU kernels, see
docs/results.md), to show what the layout is worth on a device.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_vog import ResNet18  # noqa: E402

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BATCHES_PER_PASS = 4


def timed(seconds, one_pass):
    one_pass()
    start = time.perf_counter()
    work = 0
    while time.perf_counter() - start < seconds:
        work += one_pass()
    return work, time.perf_counter() - start


def synthetic(n, device):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    return images.to(device), labels.to(device)


def bench_train(a, precision, device):
    model = ResNet18(10, a.width).to(device, memory_format=a.memory_format).train()
    low = precision != "fp32"
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    n = a.batch_size * BATCHES_PER_PASS
    images, labels = synthetic(n, device)
    mean, std = MEAN.to(device), STD.to(device)

    def one_pass():
        order = torch.randperm(n, device=device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for start in range(0, n, a.batch_size):
            idx = order[start:start + a.batch_size]
            x = (images.index_select(0, idx).float() / 255 - mean) / std
            x = x.contiguous(memory_format=a.memory_format)
            y = labels.index_select(0, idx)
            with torch.autocast(device.type, dtype=DTYPES[precision], enabled=low):
                logits = model(x)
            logits = logits.float()
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            with torch.no_grad():
                loss_sum += loss.double() * len(idx)
                correct += (logits.argmax(1) == y).sum()
        loss_sum.item()
        return n

    return timed(a.seconds, one_pass)


def bench_score(a, precision, device):
    dtype = DTYPES[precision]
    models = []
    for k in range(a.checkpoints):
        torch.manual_seed(k)
        m = ResNet18(10, a.width).to(device, memory_format=a.memory_format).eval().to(dtype)
        for p in m.parameters():
            p.requires_grad_(False)
        models.append(m)
    n = a.batch_size * BATCHES_PER_PASS
    images, labels = synthetic(n, "cpu")
    mean, std = MEAN.to(device), STD.to(device)

    def one_pass():
        for start in range(0, n, a.batch_size):
            x = (images[start:start + a.batch_size].to(device).float() / 255 - mean) / std
            x = x.to(dtype).contiguous(memory_format=a.memory_format)
            y = labels[start:start + a.batch_size].to(device)
            s = s2 = None
            all_logits = []
            for m in models:
                xi = x.detach().requires_grad_(True)
                logits = m(xi)
                total = logits.gather(1, y[:, None]).sum(dtype=torch.float32)
                (g,) = torch.autograd.grad(total, xi)
                pm = g.double().mean(1).flatten(1)
                s = pm if s is None else s + pm
                s2 = pm * pm if s2 is None else s2 + pm * pm
                all_logits.append(logits.detach().float())
            k = len(models)
            vog = ((s2 / k - (s / k) ** 2).clamp_min(0).mean(1)).sqrt()
            last = all_logits[-1]
            loss = F.cross_entropy(last, y, reduction="none")
            vog.cpu(), loss.cpu(), last.argmax(1).cpu()
        return n * len(models)

    return timed(a.seconds, one_pass)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", default="train,score")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoints", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--channels-last", action="store_true",
                    help="network and inputs in torch.channels_last (vog runs contiguous): "
                         "what that layout would be worth")
    a = ap.parse_args()
    a.memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    rows = []
    for what in a.what.split(","):
        for precision in a.precision.split(","):
            row = {"what": what, "precision": precision, "width": a.width,
                   "batch_size": a.batch_size, "threads": torch.get_num_threads(),
                   "checkpoints": a.checkpoints if what == "score" else None,
                   "unit": "img/s" if what == "train" else "image x checkpoint/s"}
            bench = bench_train if what == "train" else bench_score
            work, secs = bench(a, precision, device)
            row["rate"] = work / secs
            rows.append(row)
            print(f"pytorch {what} {precision}: {row['rate']}", file=sys.stderr)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
