#!/usr/bin/env python3
"""The PyTorch oracle for vog's SGD (src/optim.rs): runs torch.optim.SGD on a small
network from the parameters and batches in IN (safetensors, written by tests/parity.rs)
and writes the parameters after every step to OUT.

IN holds w1 [H, D], b1 [H], w2 [C, H], b2 [C] (f32), x.T [B, D] (f32), y.T [B] (i64) for
steps T = 0..steps-1, and lr.T (f64 scalar) per step. The loss is the mean cross-entropy
of linear(relu(linear(x, w1, b1)), w2, b2).

Usage: reference_sgd.py IN OUT --momentum M --weight-decay WD [--nesterov] [--foreach]

--foreach runs torch.optim.SGD(foreach=True), the multi-tensor implementation vog's
follows; without it, the per-tensor loop.
"""
import argparse

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--momentum", type=float, required=True)
    ap.add_argument("--weight-decay", type=float, required=True)
    ap.add_argument("--nesterov", action="store_true")
    ap.add_argument("--foreach", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t = load_file(a.inp)
    params = {k: t[k].clone().requires_grad_(True) for k in ("w1", "b1", "w2", "b2")}
    opt = torch.optim.SGD(
        list(params.values()),
        lr=0.0,
        momentum=a.momentum,
        dampening=0.0,
        weight_decay=a.weight_decay,
        nesterov=a.nesterov,
        foreach=a.foreach,
    )
    steps = sum(1 for k in t if k.startswith("x."))
    out = {}
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = float(t[f"lr.{s}"])
        h = F.relu(F.linear(t[f"x.{s}"], params["w1"], params["b1"]))
        loss = F.cross_entropy(F.linear(h, params["w2"], params["b2"]), t[f"y.{s}"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        for k, p in params.items():
            out[f"{k}.{s}"] = p.detach().clone()
    save_file(out, a.out)


if __name__ == "__main__":
    main()
