//! The GPU check's CPU dry run (`DRY_RUN=1 DEVICE=cpu scripts/gpu-check.sh 1,2,3,4,5`): the
//! script that spends a rationed GPU window must not fail there for a reason a CPU shows.
//! Every stage exits 0, every summary line has the form the script states, and the output
//! folder holds `summary.txt` and `logs.tar.gz` only (the window returns 8 files at most).
use std::path::Path;
use std::process::Command;

/// `STAGE NAME: VALUE (expect EXPECTATION) ok|FAILED|seen|skipped`, as the script's header
/// says.
fn well_formed(line: &str) -> bool {
    let Some((stage, rest)) = line.split_once(' ') else {
        return false;
    };
    let Some((name, rest)) = rest.split_once(": ") else {
        return false;
    };
    let verdict = rest.rsplit(' ').next().unwrap_or("");
    ["1", "2", "3", "4", "5"].contains(&stage)
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && rest.contains(" (expect ")
        && rest.trim_end_matches(verdict).trim_end().ends_with(')')
        && ["ok", "FAILED", "seen", "skipped"].contains(&verdict)
}

#[test]
fn reads_summary_lines() {
    assert!(well_formed(
        "2 vog-bf16-vs-fp32-spearman: 0.99810 (expect at least 0.99) ok"
    ));
    assert!(well_formed(
        "1 stage: exit 0 in 3 s (expect exit 0 within 420 s) ok"
    ));
    assert!(well_formed(
        "3 stage: not started: 41 s of the 570 s budget left (expect at least 80 s left to start) skipped"
    ));
    assert!(!well_formed("2 vog: 0.9 ok"));
    assert!(!well_formed("2 vog: 0.9 (expect 1) maybe"));
    assert!(!well_formed("6 x: 1 (expect 1) ok"));
    assert!(!well_formed("2 Bad Name: 1 (expect 1) ok"));
}

/// The dry run of `stages` into `out` with `settings` (environment) on top of the dry-run
/// ones: its exit, its summary and stderr (for messages), and the files it left in `out`.
fn dry_run(
    stages: &str,
    out: &Path,
    settings: &[(&str, &str)],
) -> (std::process::ExitStatus, String, String, Vec<String>) {
    let python = std::env::var("VOG_PYTHON").expect(
        "VOG_PYTHON is unset: run the tests through scripts/test.sh (it sources scripts/env.sh)",
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new("bash")
        .arg(root.join("scripts/gpu-check.sh"))
        .arg(stages)
        .arg(out)
        .env("DRY_RUN", "1")
        .env("DEVICE", "cpu")
        .env("VOG", env!("CARGO_BIN_EXE_vog"))
        .env("PYTHON", &python)
        .env("STAGE_SECONDS", "300")
        // Synthetic data even in a checkout that holds the CIFAR archive for GPU runs.
        .env("DATA", "/nonexistent/cifar10-jpg.tar.gz")
        .envs(settings.iter().copied())
        .output()
        .unwrap();
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    let mut files: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    (run.status, summary, stderr, files)
}

#[test]
fn the_dry_run_passes_every_stage_with_two_files() {
    let out = tempfile::tempdir().unwrap();
    let (status, summary, stderr, files) = dry_run("1,2,3,4,5", out.path(), &[]);
    let said = format!("{summary}\nstderr: {stderr}");
    assert!(status.success(), "{said}");
    assert_eq!(files, ["logs.tar.gz", "summary.txt"], "{said}");
    let lines: Vec<&str> = summary.lines().collect();
    for line in &lines {
        assert!(well_formed(line), "malformed summary line '{line}'\n{said}");
        assert!(!line.ends_with(" FAILED"), "{said}");
    }
    for stage in 1..=5 {
        let end = format!("{stage} stage: exit 0 in ");
        assert!(
            lines.iter().any(|l| l.starts_with(&end)),
            "stage {stage} did not end with exit 0\n{said}"
        );
    }
    // The figures the GPU window is for are there (measured here on a CPU).
    for name in [
        "deterministic-kill-resume-identical",
        "vog-device-vs-cpu-max-rel",
        "vog-bf16-vs-fp32-spearman",
        "train-fp32-img-per-s",
        "score-k6-b32-image-x-checkpoint-per-s",
        "score-k10-b64-image-x-checkpoint-per-s",
        "as-run-epoch-seconds",
        "bench-rows",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&format!(" {name}: "))),
            "no figure {name}\n{said}"
        );
    }
}

/// A command the device tool kills at its limit returns only what it wrote: a stage that
/// cannot fit what is left of the budget is not started, and says so.
#[test]
fn stages_past_the_budget_are_skipped_and_named() {
    let out = tempfile::tempdir().unwrap();
    let settings = [("BUDGET_SECONDS", "30"), ("MIN_STAGE_SECONDS", "600")];
    let (status, summary, stderr, files) = dry_run("1,3", out.path(), &settings);
    let said = format!("{summary}\nstderr: {stderr}");
    assert_eq!(status.code(), Some(1), "{said}");
    assert_eq!(files, ["logs.tar.gz", "summary.txt"], "{said}");
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    for (line, stage) in lines.iter().zip(["1", "3"]) {
        assert!(well_formed(line), "{said}");
        assert!(
            line.starts_with(&format!("{stage} stage: not started: ")),
            "{said}"
        );
        assert!(line.ends_with(" skipped"), "{said}");
    }
    assert!(
        stderr.contains("run them next: bash scripts/gpu-check.sh 1,3 OUT"),
        "{said}"
    );
}

/// A stage past its own timeout is killed with what it started, and recorded as timed out.
#[test]
fn a_stage_past_its_timeout_is_recorded_as_timed_out() {
    let out = tempfile::tempdir().unwrap();
    let (status, summary, stderr, files) = dry_run("2", out.path(), &[("STAGE_SECONDS", "2")]);
    let said = format!("{summary}\nstderr: {stderr}");
    assert_eq!(status.code(), Some(1), "{said}");
    assert_eq!(files, ["logs.tar.gz", "summary.txt"], "{said}");
    let last = summary.lines().last().unwrap_or("");
    assert!(well_formed(last), "{said}");
    assert!(
        last.starts_with("2 stage: exit 124 (timed out) in ") && last.ends_with(" FAILED"),
        "{said}"
    );
}

#[test]
fn an_unknown_stage_is_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let run = Command::new("bash")
        .arg(root.join("scripts/gpu-check.sh"))
        .arg("1,7")
        .arg(out.path())
        .env("VOG", env!("CARGO_BIN_EXE_vog"))
        .env("DEVICE", "cpu")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown stage '7'"));
}
