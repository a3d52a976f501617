//! Datasets end to end: CIFAR-format files written by `vog data synth`, image folders of
//! PNG and JPEG files, and the errors bad files give.
mod common;
use common::{vog, vog_fails, write_image};
use std::path::Path;
use vog::data::cifar::{self, Variant};
use vog::data::synth::{generate, SynthSpec};
use vog::data::{folder, Dataset};

fn write_synth(dir: &Path, train: usize, test: usize) {
    vog()
        .args([
            "data",
            "synth",
            "--train",
            &train.to_string(),
            "--test",
            &test.to_string(),
        ])
        .args(["--seed", "4", "--out"])
        .arg(dir)
        .assert()
        .success();
}

fn pixels(d: &Dataset) -> Vec<u8> {
    Vec::<u8>::try_from(d.train.images.flatten(0, -1)).unwrap()
}

#[test]
fn cifar_files_round_trip_exact_pixels_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    write_synth(dir.path(), 103, 20);
    let read = cifar::load(dir.path(), Variant::Cifar10).unwrap();
    let made = generate(&SynthSpec::new(103, 20, 4));
    assert_eq!(read.class_names, made.class_names);
    assert_eq!(read.train.labels, made.train.labels);
    assert_eq!(pixels(&read), pixels(&made));
    assert_eq!(read.train.ids[102], "train/000102");
    assert_eq!(read.test.as_ref().unwrap().ids[0], "test/000000");
    assert_eq!(read.test.unwrap().labels, made.test.unwrap().labels);

    let run = dir.path().join("run");
    vog()
        .args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(dir.path())
        .args([
            "--width", "2", "--epochs", "1", "--device", "cpu", "--quiet", "--out",
        ])
        .arg(&run)
        .assert()
        .success();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["normalization"]["mean"][0], 0.4914);
    assert_eq!(m["config"]["dataset"]["kind"], "cifar10");
}

#[test]
fn cifar100_files_keep_fine_and_coarse_labels() {
    let dir = tempfile::tempdir().unwrap();
    let px = vec![9u8; 3 * cifar::IMAGE_BYTES];
    for name in ["train.bin", "test.bin"] {
        let mut buf = Vec::new();
        cifar::write_records(
            &mut buf,
            Variant::Cifar100,
            &px,
            &[0, 57, 99],
            Some(&[4, 19, 0]),
        )
        .unwrap();
        std::fs::write(dir.path().join(name), buf).unwrap();
    }
    let names: String = (0..100).map(|i| format!("c{i}\n")).collect();
    std::fs::write(dir.path().join("fine_label_names.txt"), names).unwrap();
    let d = cifar::load(dir.path(), Variant::Cifar100).unwrap();
    assert_eq!(d.train.labels, vec![0, 57, 99]);
    assert_eq!(d.train.coarse_labels.unwrap(), vec![4, 19, 0]);
    assert_eq!(d.class_names[57], "c57");
}

#[test]
fn broken_cifar_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = dir.path().join("run");
    let train = [
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        data,
        "--epochs",
        "1",
        "--out",
    ];
    let train: Vec<&str> = train
        .iter()
        .copied()
        .chain([out.to_str().unwrap()])
        .collect();

    let err = vog_fails(&[
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        "/no/such",
        "--out",
        "x",
    ]);
    assert!(
        err.contains("'/no/such' does not exist") && err.contains("vog download"),
        "{err}"
    );
    let err = vog_fails(&train);
    assert!(err.contains("holds no cifar10 binary files"), "{err}");

    write_synth(dir.path(), 50, 10);
    let batch = dir.path().join("data_batch_3.bin");
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() - 10]).unwrap();
    let err = vog_fails(&train);
    assert!(
        err.contains("data_batch_3.bin") && err.contains("not a whole number"),
        "{err}"
    );

    let mut fixed = bytes.clone();
    fixed[3073] = 42;
    std::fs::write(&batch, fixed).unwrap();
    let err = vog_fails(&train);
    assert!(
        err.contains("data_batch_3.bin: record 1 has label 42"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn image_folders_read_png_and_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a0 = write_image(&root.join("train/bird/a.png"), 8, 6, 1);
    write_image(&root.join("train/bird/b.jpg"), 8, 6, 2);
    let c0 = write_image(&root.join("train/ant/x.PNG"), 8, 6, 3);
    write_image(&root.join("test/bird/t.jpeg"), 8, 6, 4);
    // Every file is used or refused by name: a note in a class folder is refused.
    std::fs::write(root.join("train/bird/notes.txt"), "a note").unwrap();
    let err = format!("{:#}", folder::load(root).unwrap_err());
    assert!(
        err.contains("train/bird/notes.txt") && err.contains("not a png or jpeg"),
        "{err}"
    );
    std::fs::remove_file(root.join("train/bird/notes.txt")).unwrap();

    let d = folder::load(root).unwrap();
    assert_eq!(d.class_names, vec!["ant", "bird"]);
    assert_eq!(
        d.train.ids,
        vec!["train/ant/x.PNG", "train/bird/a.png", "train/bird/b.jpg"]
    );
    assert_eq!(d.train.labels, vec![0, 1, 1]);
    assert_eq!(d.train.images.size(), vec![3, 3, 6, 8]);
    let test = d.test.unwrap();
    assert_eq!(
        (test.ids[0].as_str(), test.labels[0]),
        ("test/bird/t.jpeg", 1)
    );
    // PNG pixels survive exactly, converted from HWC to CHW.
    for (i, img) in [(0, &c0), (1, &a0)] {
        let t = d.train.images.get(i);
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                let v = t.int64_value(&[c as i64, y as i64, x as i64]);
                assert_eq!(v, p[c] as i64, "image {i} pixel ({x},{y}) channel {c}");
            }
        }
    }
}

#[test]
fn image_folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_image(&root.join("train/a/1.png"), 8, 8, 1);
    write_image(&root.join("train/b/1.png"), 8, 8, 1);
    write_image(&root.join("train/b/2.png"), 9, 8, 1);
    let err = format!("{:#}", folder::load(root).unwrap_err());
    assert!(
        err.contains("train/b/2.png") && err.contains("9x8"),
        "{err}"
    );

    std::fs::remove_file(root.join("train/b/2.png")).unwrap();
    std::fs::write(root.join("train/b/3.png"), b"not an image").unwrap();
    let err = format!("{:#}", folder::load(root).unwrap_err());
    assert!(err.contains("train/b/3.png"), "{err}");

    std::fs::remove_file(root.join("train/b/3.png")).unwrap();
    std::fs::create_dir_all(root.join("train/c")).unwrap();
    let out = dir.path().join("run");
    let err = vog_fails(&[
        "train",
        "--dataset",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("class folder") && err.contains("train/c"),
        "{err}"
    );
    assert!(!out.exists());

    let err = vog_fails(&[
        "train",
        "--dataset",
        root.join("train/a").to_str().unwrap(),
        "--out",
        "x",
    ]);
    assert!(err.contains("has no train/ folder"), "{err}");

    // A single class is refused before any training.
    let single = dir.path().join("single");
    write_image(&single.join("train/only/1.png"), 8, 8, 1);
    write_image(&single.join("train/only/2.png"), 8, 8, 2);
    let err = vog_fails(&[
        "train",
        "--dataset",
        single.to_str().unwrap(),
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("1 class(es)") && err.contains("at least two"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn trains_on_an_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("imgs");
    for class in ["cat", "dog"] {
        for i in 0..6u8 {
            write_image(&root.join(format!("train/{class}/{i}.png")), 16, 16, i * 40);
        }
        write_image(&root.join(format!("test/{class}/0.jpg")), 16, 16, 7);
    }
    let run = dir.path().join("run");
    vog()
        .args([
            "train",
            "--dataset",
            root.to_str().unwrap(),
            "--width",
            "2",
            "--epochs",
            "2",
        ])
        .args(["--batch-size", "4", "--device", "cpu", "--quiet", "--out"])
        .arg(&run)
        .assert()
        .success();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        m["dataset"]["class_names"],
        serde_json::json!(["cat", "dog"])
    );
    assert_eq!(m["dataset"]["image_shape"], serde_json::json!([3, 16, 16]));
    assert_eq!(m["config"]["dataset"]["kind"], "folder");
    // Folder normalization comes from the training images, not CIFAR's constants.
    assert_ne!(m["normalization"]["mean"][0], 0.4914);
}
