//! The planted image kinds against independent references (issue 35): `zoom` against PIL's
//! crop and bilinear resize (within 1 of 255 per channel: PIL works in fixed point), `shift`
//! against PIL's affine transform with a black fill (exact), `foreign` against a
//! checkerboard drawn by numpy from the two colours found (exact), and `noise` against the
//! normal distribution it claims (mean 0, sigma 0.2 of the pixel range, 0.5 sigma within
//! the Gaussian's interval). PIL and numpy come from the test environment (scripts/setup.sh).
mod common;
use std::process::Command;
use tch::{Kind, Tensor};
use vog::data::plant::{self, PlantSpec};

/// `n` seeded random CHW uint8 images of 3x32x32, as one NCHW tensor.
fn images(n: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint(256, [n, 3, 32, 32], (Kind::Uint8, tch::Device::Cpu))
}

fn bytes(t: &Tensor) -> Vec<u8> {
    let t = t.contiguous();
    let mut v = vec![0u8; t.numel()];
    t.copy_data(&mut v, t.numel());
    v
}

/// Runs the reference script on `input` (NCHW 3x32x32) and vog's `output`; returns its
/// printed line.
fn reference(kind: &str, args: &str, input: &Tensor, output: &Tensor) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("in.u8"), dir.path().join("out.u8"));
    std::fs::write(&a, bytes(input)).unwrap();
    std::fs::write(&b, bytes(output)).unwrap();
    let script = r#"
import sys
import numpy as np
from PIL import Image
kind, args, a, b = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
x = np.fromfile(a, np.uint8).reshape(-1, 3, 32, 32)
y = np.fromfile(b, np.uint8).reshape(-1, 3, 32, 32)
worst = 0
for img, got in zip(x, y):
    pil = Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)))
    if kind == "zoom":
        side = int(round(32 / float(args)))
        at = (32 - side) // 2
        ref = pil.crop((at, at, at + side, at + side)).resize((32, 32), Image.BILINEAR)
    elif kind == "shift":
        dx, dy = map(int, args.split(","))
        ref = pil.transform((32, 32), Image.AFFINE, (1, 0, -dx, 0, 1, -dy), Image.NEAREST, fillcolor=(0, 0, 0))
    else:
        hw = got.transpose(1, 2, 0)
        a_col, b_col = hw[0, 0], hw[0, 8]
        yy, xx = np.mgrid[0:32, 0:32]
        which = ((yy // 8 + xx // 8) % 2)[..., None]
        ref = Image.fromarray(np.where(which == 0, a_col, b_col).astype(np.uint8))
    ref = np.asarray(ref).transpose(2, 0, 1).astype(int)
    worst = max(worst, int(np.abs(ref - got.astype(int)).max()))
print(f"max abs diff {worst} over {len(x)} images")
"#;
    let out = Command::new(common::python())
        .args(["-c", script, kind, args])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn each(input: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let n = input.size()[0];
    Tensor::stack(&(0..n).map(|i| f(&input.get(i))).collect::<Vec<_>>(), 0)
}

#[test]
fn zoom_matches_pils_crop_and_bilinear_resize() {
    let input = images(20, 1);
    let ours = each(&input, |img| plant::zoom(img, plant::ZOOM));
    let said = reference("zoom", &plant::ZOOM.to_string(), &input, &ours);
    assert!(
        said == "max abs diff 0 over 20 images" || said == "max abs diff 1 over 20 images",
        "{said}"
    );
}

#[test]
fn shift_matches_pils_affine_transform() {
    let input = images(8, 2);
    for (dx, dy) in [(10, 0), (-10, 0), (0, 10), (0, -10)] {
        let ours = each(&input, |img| plant::shift(img, dx, dy));
        let said = reference("shift", &format!("{dx},{dy}"), &input, &ours);
        assert_eq!(said, "max abs diff 0 over 8 images", "dx {dx} dy {dy}");
    }
}

/// Plants `spec` into `n` copies of `image` (3x32x32); returns the images after planting.
fn planted(spec: &str, image: &Tensor, n: usize) -> Tensor {
    let mut images = image.unsqueeze(0).repeat([n as i64, 1, 1, 1]);
    let ids: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
    let mut labels = vec![0i64; n];
    let names = vec!["a".to_string(), "b".to_string()];
    let spec: PlantSpec = spec.parse().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    plant::plant(
        &spec,
        &ids,
        &mut images,
        &mut labels,
        &names,
        &Default::default(),
        &mut rng,
    )
    .unwrap();
    images
}

use rand::SeedableRng;

#[test]
fn foreign_is_a_checkerboard_of_two_colours() {
    let grey = Tensor::full([3, 32, 32], 128, (Kind::Uint8, tch::Device::Cpu));
    let input = planted("foreign:0.5", &grey, 20);
    // Half of the images were replaced; the reference compares each replaced one.
    let changed: Vec<i64> = (0..20)
        .filter(|&i| input.get(i).ne_tensor(&grey).any().int64_value(&[]) == 1)
        .collect();
    assert_eq!(changed.len(), 10);
    let replaced = Tensor::stack(
        &changed.iter().map(|&i| input.get(i)).collect::<Vec<_>>(),
        0,
    );
    let said = reference("foreign", "", &replaced, &replaced);
    assert_eq!(said, "max abs diff 0 over 10 images");
}

/// The standard deviation of `clip(round(128 + N(0, sigma)), 0, 255) - 128`, in a mixture
/// with `share` of zeros (images left unplanted), from the normal CDF in Python.
fn expected_std(sigma: f64, share: f64) -> f64 {
    let script = r#"
import sys
from math import erf, sqrt
sigma, share = float(sys.argv[1]), float(sys.argv[2])
cdf = lambda x: 0.5 * (1 + erf(x / (sigma * sqrt(2))))
p = {k: cdf(k + 0.5) - cdf(k - 0.5) for k in range(-127, 127)}
p[-128], p[127] = cdf(-127.5), 1 - cdf(126.5)
m1 = sum(k * q for k, q in p.items()) * (1 - share)
m2 = sum(k * k * q for k, q in p.items()) * (1 - share)
print((m2 - m1 * m1) ** 0.5)
"#;
    let out = Command::new(common::python())
        .args(["-c", script, &sigma.to_string(), &share.to_string()])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn noise_has_the_stated_distribution() {
    // Mid-grey images: clipping at 0 and 255 is 2.5 sigma away, and counted in the
    // expectation. 99 of 100 images are planted.
    let grey = Tensor::full([3, 32, 32], 128, (Kind::Uint8, tch::Device::Cpu));
    let noisy = planted("noise:0.99", &grey, 100);
    let diff = noisy.to_kind(Kind::Double) - 128.0;
    let (mean, std) = (
        diff.mean(Kind::Double).double_value(&[]),
        diff.std(false).double_value(&[]),
    );
    let expected = expected_std(plant::NOISE_SIGMA * 255.0, 0.01);
    // 307,200 values: the standard error of the std is about 0.07, of the mean 0.09.
    assert!(mean.abs() < 0.5, "mean {mean}");
    assert!(
        (std - expected).abs() < 0.3,
        "std {std}, expected {expected}"
    );
}
