//! Planted hardness (issue 35, after H-CAT: Seedat, Imrie and van der Schaar, ICLR 2024):
//! known training examples altered once, before training, by kind, so that every score can
//! be asked which kind it finds, and in which direction.
//!
//! Label kinds keep the image and change the trained label: `uniform` (another class, drawn
//! uniformly among the others, never the same one), `adjacent` (class c becomes c+1 in
//! class-index order, wrapping), `pairs` (a fixed map of confusable classes: for CIFAR-10
//! truck->automobile, bird->airplane, deer->horse, cat<->dog; elsewhere a seeded pairing),
//! `confusable` (the class another run's final model scores highest for that very image
//! among the classes other than its label: instance-dependent, [`PlantFrom`]).
//! Image kinds keep the label and change the pixels: `noise` (Gaussian, sigma a fraction of
//! the pixel range), `zoom` (a centre crop of 1/factor of the side, resized back bilinearly,
//! half-pixel centres as PIL's), `shift` (a translation by a fraction of the side in a seeded
//! direction, the border black), `foreign` (a generated checkerboard of two seeded colours,
//! far from every class). Examples are drawn per kind without overlap from one seeded
//! permutation; the record is written as `planted.csv`
//! (`id,kind,original_label,trained_label,parameters`).
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use tch::{Kind as Dtype, Tensor};

/// What is planted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Uniform,
    Adjacent,
    Pairs,
    Confusable,
    Noise,
    Zoom,
    Shift,
    Foreign,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Uniform,
        Kind::Adjacent,
        Kind::Pairs,
        Kind::Confusable,
        Kind::Noise,
        Kind::Zoom,
        Kind::Shift,
        Kind::Foreign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Uniform => "uniform",
            Kind::Adjacent => "adjacent",
            Kind::Pairs => "pairs",
            Kind::Confusable => "confusable",
            Kind::Noise => "noise",
            Kind::Zoom => "zoom",
            Kind::Shift => "shift",
            Kind::Foreign => "foreign",
        }
    }

    /// What was done to the examples of this kind, for headings.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Uniform => "label changed to another class, drawn uniformly",
            Kind::Adjacent => "label changed to the next class",
            Kind::Pairs => "label changed to its confusable pair",
            Kind::Confusable => "label changed to the class another run's model ranks next",
            Kind::Noise => "Gaussian noise added, label kept",
            Kind::Zoom => "centre zoomed in, label kept",
            Kind::Shift => "shifted with a black border, label kept",
            Kind::Foreign => "replaced by a foreign image, label kept",
        }
    }

    /// Whether the kind changes the trained label (else the pixels).
    pub fn is_label(self) -> bool {
        matches!(
            self,
            Kind::Uniform | Kind::Adjacent | Kind::Pairs | Kind::Confusable
        )
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kind '{s}' (known: {})", names.join(", "))
            })
    }
}

/// The image kinds' parameters (the defaults: sigma 0.2 of the pixel range, zoom 1.75x,
/// a shift of 10/32 of the side, as H-CAT's 10 pixels on 32).
pub const NOISE_SIGMA: f64 = 0.2;
pub const ZOOM: f64 = 1.75;
pub const SHIFT: f64 = 10.0 / 32.0;

/// `KIND:FRACTION[,KIND:FRACTION...]`, as `--plant` gives it (and run.json records it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlantSpec(pub Vec<(Kind, f64)>);

impl PlantSpec {
    /// The kinds planted, in kind order.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.0.iter().map(|&(k, _)| k).collect();
        kinds.sort();
        kinds
    }
}

impl TryFrom<String> for PlantSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<PlantSpec> for String {
    fn from(p: PlantSpec) -> String {
        p.to_string()
    }
}

impl std::str::FromStr for PlantSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut kinds: Vec<(Kind, f64)> = Vec::new();
        for part in s.split(',') {
            let (kind, fraction) = part
                .split_once(':')
                .ok_or_else(|| format!("'{part}' is not KIND:FRACTION"))?;
            let kind: Kind = kind.trim().parse()?;
            let fraction: f64 = fraction
                .trim()
                .parse()
                .map_err(|_| format!("'{part}': the fraction is not a number"))?;
            if !(fraction > 0.0 && fraction < 1.0) {
                return Err(format!("'{part}': the fraction must lie in (0, 1)"));
            }
            if kinds.iter().any(|(k, _)| *k == kind) {
                return Err(format!("kind '{}' is given twice", kind.name()));
            }
            kinds.push((kind, fraction));
        }
        let total: f64 = kinds.iter().map(|(_, f)| f).sum();
        if total > 1.0 {
            return Err(format!("the fractions sum to {total}, past 1"));
        }
        Ok(PlantSpec(kinds))
    }
}

impl std::fmt::Display for PlantSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, x)| format!("{}:{x}", k.name()))
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// One planted example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planted {
    pub id: String,
    pub kind: Kind,
    pub original_label: i64,
    pub trained_label: i64,
    /// What was done, e.g. `sigma=0.2`, `dx=10 dy=0`, `to=pairs`.
    pub parameters: String,
}

/// CIFAR-10's classes in label order, whose confusable pairs `pairs` plants.
const CIFAR10: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The class pairs `pairs` plants (source -> target): CIFAR-10's confusable pairs when the
/// classes are CIFAR-10's, else a seeded pairing of the classes (an odd one out keeps its
/// label and is never planted).
pub fn pair_map(class_names: &[String], rng: &mut impl Rng) -> Vec<Option<i64>> {
    let k = class_names.len();
    if class_names.iter().map(String::as_str).eq(CIFAR10) {
        let mut map = vec![None; k];
        for (from, to) in [(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)] {
            map[from] = Some(to as i64);
        }
        return map;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.shuffle(rng);
    let mut map = vec![None; k];
    for pair in order.chunks_exact(2) {
        map[pair[0]] = Some(pair[1] as i64);
        map[pair[1]] = Some(pair[0] as i64);
    }
    map
}

/// Plants `spec` into a training split in memory: `images` (NCHW uint8) and `labels` (the
/// labels to train with) are changed in place; returns the record in dataset order. The
/// examples of each kind are drawn from one seeded permutation of `0..n`, without overlap
/// (`pairs` from the examples of classes it maps). A kind whose fraction gives no example,
/// or that has too few examples left to draw from, is refused.
pub fn plant(
    spec: &PlantSpec,
    ids: &[String],
    images: &mut Tensor,
    labels: &mut [i64],
    class_names: &[String],
    sources: &Sources,
    rng: &mut impl Rng,
) -> Result<Vec<Planted>> {
    let n = labels.len();
    let k = class_names.len() as i64;
    let pairs = pair_map(class_names, rng);
    let mut free: Vec<usize> = (0..n).collect();
    free.shuffle(rng);
    let mut record = Vec::new();
    for &(kind, fraction) in &spec.0 {
        let eligible = |i: &usize| match kind {
            Kind::Pairs => pairs[labels[*i] as usize].is_some(),
            Kind::Confusable => sources.confusable.contains_key(&ids[*i]),
            _ => true,
        };
        let picked = draw((kind, fraction), n, &free, eligible)?;
        free.retain(|i| !picked.contains(i));
        for &i in &picked {
            let original = labels[i];
            let (trained, parameters) = match kind {
                Kind::Uniform => {
                    let other = rng.gen_range(0..k - 1);
                    (other + i64::from(other >= original), String::new())
                }
                Kind::Adjacent => ((original + 1) % k, String::new()),
                Kind::Pairs => (pairs[original as usize].unwrap(), String::new()),
                Kind::Confusable => (sources.confusable[&ids[i]], String::new()),
                _ => (
                    original,
                    alter_image(kind, images, i, &sources.foreign, rng)?,
                ),
            };
            labels[i] = trained;
            let (id, original_label, trained_label) = (ids[i].clone(), original, trained);
            record.push(Planted {
                id,
                kind,
                original_label,
                trained_label,
                parameters,
            });
        }
    }
    let at: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    record.sort_by_key(|p| at[p.id.as_str()]);
    Ok(record)
}

/// The first examples of `free` that are `eligible`, `fraction` of all `n` training
/// examples: refused when that is none, or more than are left.
fn draw(
    (kind, fraction): (Kind, f64),
    n: usize,
    free: &[usize],
    eligible: impl Fn(&usize) -> bool,
) -> Result<Vec<usize>> {
    let want = (fraction * n as f64).round() as usize;
    if want == 0 {
        bail!(
            "--plant {}:{fraction} plants no example in {n} training examples",
            kind.name()
        );
    }
    let picked: Vec<usize> = free.iter().copied().filter(eligible).take(want).collect();
    if picked.len() < want {
        bail!(
            "--plant {}:{fraction} needs {want} examples, and only {} are left to plant",
            kind.name(),
            picked.len()
        );
    }
    Ok(picked)
}

/// Alters image `i` of `images` (NCHW uint8) by an image kind (`foreign` from `source`
/// where given); returns its parameters.
fn alter_image(
    kind: Kind,
    images: &mut Tensor,
    i: usize,
    source: &[Foreign],
    rng: &mut impl Rng,
) -> Result<String> {
    let img = images.get(i as i64); // CHW uint8
    let (new, parameters) = match kind {
        Kind::Noise => {
            let noise: Vec<f32> = (0..img.numel())
                .map(|_| gaussian(rng) * (NOISE_SIGMA * 255.0) as f32)
                .collect();
            let noise = Tensor::from_slice(&noise).view(img.size().as_slice());
            let out = (img.to_kind(Dtype::Float) + noise)
                .round()
                .clamp(0.0, 255.0);
            (out.to_kind(Dtype::Uint8), format!("sigma={NOISE_SIGMA}"))
        }
        Kind::Zoom => (zoom(&img, ZOOM), format!("factor={ZOOM}")),
        Kind::Shift => {
            let side = img.size()[1];
            let d = (SHIFT * side as f64).round() as i64;
            let (dx, dy) = [(d, 0), (-d, 0), (0, d), (0, -d)][rng.gen_range(0..4)];
            (shift(&img, dx, dy), format!("dx={dx} dy={dy}"))
        }
        Kind::Foreign if !source.is_empty() => {
            let f = &source[rng.gen_range(0..source.len())];
            (f.image.shallow_clone(), format!("source={}", f.path))
        }
        Kind::Foreign => {
            let colours: Vec<u8> = (0..6).map(|_| rng.gen()).collect();
            (checkerboard(&img.size(), &colours), "checkerboard".into())
        }
        _ => bail!("{} is not an image kind", kind.name()),
    };
    images.get(i as i64).copy_(&new);
    Ok(parameters)
}

/// What some kinds plant from: `foreign`'s images (`--plant-source`; none: a checkerboard)
/// and `confusable`'s classes (`--plant-from`), by training example id.
#[derive(Default)]
pub struct Sources {
    pub foreign: Vec<Foreign>,
    pub confusable: std::collections::HashMap<String, i64>,
}

/// The run whose final model ranks the classes of each training image for `confusable`
/// (`--plant-from RUN`, the instance-dependent kind), and what it ranked: per training
/// example, the class that model scores highest among the classes other than its label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlantFrom {
    pub run: std::path::PathBuf,
    /// Its identity, and the checkpoint used.
    pub run_id: String,
    pub checkpoint: String,
    /// (id, class) in the training split's order.
    pub classes: Vec<(String, i64)>,
}

/// An image `foreign` may plant (`--plant-source`): its path relative to the folder, and
/// its pixels resized to the dataset's images, CHW uint8.
pub struct Foreign {
    pub path: String,
    pub image: Tensor,
}

/// The images in `dir` and its sub-folders (png, jpg, jpeg; sorted by path), each resized
/// to `height` x `width` (bilinear, the aspect ratio not kept): what `foreign` draws from.
/// An unreadable folder, one without images, or an image that does not decode is refused.
pub fn read_source(dir: &Path, height: i64, width: i64) -> Result<Vec<Foreign>> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(d) = folders.pop() {
        for p in super::folder::read_dir(&d).context("--plant-source")? {
            match p.is_dir() {
                true => folders.push(p),
                false if super::folder::is_image(&p) => files.push(p),
                false => {}
            }
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "--plant-source '{}' holds no images (png, jpg or jpeg) to plant as foreign",
            dir.display()
        );
    }
    files
        .iter()
        .map(|f| {
            let img = super::folder::decode(f).context("--plant-source")?;
            let img = image::imageops::resize(
                &img,
                width as u32,
                height as u32,
                image::imageops::FilterType::Triangle,
            );
            let chw = super::images_tensor(&img.into_raw(), 1, [height, width, 3])?
                .squeeze_dim(0)
                .permute([2, 0, 1])
                .contiguous();
            let path = f
                .strip_prefix(dir)
                .unwrap_or(f)
                .to_string_lossy()
                .into_owned();
            Ok(Foreign { path, image: chw })
        })
        .collect()
}

/// A standard normal draw (Box-Muller), from the one seeded stream.
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u: f64 = 1.0 - rng.gen::<f64>();
    let v: f64 = rng.gen();
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

/// The centre 1/`factor` of a CHW uint8 image, resized back to its size bilinearly (half-
/// pixel centres, no antialiasing: upsampling), rounded to uint8.
pub fn zoom(img: &Tensor, factor: f64) -> Tensor {
    let [_, h, w] = img.size()[..] else {
        unreachable!("a CHW image")
    };
    let (ch, cw) = (
        ((h as f64 / factor).round() as i64).max(1),
        ((w as f64 / factor).round() as i64).max(1),
    );
    let (top, left) = ((h - ch) / 2, (w - cw) / 2);
    let crop = img.narrow(1, top, ch).narrow(2, left, cw);
    crop.to_kind(Dtype::Float)
        .unsqueeze(0)
        .upsample_bilinear2d([h, w], false, None, None)
        .squeeze_dim(0)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Dtype::Uint8)
}

/// A CHW uint8 image moved `dx` pixels right and `dy` down, the uncovered border black.
pub fn shift(img: &Tensor, dx: i64, dy: i64) -> Tensor {
    let [_, h, w] = img.size()[..] else {
        unreachable!("a CHW image")
    };
    let out = img.zeros_like();
    let (sh, sw) = (h - dy.abs(), w - dx.abs());
    if sh > 0 && sw > 0 {
        let from = img.narrow(1, (-dy).max(0), sh).narrow(2, (-dx).max(0), sw);
        out.narrow(1, dy.max(0), sh)
            .narrow(2, dx.max(0), sw)
            .copy_(&from);
    }
    out
}

/// A checkerboard of the two RGB colours in `colours` (6 bytes), cells of a quarter side.
fn checkerboard(size: &[i64], colours: &[u8]) -> Tensor {
    let (c, h, w) = (size[0], size[1], size[2]);
    let cell = (h / 4).max(1);
    let mut pixels = Vec::with_capacity((c * h * w) as usize);
    for ch in 0..c as usize {
        for y in 0..h {
            for x in 0..w {
                let which = ((y / cell + x / cell) % 2) as usize;
                pixels.push(colours[which * 3 + ch.min(2)]);
            }
        }
    }
    Tensor::from_slice(&pixels).view([c, h, w])
}

/// Writes the record as `planted.csv`.
pub fn write_csv(w: impl Write, record: &[Planted]) -> Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    for row in record {
        csv.serialize(row)?;
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn specs_parse_and_refuse() {
        let s: PlantSpec = "zoom:0.05,uniform:0.1".parse().unwrap();
        assert_eq!(s.0, vec![(Kind::Zoom, 0.05), (Kind::Uniform, 0.1)]);
        assert_eq!(s.to_string(), "zoom:0.05,uniform:0.1");
        for (bad, says) in [
            ("blur:0.1", "unknown kind 'blur'"),
            ("zoom:0.6,noise:0.6", "sum to"),
            ("zoom:0.1,zoom:0.2", "given twice"),
            ("zoom", "not KIND:FRACTION"),
            ("zoom:0", "in (0, 1)"),
            ("zoom:x", "not a number"),
        ] {
            let err = bad.parse::<PlantSpec>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    /// `confusable` trains with the class its source ranked, only where one was ranked.
    #[test]
    fn confusable_follows_the_ranked_classes() {
        let ids: Vec<String> = (0..100).map(|i| format!("e{i}")).collect();
        let labels: Vec<i64> = (0..100).map(|i| i % 10).collect();
        let mut trained = labels.clone();
        let mut images = Tensor::zeros([100, 3, 4, 4], (Dtype::Uint8, tch::Device::Cpu));
        // Only the first 50 images were ranked, each to (label + 3) mod 10.
        let sources = Sources {
            confusable: ids[..50]
                .iter()
                .zip(&labels)
                .map(|(id, l)| (id.clone(), (l + 3) % 10))
                .collect(),
            ..Sources::default()
        };
        let spec: PlantSpec = "confusable:0.2".parse().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let r = plant(
            &spec,
            &ids,
            &mut images,
            &mut trained,
            &names(10),
            &sources,
            &mut rng,
        )
        .unwrap();
        assert_eq!(r.len(), 20);
        for p in &r {
            assert_eq!(p.trained_label, (p.original_label + 3) % 10);
            assert!(sources.confusable.contains_key(&p.id));
        }
        let mut trained = labels.clone();
        let spec: PlantSpec = "confusable:0.6".parse().unwrap();
        let err = plant(
            &spec,
            &ids,
            &mut images,
            &mut trained,
            &names(10),
            &sources,
            &mut rng,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("needs 60 examples, and only 50 are left"),
            "{err}"
        );
    }

    /// Label kinds: exact counts, no overlap, and each kind's map.
    #[test]
    fn label_kinds_follow_their_maps() {
        let n = 200;
        let ids: Vec<String> = (0..n).map(|i| format!("train/{i:06}")).collect();
        let labels: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
        let mut trained = labels.clone();
        let mut images = Tensor::zeros([n as i64, 3, 8, 8], (Dtype::Uint8, tch::Device::Cpu));
        let spec: PlantSpec = "uniform:0.1,adjacent:0.05,pairs:0.1".parse().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let r = plant(
            &spec,
            &ids,
            &mut images,
            &mut trained,
            &names(10),
            &Sources::default(),
            &mut rng,
        )
        .unwrap();
        let count = |k: Kind| r.iter().filter(|p| p.kind == k).count();
        assert_eq!(
            (
                count(Kind::Uniform),
                count(Kind::Adjacent),
                count(Kind::Pairs)
            ),
            (20, 10, 20)
        );
        let unique: std::collections::HashSet<&str> = r.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(unique.len(), r.len(), "no example planted twice");
        let pairs = pair_map(&names(10), &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        for p in &r {
            let i = ids.iter().position(|id| *id == p.id).unwrap();
            assert_eq!((p.original_label, p.trained_label), (labels[i], trained[i]));
            match p.kind {
                Kind::Uniform => assert_ne!(p.trained_label, p.original_label),
                Kind::Adjacent => assert_eq!(p.trained_label, (p.original_label + 1) % 10),
                _ => assert_eq!(Some(p.trained_label), pairs[p.original_label as usize]),
            }
        }
        let untouched = (0..n).filter(|i| !unique.contains(ids[*i].as_str()));
        assert!(untouched.into_iter().all(|i| trained[i] == labels[i]));
    }

    #[test]
    fn cifar10_pairs_are_the_usual_ones() {
        let cifar: Vec<String> = CIFAR10.map(String::from).to_vec();
        let map = pair_map(&cifar, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        let named: Vec<(usize, i64)> = map
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .collect();
        assert_eq!(named, vec![(2, 0), (3, 5), (4, 7), (5, 3), (9, 1)]);
    }

    /// Shift by hand: a 1-channel 4x4 ramp moved one right and one up.
    #[test]
    fn shift_moves_and_fills_black() {
        let img = Tensor::arange(16, (Dtype::Uint8, tch::Device::Cpu)).view([1, 4, 4]) + 1;
        let out = Vec::<u8>::try_from(shift(&img, 1, -1).flatten(0, -1)).unwrap();
        #[rustfmt::skip]
        let want = [
            0, 5, 6, 7,
            0, 9, 10, 11,
            0, 13, 14, 15,
            0, 0, 0, 0,
        ];
        assert_eq!(out, want);
    }

    /// Zoom by hand: a 4x4 image zoomed 2x keeps the centre 2x2, each pixel spread over a
    /// 2x2 block with half-pixel bilinear weights (PIL's upsampling).
    #[test]
    fn zoom_is_a_centre_crop_resized() {
        #[rustfmt::skip]
        let px: [u8; 16] = [
            0, 0, 0, 0,
            0, 40, 80, 0,
            0, 120, 160, 0,
            0, 0, 0, 0,
        ];
        let img = Tensor::from_slice(&px).view([1, 4, 4]);
        let out = Vec::<u8>::try_from(zoom(&img, 2.0).flatten(0, -1)).unwrap();
        // Row 0 samples the crop at y = -0.25 -> clamped to 0; x at -0.25, 0.25, 0.75, 1.25.
        assert_eq!(&out[..4], &[40, 50, 70, 80]);
        assert_eq!(&out[12..], &[120, 130, 150, 160]);
    }
}
