//! `vog bench` end to end: JSON rows for every (work, precision) pair asked for.
mod common;
use common::{succeed, vog};

#[test]
fn bench_prints_json_rows() {
    let out = succeed(vog().args([
        "bench",
        "--width",
        "2",
        "--batch-size",
        "8",
        "--checkpoints",
        "2",
        "--seconds",
        "0.05",
        "--precision",
        "fp32,bf16",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--format",
        "json",
        "--quiet",
    ]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let kinds: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["what"].to_string(), r["precision"].to_string()))
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    for r in rows {
        assert_eq!(r["threads"], 1);
        if r["what"] == "score" {
            assert!(r["rate"].as_f64().unwrap() > 0.0);
            assert_eq!(r["checkpoints"], 2);
            assert!(r["peak_rss_mib"].as_f64().unwrap() > 0.0);
        }
    }
    let err = common::vog_fails(&["bench", "--width", "0", "--seconds", "0.1"]);
    assert!(err.contains("--width"), "{err}");
}
