//! `vog rank`: the highest- (or lowest-) scoring examples of a scores file, overall, for
//! one class or per class, as a table, CSV or JSON. The ordering itself (ties by id, so
//! the output is deterministic) is the scores file's ([`crate::scores::top_k`]); image
//! grids of the result are drawn by [`crate::grid`].
use crate::scores::{class_names, Ranked, Scored};
use anyhow::{bail, Result};
use serde::Serialize;
use std::io::Write;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Keeps the examples of the class named or numbered `class`.
pub fn filter_class<'a>(entries: Vec<Scored<'a>>, class: &str) -> Result<Vec<Scored<'a>>> {
    let matches =
        |e: &Scored| e.row.label_name == class || class.parse::<i64>().ok() == Some(e.row.label);
    if !entries.iter().any(matches) {
        let names: Vec<String> = class_names(&entries).into_values().collect();
        bail!(
            "--class '{class}' is not a class of this file (classes: {})",
            names.join(", ")
        );
    }
    Ok(entries.into_iter().filter(matches).collect())
}

/// One ranked example as the CSV and JSON outputs spell it.
#[derive(Serialize)]
struct Record<'a> {
    rank: usize,
    id: &'a str,
    split: &'a str,
    label: i64,
    label_name: &'a str,
    score: f64,
    predicted: i64,
    correct: bool,
    predicted_name: &'a str,
}

impl<'a> From<&'a Ranked<'a>> for Record<'a> {
    fn from(r: &'a Ranked<'a>) -> Self {
        let row = r.scored.row;
        Record {
            rank: r.rank,
            id: &row.id,
            split: row.split.name(),
            label: row.label,
            label_name: &row.label_name,
            score: r.scored.score,
            predicted: row.predicted,
            correct: row.correct,
            predicted_name: &r.predicted_name,
        }
    }
}

/// Writes `groups` (a class name or "" for the whole file, and its ranked examples).
pub fn write(
    mut w: impl Write,
    groups: &[(String, Vec<Ranked>)],
    column: &str,
    format: Format,
) -> Result<()> {
    let records = || groups.iter().flat_map(|(_, rows)| rows).map(Record::from);
    match format {
        Format::Table => write_table(w, groups, column)?,
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(w);
            csv.write_record([
                "rank",
                "id",
                "split",
                "label",
                "label_name",
                column,
                "predicted",
                "correct",
            ])?;
            for r in records() {
                csv.write_record([
                    r.rank.to_string().as_str(),
                    r.id,
                    r.split,
                    &r.label.to_string(),
                    r.label_name,
                    &r.score.to_string(),
                    &r.predicted.to_string(),
                    &r.correct.to_string(),
                ])?;
            }
            csv.flush()?;
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut w, &records().collect::<Vec<_>>())?;
            writeln!(w)?;
        }
    }
    Ok(())
}

fn write_table(mut w: impl Write, groups: &[(String, Vec<Ranked>)], column: &str) -> Result<()> {
    for (g, (class, rows)) in groups.iter().enumerate() {
        if !class.is_empty() {
            writeln!(w, "{}class {class}", if g > 0 { "\n" } else { "" })?;
        }
        writeln!(
            w,
            "{:>4}  {:<28} {:<14} {:>10}  {:<14} correct",
            "rank", "id", "label", column, "predicted"
        )?;
        for r in rows {
            let row = r.scored.row;
            writeln!(
                w,
                "{:>4}  {:<28} {:<14} {:>10.4}  {:<14} {}",
                r.rank,
                row.id,
                row.label_name,
                r.scored.score,
                r.predicted_name,
                if row.correct { "yes" } else { "no" }
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SplitKind;
    use crate::scores::{per_class, top_k, ScoreRow};

    fn row(id: &str, label: i64) -> ScoreRow {
        ScoreRow {
            id: id.into(),
            split: SplitKind::Test,
            index: 0,
            label,
            label_name: format!("c{label}"),
            trained_label: label,
            noisy: false,
            predicted: 1,
            correct: label == 1,
            scores: vec![],
            companions: vec![],
        }
    }

    fn scored(rows: &[ScoreRow], scores: &[f64]) -> Vec<Scored<'static>> {
        let rows: &'static [ScoreRow] = Box::leak(rows.to_vec().into_boxed_slice());
        rows.iter()
            .zip(scores)
            .map(|(row, &score)| Scored { row, score })
            .collect()
    }

    #[test]
    fn order_and_ties() {
        let es = scored(
            &[row("d", 0), row("b", 1), row("a", 0), row("c", 1)],
            &[1.0, 2.0, 2.0, -1.0],
        );
        let ids = |v: Vec<Ranked>| {
            v.into_iter()
                .map(|r| r.scored.row.id.clone())
                .collect::<Vec<_>>()
        };
        let names = class_names(&es);
        assert_eq!(ids(top_k(&es, 3, false, &names)), vec!["a", "b", "d"]);
        assert_eq!(ids(top_k(&es, 10, true, &names)), vec!["c", "d", "a", "b"]);
        let r = top_k(&es, 1, false, &names);
        assert_eq!((r[0].rank, r[0].predicted_name.as_str()), (1, "c1"));
    }

    #[test]
    fn classes() {
        let es = scored(&[row("a", 0), row("b", 1), row("c", 0)], &[1.0, 2.0, 3.0]);
        assert_eq!(filter_class(es.clone(), "c0").unwrap().len(), 2);
        assert_eq!(filter_class(es.clone(), "1").unwrap().len(), 1);
        let err = filter_class(es.clone(), "dog").unwrap_err().to_string();
        assert!(err.contains("'dog'") && err.contains("c0, c1"), "{err}");
        let g = per_class(&es);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].0.as_str(), g[0].1.len()), ("c0", 2));
    }

    #[test]
    fn formats() {
        let es = scored(&[row("a", 0), row("b", 1)], &[1.5, 2.0]);
        let groups = vec![(String::new(), top_k(&es, 2, false, &class_names(&es)))];
        let mut buf = Vec::new();
        write(&mut buf, &groups, "vog", Format::Csv).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "rank,id,split,label,label_name,vog,predicted,correct"
        );
        assert_eq!(text.lines().nth(1).unwrap(), "1,b,test,1,c1,2,1,true");
        let mut buf = Vec::new();
        write(&mut buf, &groups, "vog", Format::Json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v[1]["id"], "a");
        assert_eq!(v[1]["rank"], 2);
        let mut buf = Vec::new();
        write(&mut buf, &groups, "vog", Format::Table).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap().lines().count(), 3);
    }
}
