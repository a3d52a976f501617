#!/usr/bin/env python3
"""Eager PyTorch alone corrupting the heap with channels_last on a CPU: why vog stays
contiguous (docs/results.md). Trains scripts/reference_vog.py's ResNet-18 in training mode
(forward + backward, no optimizer) on a few batches in torch.channels_last.

  python3 scripts/repro_channels_last_crash.py --width 8 --batch 7    # crashed 6/6 (torch 2.11)
  python3 scripts/repro_channels_last_crash.py --width 8 --batch 32   # 0/6
  python3 scripts/repro_channels_last_crash.py --width 8 --batch 7 --contiguous  # control

Prints "ok" when it survives; a crash shows as glibc's "corrupted size vs. prev_size",
"free(): invalid next size", a segfault or an abort. Run it several times (seeds differ).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_vog import ResNet18  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch", type=int, default=7)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--contiguous", action="store_true", help="the control: default layout")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    layout = torch.contiguous_format if a.contiguous else torch.channels_last
    model = ResNet18(10, a.width).to(memory_format=layout).train()
    labels = torch.randint(0, 10, (a.batch,))
    for _ in range(a.steps):
        x = torch.rand(a.batch, 3, 32, 32).contiguous(memory_format=layout)
        model(x).gather(1, labels[:, None]).sum().backward()
    print("ok")


if __name__ == "__main__":
    main()
