//! `vog rank`: the highest- (or lowest-) scoring examples of a scores CSV, overall, for one
//! class or per class, as a table, CSV or JSON, and as image grids. Ties break by id, so
//! the output is deterministic.
use crate::data::DatasetSpec;
use crate::grid::{self, Tile};
use crate::score::{relocate, ScoresMeta};
use crate::scores::{self, ScoreTable};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One scored example as `rank` needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: String,
    pub split: String,
    pub label: i64,
    pub label_name: String,
    pub score: f64,
    pub predicted: i64,
    pub correct: bool,
}

/// An entry with its place in the ordering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub rank: usize,
    #[serde(flatten)]
    pub entry: Entry,
    pub predicted_name: String,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Reads the entries of `column` from a scores table.
pub fn read_entries(table: &ScoreTable, column: &str) -> Result<Vec<Entry>> {
    if !column.starts_with("vog") {
        bail!("--column must name a VoG column (vog, vog_raw, vog_prob, ...), not '{column}'");
    }
    let c = table.require(&[
        "id",
        "split",
        "label",
        "label_name",
        "predicted",
        "correct",
        column,
    ])?;
    (0..table.records.len())
        .map(|r| {
            let score: f64 = table.parse(r, c[6])?;
            if score.is_nan() {
                bail!("'{}' row {}: {column} is NaN", table.path.display(), r + 2);
            }
            Ok(Entry {
                id: table.get(r, c[0]).to_string(),
                split: table.get(r, c[1]).to_string(),
                label: table.parse(r, c[2])?,
                label_name: table.get(r, c[3]).to_string(),
                score,
                predicted: table.parse(r, c[4])?,
                correct: table.parse(r, c[5])?,
            })
        })
        .collect()
}

/// Keeps the entries of the class named or numbered `class`.
pub fn filter_class(entries: Vec<Entry>, class: &str) -> Result<Vec<Entry>> {
    let matches = |e: &Entry| e.label_name == class || class.parse::<i64>().ok() == Some(e.label);
    if !entries.iter().any(matches) {
        let names: Vec<String> = class_names(&entries).into_values().collect();
        bail!(
            "--class '{class}' is not a class of this file (classes: {})",
            names.join(", ")
        );
    }
    Ok(entries.into_iter().filter(matches).collect())
}

/// label -> name, from the entries' labels.
pub fn class_names(entries: &[Entry]) -> BTreeMap<i64, String> {
    entries
        .iter()
        .map(|e| (e.label, e.label_name.clone()))
        .collect()
}

/// The `k` highest (or lowest) entries; ties by id. `names` maps predicted labels to names.
pub fn top_k(
    entries: &[Entry],
    k: usize,
    lowest: bool,
    names: &BTreeMap<i64, String>,
) -> Vec<Ranked> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        let by_score = if lowest {
            a.score.total_cmp(&b.score)
        } else {
            b.score.total_cmp(&a.score)
        };
        by_score.then_with(|| a.id.cmp(&b.id))
    });
    sorted
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(i, e)| Ranked {
            rank: i + 1,
            predicted_name: names
                .get(&e.predicted)
                .cloned()
                .unwrap_or_else(|| e.predicted.to_string()),
            entry: e.clone(),
        })
        .collect()
}

/// Entries grouped by class, in label order.
pub fn per_class(entries: &[Entry]) -> Vec<(String, Vec<Entry>)> {
    let mut groups: BTreeMap<i64, (String, Vec<Entry>)> = BTreeMap::new();
    for e in entries {
        groups
            .entry(e.label)
            .or_insert_with(|| (e.label_name.clone(), Vec::new()))
            .1
            .push(e.clone());
    }
    groups.into_values().collect()
}

/// Writes `groups` (a class name or "" for the whole file, and its ranked entries).
pub fn write(
    mut w: impl Write,
    groups: &[(String, Vec<Ranked>)],
    column: &str,
    format: Format,
) -> Result<()> {
    match format {
        Format::Table => {
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
                    let e = &r.entry;
                    writeln!(
                        w,
                        "{:>4}  {:<28} {:<14} {:>10.4}  {:<14} {}",
                        r.rank,
                        e.id,
                        e.label_name,
                        e.score,
                        r.predicted_name,
                        if e.correct { "yes" } else { "no" }
                    )?;
                }
            }
        }
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
            for r in groups.iter().flat_map(|(_, rows)| rows) {
                let e = &r.entry;
                let rank = r.rank.to_string();
                let (label, score, pred) = (
                    e.label.to_string(),
                    e.score.to_string(),
                    e.predicted.to_string(),
                );
                csv.write_record([
                    &rank,
                    &e.id,
                    &e.split,
                    &label,
                    &e.label_name,
                    &score,
                    &pred,
                    &e.correct.to_string(),
                ])?;
            }
            csv.flush()?;
        }
        Format::Json => {
            let rows: Vec<&Ranked> = groups.iter().flat_map(|(_, rows)| rows).collect();
            serde_json::to_writer_pretty(&mut w, &rows)?;
            writeln!(w)?;
        }
    }
    Ok(())
}

/// Where the images of a scores file come from: its sidecar's dataset, optionally moved.
pub fn image_source(scores_csv: &Path, data: Option<&Path>) -> Result<DatasetSpec> {
    let side = scores::sidecar_path(scores_csv);
    let text = std::fs::read_to_string(&side).with_context(|| {
        format!("cannot read '{}', the sidecar `vog score` writes next to the CSV (needed to find the images)", side.display())
    })?;
    let meta: ScoresMeta = serde_json::from_str(&text)
        .with_context(|| format!("invalid scores sidecar '{}'", side.display()))?;
    match data {
        Some(dir) => relocate(&meta.dataset, dir),
        None => Ok(meta.dataset),
    }
}

/// Looks up images by example id.
pub struct ImageLookup {
    data: crate::data::Dataset,
    index: HashMap<String, (bool, usize)>,
}

impl ImageLookup {
    pub fn load(spec: &DatasetSpec) -> Result<Self> {
        let data = spec.load()?;
        let mut index = HashMap::new();
        for (i, id) in data.train.ids.iter().enumerate() {
            index.insert(id.clone(), (false, i));
        }
        if let Some(t) = &data.test {
            for (i, id) in t.ids.iter().enumerate() {
                index.insert(id.clone(), (true, i));
            }
        }
        Ok(ImageLookup { data, index })
    }

    /// The tile of an entry.
    pub fn tile(&self, e: &Entry) -> Result<Tile> {
        let &(test, i) = self.index.get(&e.id).with_context(|| {
            format!(
                "example '{}' is not in the dataset (pass --data to point at it)",
                e.id
            )
        })?;
        let split = if test {
            self.data.test.as_ref().expect("indexed")
        } else {
            &self.data.train
        };
        Ok(Tile {
            image: grid::to_rgb(&split.images.get(i as i64))?,
            correct: e.correct,
        })
    }

    /// Renders the grid of `rows` into `path`.
    pub fn write_grid(&self, rows: &[Ranked], path: &Path) -> Result<()> {
        let tiles = rows
            .iter()
            .map(|r| self.tile(&r.entry))
            .collect::<Result<Vec<_>>>()?;
        grid::save_png(&grid::render(&tiles), path)
    }
}

/// `<stem>-<class>-<which>.png` beside `path`, the class name made file-safe.
pub fn class_grid_path(path: &Path, class: &str, which: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or("grid".into(), |s| s.to_string_lossy().into_owned());
    let safe: String = class
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    path.with_file_name(format!("{stem}-{safe}-{which}.png"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: &str, label: i64, score: f64) -> Entry {
        Entry {
            id: id.into(),
            split: "test".into(),
            label,
            label_name: format!("c{label}"),
            score,
            predicted: 1,
            correct: label == 1,
        }
    }

    #[test]
    fn order_and_ties() {
        let es = vec![
            e("d", 0, 1.0),
            e("b", 1, 2.0),
            e("a", 0, 2.0),
            e("c", 1, -1.0),
        ];
        let ids = |v: Vec<Ranked>| v.into_iter().map(|r| r.entry.id).collect::<Vec<_>>();
        let names = class_names(&es);
        assert_eq!(ids(top_k(&es, 3, false, &names)), vec!["a", "b", "d"]);
        assert_eq!(ids(top_k(&es, 10, true, &names)), vec!["c", "d", "a", "b"]);
        let r = top_k(&es, 1, false, &names);
        assert_eq!((r[0].rank, r[0].predicted_name.as_str()), (1, "c1"));
    }

    #[test]
    fn classes() {
        let es = vec![e("a", 0, 1.0), e("b", 1, 2.0), e("c", 0, 3.0)];
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
        let es = vec![e("a", 0, 1.5), e("b", 1, 2.0)];
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

    #[test]
    fn grid_paths() {
        let p = class_grid_path(Path::new("out/g.png"), "pick up/truck", "highest");
        assert_eq!(p, Path::new("out/g-pick_up_truck-highest.png"));
    }
}
