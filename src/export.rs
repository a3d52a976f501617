//! What a command prints, in the format asked for (hyperfine's `export/` in spirit): one
//! [`OutputFormat`], one writer per format. JSON is the value's serde form for every
//! output; the text table and CSV are each output's own ([`Export`]). Tables of cells
//! ([`Table`]) render as aligned text or as HTML, so a table shown both on the terminal
//! and in the report is built once.
use anyhow::{bail, Result};
use serde::Serialize;
use std::io::Write;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text for a person.
    Table,
    Csv,
    Json,
    /// The examples' ids, one per line under an `id` header: the file `vog train
    /// --exclude` and `vog eval --flagged` read.
    Ids,
}

/// A result a command prints in any [`OutputFormat`] it offers.
pub trait Export: Serialize {
    /// Aligned text for a person.
    fn write_table(&self, w: &mut dyn Write) -> Result<()>;

    /// One CSV table, for the outputs that are one table.
    fn write_csv(&self, _w: &mut dyn Write) -> Result<()> {
        bail!("this output has no CSV form")
    }

    /// The ids of the examples listed, for outputs that list examples.
    fn write_ids(&self, _w: &mut dyn Write) -> Result<()> {
        bail!("this output lists no examples")
    }
}

/// Writes `value` to `w` in `format`.
pub fn write(mut w: impl Write, value: &impl Export, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Table => value.write_table(&mut w),
        OutputFormat::Csv => value.write_csv(&mut w),
        OutputFormat::Ids => value.write_ids(&mut w),
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut w, value)?;
            writeln!(w)?;
            Ok(())
        }
    }
}

/// A column of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableColumn {
    pub name: std::borrow::Cow<'static, str>,
    /// Text, aligned left (numbers align right).
    pub text: bool,
    /// An extra CSS class of the column's HTML cells ("" for none).
    pub class: &'static str,
}

impl TableColumn {
    pub const fn text(name: &'static str) -> Self {
        TableColumn {
            name: std::borrow::Cow::Borrowed(name),
            text: true,
            class: "",
        }
    }

    pub const fn number(name: &'static str) -> Self {
        TableColumn {
            name: std::borrow::Cow::Borrowed(name),
            text: false,
            class: "",
        }
    }

    /// A column of numbers whose name is made at run time (a score column's).
    pub fn number_named(name: String) -> Self {
        TableColumn {
            name: std::borrow::Cow::Owned(name),
            text: false,
            class: "",
        }
    }
}

/// Cells under named columns, already formatted.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<TableColumn>,
    /// One cell per column.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The header and the rows, each column as wide as its widest cell, two spaces apart;
    /// the last column is not padded.
    pub fn write_text(&self, w: &mut dyn Write) -> Result<()> {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|c| {
                let cells = self.rows.iter().map(|r| r[c].chars().count());
                cells
                    .chain([self.columns[c].name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self.columns.iter().map(|c| c.name.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| match c {
                    _ if c == last => cell.clone(),
                    _ if self.columns[c].text => format!("{cell:<w$}", w = widths[c]),
                    _ => format!("{cell:>w$}", w = widths[c]),
                })
                .collect();
            writeln!(w, "{}", cells.join("  "))?;
        }
        Ok(())
    }

    /// An HTML `<table>` of CSS class `class`; text columns carry class `l`.
    pub fn html(&self, class: &str) -> String {
        let mut out = format!(r#"<table class="{class}"><tr>"#);
        for c in &self.columns {
            out.push_str(&cell("th", if c.text { "l" } else { "" }, &c.name));
        }
        out.push_str("</tr>");
        for row in &self.rows {
            out.push_str("<tr>");
            for (c, text) in self.columns.iter().zip(row) {
                let class = match (c.text, c.class) {
                    (true, "") => "l".to_string(),
                    (true, extra) => format!("l {extra}"),
                    (false, extra) => extra.to_string(),
                };
                out.push_str(&cell("td", &class, text));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
        out
    }
}

fn cell(tag: &str, class: &str, text: &str) -> String {
    match class {
        "" => format!("<{tag}>{}</{tag}>", esc(text)),
        _ => format!(r#"<{tag} class="{class}">{}</{tag}>"#, esc(text)),
    }
}

/// Marks an HTML page vog wrote (the report, the review page): a page written under a
/// default name replaces only a page that carries it.
pub const GENERATOR: &str = r#"<meta name="generator" content="vog">"#;

/// `s` with the characters HTML gives meaning to escaped.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            columns: vec![
                TableColumn::text("score"),
                TableColumn::number("AUROC"),
                TableColumn {
                    class: "verdict",
                    ..TableColumn::text("verdict")
                },
            ],
            rows: vec![
                vec!["vog".into(), "0.5".into(), "a<b".into()],
                vec!["el2n".into(), "0.75".into(), "c".into()],
            ],
        }
    }

    #[test]
    fn text_aligns_columns() {
        let mut buf = Vec::new();
        table().write_text(&mut buf).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "score  AUROC  verdict\nvog      0.5  a<b\nel2n    0.75  c\n"
        );
    }

    #[test]
    fn html_escapes_and_classes() {
        assert_eq!(
            table().html("t"),
            "<table class=\"t\"><tr><th class=\"l\">score</th><th>AUROC</th><th class=\"l\">verdict</th></tr>\
             <tr><td class=\"l\">vog</td><td>0.5</td><td class=\"l verdict\">a&lt;b</td></tr>\
             <tr><td class=\"l\">el2n</td><td>0.75</td><td class=\"l verdict\">c</td></tr></table>"
        );
    }
}
