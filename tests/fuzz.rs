//! Hostile input in bulk: for every parser a user's file reaches, seeded random and
//! mutated inputs. Every case must end without a panic or a hang, and a refusal must be a
//! one-line error naming the file. Readable scores files are also evaluated, and their
//! plots drawn, which must not panic either.
//!
//! Bounded for CI (`VOG_FUZZ_CASES`, default 150 per parser); for a long run outside CI
//! set `VOG_FUZZ_SECONDS` (per parser) and `VOG_FUZZ_SEED`, e.g.
//! `VOG_FUZZ_SECONDS=600 cargo test --release --test fuzz -- --nocapture --test-threads 7`.
//! A failing case is saved under `target/fuzz-failures/` for reproduction; `VOG_FUZZ_SHOW=1`
//! prints every refusal (to see which checks the mutations reach).
mod common;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vog::data::cifar::{self, Variant};
use vog::data::synth::{generate, SynthSpec};

/// The longest a single case may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(20);

struct Budget {
    cases: usize,
    until: Option<Instant>,
}

fn budget() -> Budget {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    Budget {
        cases: var("VOG_FUZZ_CASES").unwrap_or(150) as usize,
        until: var("VOG_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s)),
    }
}

fn seed() -> u64 {
    std::env::var("VOG_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2026)
}

/// Runs `case` until the budget is spent; each case gets its own generator (derived from
/// the seed and its number, so a failure is reproducible) and returns `Err(message)` when
/// the input was refused. Returns (cases, refused).
fn fuzz(name: &str, mut case: impl FnMut(&mut ChaCha8Rng, &Path) -> Result<(), String>) {
    let b = budget();
    let (mut n, mut refused) = (0usize, 0usize);
    let started = Instant::now();
    loop {
        let done = match b.until {
            Some(t) => Instant::now() >= t,
            None => n >= b.cases,
        };
        if done {
            break;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed() ^ (n as u64).wrapping_mul(0x9e37_79b9));
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&mut rng, dir.path())));
        let took = t0.elapsed();
        let keep = |why: &str| {
            let to = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/fuzz-failures")
                .join(format!("{name}-{n}"));
            let _ = std::fs::create_dir_all(to.parent().unwrap());
            let _ = std::process::Command::new("cp")
                .arg("-r")
                .arg(dir.path())
                .arg(&to)
                .status();
            panic!("{name} case {n}: {why} (input kept in '{}')", to.display());
        };
        match outcome {
            Err(_) => keep("panicked"),
            Ok(Err(msg)) => {
                refused += 1;
                if std::env::var("VOG_FUZZ_SHOW").is_ok() {
                    eprintln!("{name} case {n}: {msg}");
                }
                if msg.contains('\n') {
                    keep(&format!("error is not one line: {msg}"));
                }
            }
            Ok(Ok(())) => {}
        }
        if took > CASE_LIMIT {
            keep(&format!("took {took:?}"));
        }
        n += 1;
    }
    eprintln!(
        "fuzz {name}: {n} cases, {refused} refused, 0 crashes, {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Checks that a refusal names `file` (any of `names`), and turns it into the message.
fn named(e: anyhow::Error, names: &[&str]) -> String {
    let msg = format!("{e:#}");
    assert!(
        names.iter().any(|n| msg.contains(n)),
        "error does not name the file ({names:?}): {msg}"
    );
    msg
}

/// 1-4 random edits: bit flips, special bytes, truncation, deletion, insertion,
/// duplication.
fn mutate(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    for _ in 0..rng.gen_range(1..=4) {
        let len = bytes.len();
        match rng.gen_range(0..7) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                bytes[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                bytes[i] = [0u8, 0xff, 0x7f, 0x80, b'-', b'9', b'"', b'\n'][rng.gen_range(0..8)];
            }
            2 => bytes.truncate(rng.gen_range(0..=len)),
            3 if len > 1 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                bytes.drain(a..b);
            }
            4 => {
                let at = rng.gen_range(0..=len);
                let junk: Vec<u8> = (0..rng.gen_range(1..32)).map(|_| rng.gen()).collect();
                bytes.splice(at..at, junk);
            }
            5 if len > 1 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 256));
                let chunk = bytes[a..b].to_vec();
                let at = rng.gen_range(0..=bytes.len());
                bytes.splice(at..at, chunk);
            }
            _ => {
                let tokens: [&[u8]; 10] = [
                    b"NaN",
                    b"inf",
                    b"-1",
                    b"1e309",
                    b"18446744073709551616",
                    b"\xff\xfe",
                    b",",
                    b"\"",
                    b"[",
                    b"",
                ];
                let at = rng.gen_range(0..=len);
                let t = tokens[rng.gen_range(0..tokens.len())];
                bytes.splice(at..at, t.iter().copied());
            }
        }
    }
}

fn mutate_file(path: &Path, rng: &mut ChaCha8Rng) {
    let mut bytes = std::fs::read(path).unwrap();
    mutate(&mut bytes, rng);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cifar_binary_batches() {
    let data = generate(&SynthSpec::new(30, 10, 1));
    fuzz("cifar", |rng, dir| {
        cifar::write_cifar10(dir, &data).unwrap();
        let root = cifar::locate(dir, Variant::Cifar10).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let victim = &files[rng.gen_range(0..files.len())];
        if rng.gen_bool(0.1) {
            std::fs::write(victim, b"").unwrap();
        } else {
            mutate_file(victim, rng);
        }
        let name = victim.file_name().unwrap().to_string_lossy().into_owned();
        match cifar::load(dir, Variant::Cifar10) {
            Ok(d) => {
                assert!(!d.train.is_empty());
                Ok(())
            }
            Err(e) => Err(named(e, &[&name, &root.display().to_string()])),
        }
    });
}

/// A small PNG or JPEG of `w` x `h`.
fn image_bytes(rng: &mut ChaCha8Rng, w: u32, h: u32, jpeg: bool) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |_, _| image::Rgb([rng.gen(), rng.gen(), rng.gen()]));
    let mut out = std::io::Cursor::new(Vec::new());
    let format = if jpeg {
        image::ImageFormat::Jpeg
    } else {
        image::ImageFormat::Png
    };
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

#[test]
fn image_folders() {
    use std::os::unix::ffi::OsStrExt;
    fuzz("folder", |rng, dir| {
        let root = dir.join("ds");
        let mut files = Vec::new();
        for split in ["train", "test"] {
            for class in ["cat", "dog"] {
                let d = root.join(split).join(class);
                std::fs::create_dir_all(&d).unwrap();
                for i in 0..3 {
                    let jpeg = rng.gen_bool(0.5);
                    let p = d.join(format!("{i}.{}", if jpeg { "jpg" } else { "png" }));
                    std::fs::write(&p, image_bytes(rng, 8, 8, jpeg)).unwrap();
                    files.push(p);
                }
            }
        }
        let victim = files[rng.gen_range(0..files.len())].clone();
        let class_dir = victim.parent().unwrap().to_path_buf();
        match rng.gen_range(0..8) {
            0 => std::fs::write(&victim, b"").unwrap(),
            1 => {
                let mut b = std::fs::read(&victim).unwrap();
                b.truncate(rng.gen_range(0..b.len()));
                std::fs::write(&victim, b).unwrap();
            }
            2 => std::fs::write(&victim, image_bytes(rng, 9, 7, false)).unwrap(),
            3 => {
                let name = std::ffi::OsStr::from_bytes(b"bad\xff\xfe.png");
                std::fs::write(class_dir.join(name), image_bytes(rng, 8, 8, false)).unwrap();
            }
            4 => {
                std::os::unix::fs::symlink("loop-b.png", class_dir.join("loop-a.png")).unwrap();
                std::os::unix::fs::symlink("loop-a.png", class_dir.join("loop-b.png")).unwrap();
                std::os::unix::fs::symlink(&root, class_dir.join("up")).unwrap();
            }
            5 => {
                std::fs::remove_dir_all(&class_dir).unwrap();
                std::fs::write(&class_dir, b"not a folder").unwrap();
            }
            _ => mutate_file(&victim, rng),
        }
        match vog::data::folder::load(&root) {
            Ok(d) => {
                assert!(!d.train.is_empty());
                Ok(())
            }
            Err(e) => Err(named(e, &[&root.display().to_string()])),
        }
    });
}

#[test]
fn epoch_specs() {
    let valid = [
        "paper",
        "all",
        "first:3,last:3",
        "every:10",
        "1,2,3,348-350",
        "5-9,every:2",
    ];
    fuzz("epoch-spec", |rng, _| {
        let mut spec = valid[rng.gen_range(0..valid.len())].as_bytes().to_vec();
        if rng.gen_bool(0.3) {
            let alphabet = b"0123456789,-: everyfirstlastpaperall";
            spec = (0..rng.gen_range(0..24))
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
        } else {
            mutate(&mut spec, rng);
        }
        let spec = String::from_utf8_lossy(&spec).into_owned();
        let max = [1usize, 3, 350, 100_000][rng.gen_range(0..4)];
        match vog::epochs::parse_epochs(&spec, max) {
            Ok(epochs) => {
                assert!(
                    epochs.iter().all(|&e| (1..=max).contains(&e)),
                    "{spec}: {epochs:?}"
                );
                assert!(epochs.windows(2).all(|w| w[0] < w[1]), "{spec}: {epochs:?}");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    });
}

#[test]
fn toml_configs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let sources = [
        "cifar10.toml",
        "paper-cifar10-noise20.toml",
        "paper-cifar100.toml",
    ];
    fuzz("toml", |rng, dir| {
        let src = sources[rng.gen_range(0..sources.len())];
        let path = dir.join(src);
        std::fs::copy(root.join(src), &path).unwrap();
        mutate_file(&path, rng);
        let shown = path.display().to_string();
        if src == "cifar10.toml" {
            let read = vog::config::Hyper::from_file(&path).and_then(|h| {
                let origins = vog::origin::Origins::file(&path, "");
                let spec = vog::data::DatasetSpec::Synth {
                    train: 10,
                    test: 10,
                    seed: 0,
                    atypical: 0.0,
                };
                vog::config::TrainConfig::new(
                    spec,
                    h,
                    Default::default(),
                    tch::Device::Cpu,
                    &origins,
                )
            });
            return read.map(|_| ()).map_err(|e| named(e, &[&shown]));
        }
        let read = vog::experiment::ExperimentFile::read(&path)
            .and_then(|f| f.resolve(&Default::default(), &path));
        read.map(|_| ()).map_err(|e| named(e, &[&shown]))
    });
}

/// A checkpoint of a width-2 network, and that network's variable store.
fn checkpoint(dir: &Path) -> PathBuf {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _net = vog::model::ResNet::new(&vs.root(), 10, 2);
    let path = dir.join("epoch-0001.safetensors");
    vs.save(&path).unwrap();
    path
}

/// Header edits that declare absurd sizes, offsets, shapes or dtypes.
fn mutate_header(bytes: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let text = String::from_utf8_lossy(&bytes[8..8 + header_len]).into_owned();
    let edited = match rng.gen_range(0..5) {
        0 => text.replacen(
            "\"F32\"",
            ["\"F64\"", "\"I64\"", "\"U8\"", "\"XX\""][rng.gen_range(0..4)],
            1,
        ),
        1 => text.replacen("[", "[4000000000,4000000000,", 1),
        2 => text.replacen(
            "\"data_offsets\":[0,",
            "\"data_offsets\":[18446744073709551000,",
            1,
        ),
        3 => {
            let mut t = text.clone();
            if let Some(i) = t.find("data_offsets\":[") {
                t.insert_str(i + 15, "9999999999");
            }
            t
        }
        _ => text.replacen("{", "{\"__metadata__\":{\"a\":1},", 1),
    };
    let mut out = Vec::new();
    if rng.gen_bool(0.2) {
        out.extend_from_slice(&u64::MAX.to_le_bytes());
    } else {
        out.extend_from_slice(&(edited.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(edited.as_bytes());
    out.extend_from_slice(&bytes[8 + header_len..]);
    *bytes = out;
}

#[test]
fn safetensors_checkpoints() {
    let template = tempfile::tempdir().unwrap();
    let good = std::fs::read(checkpoint(template.path())).unwrap();
    fuzz("safetensors", |rng, dir| {
        let path = dir.join("epoch-0001.safetensors");
        let mut bytes = good.clone();
        if rng.gen_bool(0.5) {
            mutate_header(&mut bytes, rng);
        } else {
            mutate(&mut bytes, rng);
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _net = vog::model::ResNet::new(&vs.root(), 10, 2);
        vog::run_dir::load_checkpoint(&mut vs, &path)
            .map_err(|e| named(e, &["epoch-0001.safetensors"]))
    });
}

/// A real scores file (CSV and sidecar) of a tiny run, made once.
fn scores_template() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    common::train_synth(
        &run,
        &[
            "--train-subset",
            "60",
            "--test-subset",
            "40",
            "--width",
            "2",
            "--epochs",
            "2",
            "--save-epochs",
            "all",
            "--label-noise",
            "0.3",
        ],
    );
    let out = dir.path().join("s.csv");
    common::succeed(
        common::vog()
            .args([
                "score",
                "--quiet",
                "--split",
                "both",
                "--target",
                "logit,prob",
                "--run",
            ])
            .arg(&run)
            .arg("--out")
            .arg(&out),
    );
    (dir, out)
}

/// The CSV with random cells set to extreme values and rows dropped or repeated.
fn odd_values(csv: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let text = String::from_utf8_lossy(csv);
    let mut lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let header = lines.remove(0);
    let numeric: Vec<usize> = (0..header.len())
        .filter(|&i| {
            header[i].starts_with("vog")
                || [
                    "loss",
                    "el2n",
                    "prob",
                    "label",
                    "predicted",
                    "trained_label",
                ]
                .contains(&header[i].as_str())
        })
        .collect();
    let floats = ["1e308", "-1e308", "0", "5e-324", "1", "-0", "9", "1e-300"];
    let ints = ["0", "1", "9", "99", "-1"];
    let value = |c: usize, rng: &mut ChaCha8Rng| {
        let pool: &[&str] = if header[c].starts_with("vog") || header[c].len() == 4 {
            &floats
        } else {
            &ints
        };
        pool[rng.gen_range(0..pool.len())].to_string()
    };
    for _ in 0..rng.gen_range(1..40) {
        let (r, c) = (
            rng.gen_range(0..lines.len()),
            numeric[rng.gen_range(0..numeric.len())],
        );
        lines[r][c] = value(c, rng);
    }
    if rng.gen_bool(0.3) {
        // One value for a whole column.
        let c = numeric[rng.gen_range(0..numeric.len())];
        let v = value(c, rng);
        for l in &mut lines {
            l[c] = v.clone();
        }
    }
    match rng.gen_range(0..3) {
        0 => lines.truncate(rng.gen_range(1..=lines.len())),
        1 => {
            let r = lines[rng.gen_range(0..lines.len())].clone();
            lines.push(r);
        }
        _ => {}
    }
    let mut out = header.join(",");
    for l in lines {
        out.push('\n');
        out.push_str(&l.join(","));
    }
    out.push('\n');
    out.into_bytes()
}

/// The sidecar `side` with its `csv` digest set to that of `csv` (unchanged if it is not JSON).
fn with_digest_of(side: &[u8], csv: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(side) else {
        return side.to_vec();
    };
    if let Some(d) = v.get_mut("csv").and_then(|d| d.as_object_mut()) {
        d.insert("size".into(), csv.len().into());
        d.insert(
            "sha256".into(),
            format!("{:x}", sha2::Sha256::digest(csv)).into(),
        );
    }
    serde_json::to_vec_pretty(&v).unwrap()
}

#[test]
fn scores_csv_and_sidecar() {
    let (_keep, template) = scores_template();
    let csv = std::fs::read(&template).unwrap();
    let side = std::fs::read(template.with_extension("json")).unwrap();
    let mut plotted = 0;
    fuzz("scores", |rng, dir| {
        let path = dir.join("s.csv");
        let (mut c, mut s) = (csv.clone(), side.clone());
        match rng.gen_range(0..6) {
            0 => mutate(&mut s, rng),
            // Parsable but strange: extreme or equal values, rows gone or repeated.
            4 | 5 => c = odd_values(&c, rng),
            1 => {
                mutate(&mut c, rng);
                mutate(&mut s, rng);
            }
            _ => mutate(&mut c, rng),
        }
        // Mostly the sidecar keeps recording the (mutated) CSV's digest, so the parser and
        // the evaluator behind the digest check see the mutation; else the check refuses it.
        if rng.gen_bool(0.8) {
            s = with_digest_of(&s, &c);
        }
        std::fs::write(&path, &c).unwrap();
        std::fs::write(path.with_extension("json"), &s).unwrap();
        let e = vog::eval::Evaluated::read(&path).map_err(|e| named(e, &["s.csv", "s.json"]))?;
        // What reads must evaluate and draw without a panic; drawing is slow, so only
        // every few cases.
        if plotted % 5 == 0 {
            let out = dir.join("eval");
            vog::eval::write_outputs(&out, &e.evaluation, &e.file, None)
                .map_err(|e| format!("{e:#}"))?;
        }
        plotted += 1;
        let column = ["vog", "vog_prob", "loss"][rng.gen_range(0..3)];
        let scored = vog::scores::scored(&e.file, column).map_err(|e| format!("{e:#}"))?;
        let _ = vog::scores::per_class(&scored);
        Ok(())
    });
}

#[test]
fn label_noise_csv() {
    let good = b"id,original_label,assigned_label\ntrain/000001,3,5\ntrain/000002,5,3\n".to_vec();
    fuzz("label-noise", |rng, dir| {
        let path = dir.join("label_noise.csv");
        let mut bytes = good.clone();
        mutate(&mut bytes, rng);
        std::fs::write(&path, &bytes).unwrap();
        vog::data::noise::read_file(&path)
            .map(|_| ())
            .map_err(|e| named(e, &["label_noise.csv"]))
    });
}
