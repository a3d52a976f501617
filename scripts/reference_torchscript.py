#!/usr/bin/env python3
"""The PyTorch oracle for `vog score --model` (used by tests/model_cli.rs).

    make --out DIR --k K --classes C
        K checkpoints of TinyCNN (conv-BN-ReLU twice, global pooling, linear), each after a
        few SGD steps on random data from its own seed (so BatchNorm statistics are not
        trivial), saved as DIR/ckpt-<t>.pth state dicts.
    vog --ckpt DIR --pixels FILE --shape N,3,H,W --labels 0,1,... --mean R,G,B --std R,G,B
        The paper's VoG of each image with eager PyTorch (no TorchScript): the gradient of
        the true-class logit w.r.t. the normalized input at every checkpoint, averaged over
        channels, variance over checkpoints per pixel, mean over pixels, square root.
        Prints one value per line.
"""
import argparse
import glob

import numpy as np
import torch
import torch.nn as nn


class TinyCNN(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def make(a):
    for t in range(1, a.k + 1):
        torch.manual_seed(t)
        m = TinyCNN(a.classes)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        for _ in range(3):
            x = torch.randn(16, 3, 40, 48)
            y = torch.randint(0, a.classes, (16,))
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        torch.save(m.state_dict(), f"{a.out}/ckpt-{t}.pth")


def vog(a):
    n, c, h, w = (int(v) for v in a.shape.split(","))
    pixels = np.fromfile(a.pixels, dtype=np.uint8).reshape(n, c, h, w)
    labels = torch.tensor([int(v) for v in a.labels.split(",")])
    mean = torch.tensor([float(v) for v in a.mean.split(",")]).view(1, 3, 1, 1)
    std = torch.tensor([float(v) for v in a.std.split(",")]).view(1, 3, 1, 1)
    x0 = (torch.from_numpy(pixels).float() / 255.0 - mean) / std
    maps = []
    for path in sorted(glob.glob(f"{a.ckpt}/ckpt-*.pth")):
        m = TinyCNN(int(a.classes))
        m.load_state_dict(torch.load(path, weights_only=True))
        m.eval()
        x = x0.clone().requires_grad_(True)
        logits = m(x)
        logits.gather(1, labels.view(-1, 1)).sum().backward()
        maps.append(x.grad.double().mean(1))
    s = torch.stack(maps)  # K, N, H, W
    v = ((s - s.mean(0)) ** 2).mean(0).mean((1, 2)).sqrt()
    for value in v.tolist():
        print(repr(value))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--out", required=True)
    mk.add_argument("--k", type=int, default=3)
    mk.add_argument("--classes", type=int, default=4)
    vg = sub.add_parser("vog")
    for name in ("--ckpt", "--pixels", "--shape", "--labels", "--mean", "--std"):
        vg.add_argument(name, required=True)
    vg.add_argument("--classes", default="4")
    a = p.parse_args()
    make(a) if a.cmd == "make" else vog(a)


if __name__ == "__main__":
    main()
