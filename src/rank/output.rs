//! The ranked examples as `vog rank` prints or writes them: a table, CSV, JSON or ids.
use super::Ranking;
use crate::data::plant::Kind;
use crate::export::{Export, Table, TableColumn};
use crate::scores::Ranked;
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
/// One ranked example as the CSV and JSON outputs spell it.
#[derive(Serialize)]
struct Record<'a> {
    rank: usize,
    id: &'a str,
    split: &'a str,
    label: i64,
    label_name: &'a str,
    trained_label: i64,
    trained_name: &'a str,
    noisy: bool,
    /// The kind planted into it, in the files of runs with planted hardness.
    #[serde(skip_serializing_if = "Option::is_none")]
    planted: Option<&'static str>,
    score: f64,
    predicted: i64,
    correct: bool,
    predicted_name: &'a str,
    suggested_label: Option<i64>,
    suggested_name: Option<&'a str>,
    /// Its set of near-duplicates, in the files that have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    near_duplicate_set: Option<usize>,
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
            trained_label: row.trained_label,
            trained_name: &r.trained_name,
            noisy: row.noisy,
            planted: row.planted.map(Kind::name),
            score: r.scored.score,
            predicted: row.predicted,
            correct: row.correct,
            predicted_name: &r.predicted_name,
            suggested_label: row.suggested_label,
            suggested_name: r.suggested_name.as_deref(),
            near_duplicate_set: row.near_duplicate_set,
        }
    }
}

/// Writes `groups` (a class name or "" for the whole file, and its ranked examples).
#[cfg(test)]
pub(super) fn write(
    w: impl Write,
    groups: &[(String, Vec<Ranked>)],
    column: &str,
    format: crate::export::OutputFormat,
) -> Result<()> {
    let ranking = Ranking {
        groups: groups.to_vec(),
        column: column.to_string(),
        pool: Vec::new(),
        names: std::collections::BTreeMap::new(),
        planted: groups
            .iter()
            .flat_map(|(_, g)| g)
            .any(|r| r.scored.row.planted.is_some()),
        sets: false,
    };
    crate::export::write(w, &ranking, format)
}

impl Serialize for Ranking<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.records())
    }
}

impl Ranking<'_> {
    fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.groups
            .iter()
            .flat_map(|(_, rows)| rows)
            .map(Record::from)
    }
}

impl Export for Ranking<'_> {
    fn write_table(&self, w: &mut dyn Write) -> Result<()> {
        write_table(w, &self.groups, &self.column, (self.planted, self.sets))
    }

    fn write_csv(&self, w: &mut dyn Write) -> Result<()> {
        let mut csv = csv::Writer::from_writer(w);
        let mut header = vec![
            "rank",
            "id",
            "split",
            "label",
            "label_name",
            "trained_label",
            "trained_name",
            "noisy",
        ];
        header.extend(self.planted.then_some("planted"));
        header.extend([
            &self.column,
            "predicted",
            "predicted_name",
            "correct",
            "suggested_label",
            "suggested_name",
        ]);
        header.extend(self.sets.then_some(crate::scores::SETS));
        csv.write_record(&header)?;
        for r in self.records() {
            let mut record = vec![
                r.rank.to_string(),
                r.id.to_string(),
                r.split.to_string(),
                r.label.to_string(),
                r.label_name.to_string(),
                r.trained_label.to_string(),
                r.trained_name.to_string(),
                r.noisy.to_string(),
            ];
            record.extend(self.planted.then(|| r.planted.unwrap_or("").to_string()));
            record.extend([
                r.score.to_string(),
                r.predicted.to_string(),
                r.predicted_name.to_string(),
                r.correct.to_string(),
                r.suggested_label.map_or(String::new(), |l| l.to_string()),
                r.suggested_name.unwrap_or("").to_string(),
            ]);
            record.extend(self.sets.then(|| {
                r.near_duplicate_set
                    .map_or(String::new(), |s| s.to_string())
            }));
            csv.write_record(&record)?;
        }
        csv.flush()?;
        Ok(())
    }

    /// A CSV of one `id` column (quoted where an id needs it).
    fn write_ids(&self, w: &mut dyn Write) -> Result<()> {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["id"])?;
        for r in self.records() {
            csv.write_record([r.id])?;
        }
        csv.flush()?;
        Ok(())
    }
}

fn write_table(
    w: &mut dyn Write,
    groups: &[(String, Vec<Ranked>)],
    column: &str,
    (planted, sets): (bool, bool),
) -> Result<()> {
    let suggests = groups
        .iter()
        .flat_map(|(_, rows)| rows)
        .any(|r| r.suggested_name.is_some());
    let extra = Extra {
        suggests,
        planted,
        sets,
    };
    for (g, (class, rows)) in groups.iter().enumerate() {
        if !class.is_empty() {
            writeln!(w, "{}class {class}", if g > 0 { "\n" } else { "" })?;
        }
        rank_table(rows, column, extra).write_text(w)?;
    }
    Ok(())
}

/// The columns a rank table shows beside the usual ones.
#[derive(Clone, Copy)]
struct Extra {
    /// The out-of-sample suggested label.
    suggests: bool,
    /// The planted kind.
    planted: bool,
    /// The set of near-duplicates.
    sets: bool,
}

/// The ranked examples as a table whose columns stay apart whatever their values.
fn rank_table(rows: &[Ranked], column: &str, extra: Extra) -> Table {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut columns = vec![
        TableColumn::number("rank"),
        TableColumn::text("id"),
        TableColumn::text("label"),
        TableColumn::text("trained"),
        TableColumn::text("noisy"),
    ];
    columns.extend(extra.planted.then(|| TableColumn::text("planted")));
    columns.extend([
        TableColumn::number_named(column.to_string()),
        TableColumn::text("predicted"),
        TableColumn::text("correct"),
    ]);
    columns.extend(extra.suggests.then(|| TableColumn::text("suggested")));
    columns.extend(extra.sets.then(|| TableColumn::text("duplicate set")));
    let rows = rows
        .iter()
        .map(|r| {
            let row = r.scored.row;
            let mut cells = vec![
                r.rank.to_string(),
                row.id.clone(),
                row.label_name.clone(),
                r.trained_name.clone(),
                yes(row.noisy),
            ];
            cells.extend(
                extra
                    .planted
                    .then(|| row.planted.map_or("-", Kind::name).to_string()),
            );
            cells.extend([
                crate::scores::flag_text(column, r.scored.score)
                    .unwrap_or_else(|| format!("{:.4}", r.scored.score)),
                r.predicted_name.clone(),
                yes(row.correct),
            ]);
            if extra.suggests {
                cells.push(r.suggested_name.clone().unwrap_or_default());
            }
            if extra.sets {
                cells.push(row.near_duplicate_set.map_or("-".into(), |s| s.to_string()));
            }
            cells
        })
        .collect();
    Table { columns, rows }
}
