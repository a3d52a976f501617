#!/usr/bin/env python3
"""Turn a pretrained backbone into the TorchScript feature model `vog embed --model` reads.

The model is built, its weights loaded, its classifier replaced by the identity (so
forward(x) returns the [batch, D] features the classifier would read), put in eval mode,
traced on an input of the size vog will feed it, checked (2-D output, the same values as
the model, D not the class count it was built with), and saved with torch.jit.save.

    # torchvision (weights from a file: vog's machines download nothing)
    python scripts/export_features.py --torchvision resnet18 \
        --weights resnet18-f37072fd.pth --input-shape 3,224,224 --out resnet18-features.pt
    # timm
    python scripts/export_features.py --timm vit_small_patch16_224 \
        --weights vit_small.pth --input-shape 3,224,224 --out vit-features.pt
    # your own class: the attribute named by --head is replaced by the identity
    python scripts/export_features.py --module mypkg.models:Net --kwargs '{"classes": 10}' \
        --weights ckpt.pth --head fc --input-shape 3,32,32 --out net-features.pt

Then, with the normalization the backbone was trained with (ImageNet's for torchvision
and most timm models):

    vog embed --run RUN --model resnet18-features.pt --normalize imagenet \
        --resize 224 --out RUN-features.safetensors

A checkpoint may be a bare state dict or one under 'state_dict', 'model' or
'model_state_dict'; a `module.` prefix left by DataParallel is removed. Any failure ends
with a one-line error and a non-zero exit, and nothing is written.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torchscript import exit_on_error, model_class, state_dict  # noqa: E402


def build(a):
    """The model with its weights, and the name of its classifier attribute (or None when
    the library removes the classifier itself)."""
    if a.torchvision:
        import torchvision

        model = getattr(torchvision.models, a.torchvision)(weights=None)
        head = a.head or next(h for h in ("fc", "classifier", "head", "heads") if hasattr(model, h))
    elif a.timm:
        import timm

        model = timm.create_model(a.timm, pretrained=False)
        head = None
    else:
        model = model_class(a.module)(**json.loads(a.kwargs))
        head = a.head
        if not head:
            raise ValueError("--module needs --head, the attribute holding the classifier")
    if a.weights:
        model.load_state_dict(state_dict(a.weights), strict=True)
    if head is None:
        model.reset_classifier(0)
    else:
        if not hasattr(model, head):
            raise ValueError(f"the model has no attribute '{head}' to replace (--head)")
        setattr(model, head, torch.nn.Identity())
    return model.eval()


def export(a):
    model = build(a)
    shape = [int(v) for v in a.input_shape.split(",")]
    example = torch.randn(2, *shape)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
        out = traced(example)
        if out.dim() != 2:
            raise ValueError(f"the backbone returns a {out.dim()}-D output {list(out.shape)}, not [batch, D]")
        if not torch.allclose(out, model(example), rtol=1e-4, atol=1e-5):
            raise ValueError("the traced model's features differ from the model's")
    torch.jit.save(traced, a.out)
    print(f"feature model ({out.shape[1]} values per image) -> {a.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--torchvision", help="a torchvision.models constructor, e.g. resnet18")
    src.add_argument("--timm", help="a timm model name")
    src.add_argument("--module", help="importable.module:ClassName")
    p.add_argument("--kwargs", default="{}", help="JSON keyword arguments of --module's class")
    p.add_argument("--weights", help="the checkpoint to load (a state dict)")
    p.add_argument("--head", help="the classifier attribute to replace by the identity")
    p.add_argument("--input-shape", required=True, help="C,H,W as vog feeds it")
    p.add_argument("--out", required=True, help="the .pt file to write")
    a = p.parse_args()
    exit_on_error(lambda: export(a))


if __name__ == "__main__":
    main()
