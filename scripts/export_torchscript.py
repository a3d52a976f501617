#!/usr/bin/env python3
"""Turn your PyTorch checkpoints into the TorchScript files `vog score --model` reads.

For each checkpoint: build your model class, load the checkpoint's weights, put the model
in eval mode, trace it on an input of the size `vog` will feed it, check that the traced
module gives the same logits, and save it with torch.jit.save as OUT/<checkpoint name>.pt.
`vog score --model OUT/` takes a folder's .pt files in natural order of their names
(`epoch-2.pt` before `epoch-10.pt`), so name checkpoints with their epoch or step. Two
checkpoints that would be written to the same OUT/<name>.pt are refused before anything is
exported; any failure ends with a one-line error and a non-zero exit, and an --out folder
this script created is removed again if nothing was exported into it.

    python scripts/export_torchscript.py --module mypkg.models:ResNet50 \
        --kwargs '{"num_classes": 100}' --input-shape 3,224,224 --out ts/ \
        ckpt/epoch-010.pth ckpt/epoch-020.pth ckpt/epoch-030.pth

--module is `importable.module:ClassName` (the current folder and PYTHONPATH are searched);
--kwargs the JSON keyword arguments of its constructor. A checkpoint may be a bare state
dict or a dict holding one under 'state_dict', 'model' or 'model_state_dict'; a
`module.` prefix left by DataParallel is removed. The model must return [batch, classes]
logits from forward(x) (wrap it if it returns a tuple or a dict).
"""
import argparse
import importlib
import json
import os
import sys

import torch


def model_class(spec):
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"--module '{spec}' must be module.path:ClassName")
    sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module), name)


def state_dict(path):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    return {k.removeprefix("module."): v for k, v in obj.items()}


def output_names(checkpoints):
    """OUT file name per checkpoint; refuses two checkpoints that map to one name."""
    names = {}
    for ckpt in checkpoints:
        name = os.path.splitext(os.path.basename(ckpt))[0] + ".pt"
        if name in names:
            raise ValueError(f"'{names[name]}' and '{ckpt}' would both be exported as {name}: rename one")
        names[name] = ckpt
    return [(ckpt, name) for name, ckpt in names.items()]


def export(a):
    cls = model_class(a.module)
    shape = [int(v) for v in a.input_shape.split(",")]
    kwargs = json.loads(a.kwargs)
    example = torch.randn(2, *shape)
    for ckpt, name in output_names(a.checkpoints):
        model = cls(**kwargs)
        model.load_state_dict(state_dict(ckpt), strict=True)
        model.eval()
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
            if not torch.allclose(traced(example), model(example), rtol=1e-4, atol=1e-5):
                raise ValueError(f"{ckpt}: the traced model's logits differ from the model's")
        torch.jit.save(traced, os.path.join(a.out, name))
        print(f"{ckpt} -> {os.path.join(a.out, name)}")


def exit_on_error(body, cleanup=lambda: None):
    """Runs body(); any failure runs cleanup() and ends with a one-line error."""
    try:
        body()
    except (Exception, SystemExit) as e:
        cleanup()
        if isinstance(e, SystemExit) and not isinstance(e.code, str):
            raise
        message = " ".join(str(e.code if isinstance(e, SystemExit) else e).split())
        sys.exit(f"error: {message or type(e).__name__}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--module", required=True)
    p.add_argument("--kwargs", default="{}")
    p.add_argument("--input-shape", required=True, help="C,H,W as vog feeds it")
    p.add_argument("--out", required=True)
    p.add_argument("checkpoints", nargs="+")
    a = p.parse_args()
    created = not os.path.exists(a.out)

    def body():
        output_names(a.checkpoints)
        os.makedirs(a.out, exist_ok=True)
        export(a)

    def cleanup():
        if created and os.path.isdir(a.out) and not os.listdir(a.out):
            os.rmdir(a.out)

    exit_on_error(body, cleanup)


if __name__ == "__main__":
    main()
