//! `vog rank`: the highest- (or lowest-) scoring examples of a scores file, overall, for
//! one class or per class, as a table, CSV or JSON. The ordering itself (ties by id, so
//! the output is deterministic) is the scores file's ([`crate::scores::top_k`]); image
//! grids of the result are drawn by [`crate::grid`].
use crate::data::plant::Kind;
use crate::grid::{class_grid_path, ImageLookup};
use crate::scores::{
    class_names, file_classes, per_class, scored, top_k, Ranked, Scored, ScoresFile,
};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

mod output;

/// A validated `vog rank` request (the grid aside).
#[derive(Debug, Clone)]
pub struct RankRequest {
    /// How many examples (per class with `per_class`); at least 1.
    pub top: usize,
    /// The lowest scores instead of the highest.
    pub lowest: bool,
    /// Only this class (name or label number).
    pub class: Option<String>,
    pub per_class: bool,
    /// The score column ranked by.
    pub column: String,
    /// Only the examples that meet this condition.
    pub select: Option<Select>,
}

/// Which examples `--select` keeps: those whose score column meets a condition
/// (`COLUMN=VALUE`, `COLUMN>=VALUE` or `COLUMN<=VALUE`, `true` and `false` standing for 1
/// and 0: `label_issue=true`), or the training examples planted with a kind (`planted=zoom`;
/// `planted=any`: of every kind).
#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    Score {
        column: String,
        op: std::cmp::Ordering,
        /// With `op` Less: at most; Greater: at least; Equal: equal.
        value: f64,
    },
    Planted(Option<Kind>),
}

impl std::str::FromStr for Select {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let (column, op, value) = [(">=", Greater), ("<=", Less), ("=", Equal)]
            .iter()
            .find_map(|(sym, op)| s.split_once(sym).map(|(c, v)| (c.trim(), *op, v.trim())))
            .ok_or_else(|| format!("'{s}' is not COLUMN=VALUE, COLUMN>=VALUE or COLUMN<=VALUE"))?;
        if column == "planted" {
            return planted(s, op, value);
        }
        let value = match value {
            v if v.eq_ignore_ascii_case("true") => 1.0,
            v if v.eq_ignore_ascii_case("false") => 0.0,
            v => v
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    format!(
                        "'{s}': the value '{v}' is not a finite number, true or false (true and \
                     false stand for 1 and 0)"
                    )
                })?,
        };
        if column.is_empty() {
            return Err(format!("'{s}' names no column (COLUMN=VALUE)"));
        }
        Ok(Select::Score {
            column: column.to_string(),
            op,
            value,
        })
    }
}

/// `planted=KIND` or `planted=any`.
fn planted(s: &str, op: std::cmp::Ordering, value: &str) -> Result<Select, String> {
    if op != std::cmp::Ordering::Equal {
        return Err(format!(
            "'{s}': planted takes a kind, as planted=zoom or planted=any"
        ));
    }
    match value {
        "any" => Ok(Select::Planted(None)),
        kind => Ok(Select::Planted(Some(
            kind.parse().map_err(|e| format!("'{s}': {e}, or any"))?,
        ))),
    }
}

impl std::fmt::Display for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let (column, op, value) = match self {
            Select::Score { column, op, value } => (column.as_str(), *op, value.to_string()),
            Select::Planted(kind) => (
                "planted",
                std::cmp::Ordering::Equal,
                kind.map_or("any", Kind::name).to_string(),
            ),
        };
        let op = match op {
            std::cmp::Ordering::Equal => "=",
            std::cmp::Ordering::Greater => ">=",
            std::cmp::Ordering::Less => "<=",
        };
        write!(f, "{column}{op}{value}")
    }
}

impl Select {
    /// The score column it selects by (`None` for planted kinds).
    pub fn column(&self) -> Option<&str> {
        match self {
            Select::Score { column, .. } => Some(column),
            Select::Planted(_) => None,
        }
    }

    /// The ids of the examples of `file` it keeps.
    fn ids<'a>(&self, file: &'a ScoresFile) -> Result<HashSet<&'a str>> {
        Ok(match self {
            Select::Score { column, op, value } => scored(file, column)?
                .into_iter()
                .filter(|e| match op {
                    std::cmp::Ordering::Equal => e.score == *value,
                    std::cmp::Ordering::Greater => e.score >= *value,
                    std::cmp::Ordering::Less => e.score <= *value,
                })
                .map(|e| e.row.id.as_str())
                .collect(),
            Select::Planted(kind) => file
                .rows
                .iter()
                .filter(|r| r.planted.is_some() && (kind.is_none() || r.planted == *kind))
                .map(|r| r.id.as_str())
                .collect(),
        })
    }

    /// What the selected values are, when a selection matched none: ` (label_issue holds
    /// 0 and 1)`, ` (vog lies in [-2.1, 3.4])`, ` (its run planted noise, zoom)`.
    fn hint(&self, file: &ScoresFile) -> String {
        let column = match self {
            Select::Score { column, .. } => column,
            Select::Planted(_) => {
                let kinds: Vec<&str> = file.meta.planted.iter().map(|k| k.name()).collect();
                return match kinds.is_empty() {
                    true => " (its run planted nothing: vog train --plant)".into(),
                    false => format!(" (its run planted {})", kinds.join(", ")),
                };
            }
        };
        let Ok(values) = scored(file, column) else {
            return String::new();
        };
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
                (lo.min(e.score), hi.max(e.score))
            });
        match values.is_empty() {
            true => format!(" ({column} has no values here)"),
            false => format!(" ({column} lies in [{lo}, {hi}])"),
        }
    }
}

impl RankRequest {
    /// The score columns the request ranks or selects by.
    pub fn columns(&self) -> Vec<&str> {
        std::iter::once(self.column.as_str())
            .chain(self.select.as_ref().and_then(Select::column))
            .collect()
    }

    /// Refuses a request that can rank nothing.
    pub fn check(&self) -> Result<()> {
        if self.top == 0 {
            bail!("--top must be at least 1");
        }
        Ok(())
    }
}

/// The ranked examples of a scores file: per class (or one group named ""), with the
/// examples each group was ranked from, for the grids.
pub struct Ranking<'a> {
    pub groups: Vec<(String, Vec<Ranked<'a>>)>,
    pub column: String,
    pool: Vec<(String, Vec<Scored<'a>>)>,
    names: BTreeMap<i64, String>,
    /// Whether the file's run planted hardness: the outputs then name each example's kind.
    planted: bool,
    /// Whether the file has sets of near-duplicates: the outputs then name each example's.
    sets: bool,
}

impl<'a> Ranking<'a> {
    /// Ranks the examples of `file` as `r` asks.
    pub fn new(file: &'a ScoresFile, r: &RankRequest) -> Result<Self> {
        r.check()?;
        let mut entries = scored(file, &r.column)?;
        let names = class_names(&entries);
        if let Some(sel) = &r.select {
            let keep = sel.ids(file)?;
            entries.retain(|e| keep.contains(e.row.id.as_str()));
            if entries.is_empty() {
                bail!(
                    "--select {sel} matches no example of '{}'{}",
                    file.path.display(),
                    sel.hint(file)
                );
            }
        }
        if let Some(class) = &r.class {
            let selected = entries.len();
            entries = filter_class(entries, class, &file_classes(file))?;
            if entries.is_empty() {
                match &r.select {
                    Some(sel) => bail!(
                        "--class '{class}' leaves none of the {selected} examples --select {sel} \
                         matches in '{}'",
                        file.path.display()
                    ),
                    None => bail!(
                        "--class '{class}': no example of that class in '{}' has a value in '{}'",
                        file.path.display(),
                        r.column
                    ),
                }
            }
        }
        let pool = if r.per_class {
            per_class(&entries)
        } else {
            vec![(String::new(), entries)]
        };
        let groups = pool
            .iter()
            .map(|(c, es)| (c.clone(), top_k(es, r.top, r.lowest, &names)))
            .collect();
        Ok(Ranking {
            groups,
            column: r.column.clone(),
            pool,
            names,
            planted: !file.meta.planted.is_empty(),
            sets: crate::scores::has_sets(&file.meta.companions),
        })
    }

    /// Draws the ranked examples' images as a grid at `path` (a `.png`, its legend beside
    /// it as `.csv`); per class, a highest and a lowest grid for each class beside it.
    /// Returns the grids written.
    pub fn write_grids(
        &self,
        images: &ImageLookup,
        path: &Path,
        r: &RankRequest,
    ) -> Result<Vec<PathBuf>> {
        if !r.per_class {
            crate::grid::check_unnamed(path, true)?;
            images.write_grid(&self.groups[0].1, &self.column, path)?;
            return Ok(vec![path.to_path_buf()]);
        }
        let mut grids = Vec::new();
        for (class, es) in &self.pool {
            for (which, lowest) in [("highest", false), ("lowest", true)] {
                let p = class_grid_path(path, class, which);
                crate::grid::check_unnamed(&p, false)?;
                grids.push((p, top_k(es, r.top, lowest, &self.names)));
            }
        }
        for (p, top) in &grids {
            images.write_grid(top, &self.column, p)?;
        }
        Ok(grids.into_iter().map(|(p, _)| p).collect())
    }
}

/// Refuses a grid path that is not a `.png` file.
pub fn check_grid_path(path: &Path) -> Result<()> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        bail!(
            "--grid '{}' must name a .png file (grids are written as PNG)",
            path.display()
        );
    }
    Ok(())
}

/// Keeps the examples of the class `class` names among `classes` (see
/// [`crate::data::classes`]).
pub fn filter_class<'a>(
    entries: Vec<Scored<'a>>,
    class: &str,
    classes: &[String],
) -> Result<Vec<Scored<'a>>> {
    let label = crate::data::classes::resolve(class, classes)
        .map_err(|e| anyhow::anyhow!("--class {e}"))? as i64;
    Ok(entries
        .into_iter()
        .filter(|e| e.row.label == label)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::output::write;
    use super::*;
    use crate::data::SplitKind;
    use crate::export::OutputFormat;
    use crate::scores::ScoreRow;

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
            suggested_label: None,
            planted: None,
            near_duplicate_set: None,
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
    fn selections_as_people_write_them() {
        let score = |column: &str, op, value| Select::Score {
            column: column.into(),
            op,
            value,
        };
        let sel: Select = "label_issue=TRUE".parse().unwrap();
        assert_eq!(sel, score("label_issue", std::cmp::Ordering::Equal, 1.0));
        assert_eq!(
            "x<=False".parse::<Select>().unwrap(),
            score("x", std::cmp::Ordering::Less, 0.0)
        );
        assert_eq!(
            "planted = zoom".parse::<Select>().unwrap(),
            Select::Planted(Some(Kind::Zoom))
        );
        assert_eq!(
            "planted=any".parse::<Select>().unwrap().to_string(),
            "planted=any"
        );
        let err = "planted=blur".parse::<Select>().unwrap_err();
        assert!(
            err.contains("unknown kind 'blur'") && err.contains("zoom"),
            "{err}"
        );
        let err = "planted>=1".parse::<Select>().unwrap_err();
        assert!(err.contains("planted=zoom or planted=any"), "{err}");
        let err = "label_issue=yes".parse::<Select>().unwrap_err();
        assert!(
            err.contains("'yes' is not a finite number, true or false"),
            "{err}"
        );
        assert!("=1"
            .parse::<Select>()
            .unwrap_err()
            .contains("names no column"));
    }

    #[test]
    fn classes() {
        let es = scored(&[row("a", 0), row("b", 1), row("c", 0)], &[1.0, 2.0, 3.0]);
        let names = vec!["c0".to_string(), "c1".to_string()];
        assert_eq!(filter_class(es.clone(), "c0", &names).unwrap().len(), 2);
        assert_eq!(filter_class(es.clone(), "1", &names).unwrap().len(), 1);
        let err = filter_class(es.clone(), "dog", &names)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'dog'") && err.contains("c0, c1"), "{err}");
        let g = per_class(&es);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].0.as_str(), g[0].1.len()), ("c0", 2));
        // Classes named by numbers: a name never matches a second class by its index.
        let numbers: Vec<String> = ["1", "10", "2"].iter().map(|s| s.to_string()).collect();
        let es = scored(&[row("a", 0), row("b", 1), row("c", 2)], &[1.0, 2.0, 3.0]);
        let ids = |class: &str| -> Vec<String> {
            filter_class(es.clone(), class, &numbers)
                .unwrap()
                .iter()
                .map(|e| e.row.id.clone())
                .collect()
        };
        assert_eq!(ids("10"), vec!["b"]);
        assert_eq!(ids("name:1"), vec!["a"]);
        let err = filter_class(es.clone(), "1", &numbers).unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
    }

    #[test]
    fn formats() {
        let mut b = row("b", 1);
        (b.trained_label, b.noisy, b.suggested_label) = (0, true, Some(1));
        let es = scored(&[row("a", 0), b], &[1.5, 2.0]);
        let groups = vec![(String::new(), top_k(&es, 2, false, &class_names(&es)))];
        let mut buf = Vec::new();
        write(&mut buf, &groups, "vog", OutputFormat::Csv).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "rank,id,split,label,label_name,trained_label,trained_name,noisy,vog,predicted,\
             predicted_name,correct,suggested_label,suggested_name"
        );
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "1,b,test,1,c1,0,c0,true,2,1,c1,true,1,c1"
        );
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "2,a,test,0,c0,0,c0,false,1.5,1,c1,false,,"
        );
        let mut buf = Vec::new();
        write(&mut buf, &groups, "vog", OutputFormat::Json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v[1]["id"], "a");
        assert_eq!(v[1]["rank"], 2);
        let mut buf = Vec::new();
        write(&mut buf, &groups, "vog", OutputFormat::Table).unwrap();
        let table = String::from_utf8(buf).unwrap();
        assert_eq!(table.lines().count(), 3);
        let first = table.lines().nth(1).unwrap();
        assert!(
            first.contains("c0") && first.contains("yes") && first.ends_with(" c1"),
            "{table}"
        );
    }
}
