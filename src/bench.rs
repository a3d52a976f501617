//! `vog bench`: the throughput of training and of scoring, on synthetic images held in
//! memory (no dataset needed), through the very code `vog train` and `vog score` run
//! (`train::Trainer`, `scoring::Scorer`). A warm-up pass is excluded (oneDNN and cuDNN pick
//! their kernels on first use). `scripts/bench_pytorch.py` does the same work in eager
//! PyTorch; `scripts/bench.sh` prints the two side by side.
use crate::config::Hyper;
use crate::data::stream::{self, StreamSpec};
use crate::data::transform::Normalization;
use crate::data::{DatasetSpec, SplitKind};
use crate::export::Export;
use crate::info::Cpu;
use crate::model::ResNet;
use crate::precision::Precision;
use crate::progress::{NoTask, Reporter};
use crate::rng;
use crate::scores::SplitChoice;
use crate::scoring::{ScoreOptions, Scorer};
use crate::train::Trainer;
use crate::variance::{Target, Variant};
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// Which work is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Work {
    /// SGD steps in training mode: images per second.
    Train,
    /// Input gradients of the true-class logit at K checkpoints: image x checkpoint per
    /// second.
    Score,
    /// Decoding the images of `--data` (a folder or manifest) into batches, as
    /// `vog score --model` streams them: images per second.
    Decode,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub what: Vec<Work>,
    pub width: i64,
    pub batch_size: usize,
    pub precisions: Vec<Precision>,
    pub device: Device,
    /// K, for scoring.
    pub checkpoints: usize,
    /// Measured time per row, after the warm-up.
    pub seconds: f64,
    /// The images `Work::Decode` reads (its test split where it has two).
    pub data: Option<StreamSpec>,
}

/// The time measured per row may lie in this range, in seconds: an hour is longer than any
/// measurement needs, and NaN or infinity would never end.
const MIN_SECONDS: f64 = 0.01;
const MAX_SECONDS: f64 = 3600.0;

/// Batches of synthetic images per pass (one pass is the warm-up).
const BATCHES_PER_PASS: usize = 4;
const CLASSES: i64 = 10;

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub what: Work,
    pub precision: Precision,
    pub width: i64,
    pub batch_size: usize,
    pub device: String,
    pub threads: i32,
    /// K (scoring only).
    pub checkpoints: Option<usize>,
    /// Images per second (train, decode) or image x checkpoint per second (score).
    pub rate: f64,
    pub unit: &'static str,
    /// Images processed in the measured time (x K for scoring).
    pub work: u64,
    pub seconds: f64,
    /// Peak resident memory of the process during this row, MiB (CPU only).
    pub peak_rss_mib: Option<f64>,
    /// The processor, whatever the device: bf16's speed on a CPU depends on it.
    pub cpu: Cpu,
}

/// The rows of one `vog bench`, as it prints them.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct BenchRows(pub Vec<BenchRow>);

/// Runs every (work, precision) pair of `cfg`, reporting each as it finishes.
pub fn run(cfg: &BenchConfig, reporter: &dyn Reporter) -> Result<Vec<BenchRow>> {
    if cfg.width < 1 || cfg.batch_size < 1 || cfg.checkpoints < 1 {
        bail!("--width, --batch-size and --checkpoints must be at least 1");
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&cfg.seconds) {
        bail!("--seconds must lie between {MIN_SECONDS} and {MAX_SECONDS} (it is the time measured per row)");
    }
    if cfg.data.is_some() && !cfg.what.contains(&Work::Decode) {
        bail!("--data is what --what decode reads; the other measurements use synthetic images");
    }
    crate::device::tune_for(cfg.device, false);
    let mut rows = Vec::new();
    for &what in &cfg.what {
        for &precision in &cfg.precisions {
            reset_peak_rss();
            let row = match what {
                Work::Train => bench_train(cfg, precision)?,
                Work::Score => bench_score(cfg, precision)?,
                Work::Decode => bench_decode(cfg, precision)?,
            };
            reporter.info(&format!(
                "{} {} width {} batch {}: {:.1} {}",
                name(what),
                precision,
                cfg.width,
                cfg.batch_size,
                row.rate,
                row.unit
            ));
            rows.push(row);
        }
    }
    Ok(rows)
}

fn name(w: Work) -> &'static str {
    match w {
        Work::Train => "train",
        Work::Score => "score",
        Work::Decode => "decode",
    }
}

fn row(cfg: &BenchConfig, what: Work, precision: Precision) -> BenchRow {
    BenchRow {
        what,
        precision,
        width: cfg.width,
        batch_size: cfg.batch_size,
        device: crate::device::name(cfg.device),
        threads: tch::get_num_threads(),
        checkpoints: (what == Work::Score).then_some(cfg.checkpoints),
        rate: 0.0,
        unit: match what {
            Work::Train => "img/s",
            Work::Score => "image x checkpoint/s",
            Work::Decode => "img/s",
        },
        work: 0,
        seconds: 0.0,
        peak_rss_mib: None,
        cpu: Cpu::detect(),
    }
}

/// Synthetic NCHW uint8 images and i64 labels, seeded.
fn synthetic(n: usize, device: Device) -> (Tensor, Tensor) {
    tch::manual_seed(rng::torch_seed(0));
    let images =
        Tensor::randint(256, [n as i64, 3, 32, 32], (Kind::Int64, device)).to_kind(Kind::Uint8);
    let labels = Tensor::randint(CLASSES, [n as i64], (Kind::Int64, device));
    (images, labels)
}

/// Repeats `pass` (returning the work it did) until `seconds` have passed, after one
/// warm-up pass; returns (work, seconds).
fn timed(seconds: f64, mut pass: impl FnMut() -> u64) -> (u64, f64) {
    pass();
    let started = Instant::now();
    // At least one measured pass, however short the time asked for.
    let mut work = pass();
    while started.elapsed().as_secs_f64() < seconds {
        work += pass();
    }
    (work, started.elapsed().as_secs_f64())
}

fn bench_train(cfg: &BenchConfig, precision: Precision) -> Result<BenchRow> {
    let mut out = row(cfg, Work::Train, precision);
    let mut hyper = Hyper::defaults_for(&DatasetSpec::Cifar10 { dir: ".".into() });
    hyper.width = cfg.width;
    hyper.batch_size = cfg.batch_size;
    hyper.augment = false;
    hyper.precision = precision;
    let mut trainer = Trainer::new(cfg.device, CLASSES as usize, &hyper, Normalization::CIFAR10)?;
    let n = cfg.batch_size * BATCHES_PER_PASS;
    let (images, labels) = synthetic(n, cfg.device);
    let mut order = rng::stream(0, "bench");
    let lrs = vec![hyper.lr; BATCHES_PER_PASS];
    let (work, seconds) = timed(cfg.seconds, || {
        trainer.train_epoch(&images, &labels, &lrs, &mut order, &NoTask, false);
        n as u64
    });
    finish(&mut out, work, seconds, cfg.device);
    Ok(out)
}

/// One pass over the data's images (up to `seconds`), the first batch excluded.
fn bench_decode(cfg: &BenchConfig, precision: Precision) -> Result<BenchRow> {
    let mut out = row(cfg, Work::Decode, precision);
    let Some(spec) = &cfg.data else {
        bail!("--what decode needs --data: an image folder or a CSV manifest");
    };
    let listing = match spec.list(&[SplitKind::Test]) {
        Ok(l) => l,
        Err(_) => spec.list(&[SplitKind::Train])?,
    };
    let paths: Vec<_> = listing.entries().map(|(_, e)| e.path.clone()).collect();
    let first = stream::load_image(&paths[0], &spec.preprocess)?;
    let batches = stream::batches(paths, spec.preprocess, first.dimensions(), cfg.batch_size);
    batches.recv()??;
    let started = Instant::now();
    let mut work = 0;
    for batch in batches {
        work += batch?.images.size()[0] as u64;
        if started.elapsed().as_secs_f64() >= cfg.seconds {
            break;
        }
    }
    finish(&mut out, work, started.elapsed().as_secs_f64(), Device::Cpu);
    Ok(out)
}

fn bench_score(cfg: &BenchConfig, precision: Precision) -> Result<BenchRow> {
    let mut out = row(cfg, Work::Score, precision);
    let stores: Vec<(VarStore, ResNet)> = (0..cfg.checkpoints)
        .map(|k| {
            tch::manual_seed(k as i64);
            let mut vs = VarStore::new(cfg.device);
            let net = ResNet::new(&vs.root(), CLASSES, cfg.width);
            precision.cast(&mut vs);
            vs.freeze();
            (vs, net)
        })
        .collect();
    let n = cfg.batch_size * BATCHES_PER_PASS;
    let (images, labels) = synthetic(n, Device::Cpu);
    let labels = Vec::<i64>::try_from(&labels)?;
    let options = ScoreOptions {
        split: SplitChoice::Test,
        // Scores are measured, never written.
        out: PathBuf::new(),
        batch_size: cfg.batch_size,
        device: cfg.device,
        targets: vec![Target::Logit],
        variant: Variant::default(),
        precision,
    };
    let scorer = Scorer {
        models: stores.iter().map(|(_, m)| m as &dyn ModuleT).collect(),
        normalizer: Normalization::CIFAR10.on(cfg.device),
        options: &options,
    };
    let (work, seconds) = timed(cfg.seconds, || {
        scorer.score(&images, &labels, &NoTask);
        (n * cfg.checkpoints) as u64
    });
    finish(&mut out, work, seconds, cfg.device);
    Ok(out)
}

fn finish(out: &mut BenchRow, work: u64, seconds: f64, device: Device) {
    out.work = work;
    out.seconds = seconds;
    out.rate = work as f64 / seconds;
    out.peak_rss_mib = (device == Device::Cpu).then(peak_rss_mib).flatten();
}

/// Resets the kernel's peak-RSS counter of this process (Linux; ignored elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last reset, MiB (`VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The rows as an aligned text table.
impl Export for BenchRows {
    /// A header naming the CPU, then one line per row.
    fn write_table(&self, w: &mut dyn std::io::Write) -> Result<()> {
        if let Some(first) = self.0.first() {
            writeln!(w, "cpu: {}", first.cpu)?;
        }
        write_table(w, &self.0)
    }
}

fn write_table(w: &mut dyn std::io::Write, rows: &[BenchRow]) -> Result<()> {
    writeln!(
        w,
        "{:<6} {:<5} {:>5} {:>5} {:>3} {:>7} {:<6} {:>12}  {:<22} {:>9}",
        "what", "prec", "width", "batch", "K", "threads", "device", "rate", "unit", "peak MiB"
    )?;
    for r in rows {
        let rate = format!("{:.1}", r.rate);
        let k = r.checkpoints.map_or("-".into(), |k| k.to_string());
        let rss = r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}"));
        writeln!(
            w,
            "{:<6} {:<5} {:>5} {:>5} {:>3} {:>7} {:<6} {:>12}  {:<22} {:>9}",
            name(r.what),
            r.precision.name(),
            r.width,
            r.batch_size,
            k,
            r.threads,
            r.device,
            rate,
            r.unit,
            rss,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_both_kinds_of_work() {
        let cfg = BenchConfig {
            what: vec![Work::Train, Work::Score],
            width: 2,
            batch_size: 8,
            precisions: vec![Precision::Fp32, Precision::Bf16],
            device: Device::Cpu,
            checkpoints: 2,
            seconds: 0.05,
            data: None,
        };
        let rows = run(&cfg, &crate::progress::Silent).unwrap();
        assert_eq!(rows.len(), 4);
        for r in &rows {
            assert!(r.work > 0 && r.rate > 0.0);
            assert_eq!(r.work % 8, 0);
        }
        assert_eq!(rows[2].checkpoints, Some(2));
        let mut table = Vec::new();
        write_table(&mut table, &rows).unwrap();
        let text = String::from_utf8(table).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("image x checkpoint/s"));
    }
}
