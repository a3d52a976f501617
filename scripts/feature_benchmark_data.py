"""Builds the two disjoint CIFAR-10 folders of the features measurement (docs/results.md).

  python scripts/feature_benchmark_data.py CIFAR_JPG_ROOT OUT

CIFAR_JPG_ROOT holds train/<class>/NNNN.jpg and test/<class>/NNNN.jpg. Writes
OUT/backbone (files 0000-1999 of every class: 20,000 training images, the full test split)
and OUT/audit (files 2000-2499 of every class: 5,000 training images, the full test split)
with planted cases in audit/train, each named by what it is:
  dup-exact-*   a copy of another audit training image, in its class or another one
  dup-near-*    another audit training image re-encoded (JPEG quality 60) and shifted 1 px
  leak-*        a copy of a test image, under its class
  outlier-*     a synthetic pattern (noise, stripes, gradient), under a seeded class
and OUT/audit/planted.csv (id,kind,of) naming each planted image and the one it copies.
"""
import csv, os, shutil, sys
import numpy as np
from PIL import Image

SRC, OUT = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
classes = sorted(os.listdir(os.path.join(SRC, "train")))
for name, lo, hi in (("backbone", 0, 2000), ("audit", 2000, 2500)):
    for c in classes:
        d = os.path.join(OUT, name, "train", c)
        os.makedirs(d, exist_ok=True)
        for i in range(lo, hi):
            shutil.copy(os.path.join(SRC, "train", c, f"{i:04d}.jpg"), d)
    shutil.copytree(os.path.join(SRC, "test"), os.path.join(OUT, name, "test"), dirs_exist_ok=True)

audit = os.path.join(OUT, "audit")
rows = []
def pick():
    c = classes[rng.integers(10)]
    return c, f"{rng.integers(2000, 2500):04d}.jpg"
for n in range(25):
    c, f = pick()
    to = c if n < 15 else classes[(classes.index(c) + 1 + rng.integers(9)) % 10]
    name = f"dup-exact-{n:02d}.jpg"
    shutil.copy(os.path.join(audit, "train", c, f), os.path.join(audit, "train", to, name))
    rows.append((f"train/{to}/{name}", "exact", f"train/{c}/{f}"))
for n in range(25):
    c, f = pick()
    img = np.asarray(Image.open(os.path.join(audit, "train", c, f)).convert("RGB"))
    img = np.roll(img, 1, axis=1)
    name = f"dup-near-{n:02d}.jpg"
    Image.fromarray(img).save(os.path.join(audit, "train", c, name), quality=60)
    rows.append((f"train/{c}/{name}", "near", f"train/{c}/{f}"))
for n in range(25):
    c = classes[rng.integers(10)]
    f = f"{rng.integers(0, 1000):04d}.jpg"
    name = f"leak-{n:02d}.jpg"
    shutil.copy(os.path.join(audit, "test", c, f), os.path.join(audit, "train", c, name))
    rows.append((f"train/{c}/{name}", "leak", f"test/{c}/{f}"))
for n in range(25):
    c = classes[rng.integers(10)]
    kind = n % 3
    if kind == 0:
        img = rng.integers(0, 256, (32, 32, 3))
    elif kind == 1:
        img = np.zeros((32, 32, 3)) + (np.arange(32)[:, None, None] // (2 + n % 4) % 2) * rng.integers(0, 256, 3)
    else:
        img = np.linspace(0, 255, 32)[None, :, None] * np.ones((32, 1, 3)) * rng.random(3)
    name = f"outlier-{n:02d}.png"
    Image.fromarray(img.astype(np.uint8)).save(os.path.join(audit, "train", c, name))
    rows.append((f"train/{c}/{name}", "outlier", ""))
with open(os.path.join(audit, "planted.csv"), "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["id", "kind", "of"])
    w.writerows(rows)
print(f"{OUT}/backbone: 20000 train; {OUT}/audit: 5000 train + {len(rows)} planted")
