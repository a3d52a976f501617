//! The one reader of the tables people hand to vog: the ids of `--exclude` and
//! `--flagged`, `--relabel`, `--decisions`, the manifests of `vog score --model`, and
//! class files. Whoever wrote them (a text editor, a spreadsheet, vog itself), they are
//! read by one rule:
//!
//! - UTF-8, a leading byte-order mark (what spreadsheets write) ignored;
//! - lines end in LF or CRLF;
//! - blank lines, and lines whose first character is `#`, are skipped wherever they stand
//!   (before or after the header);
//! - fields are separated by commas and quoted with `"` where they hold a comma, a quote
//!   (doubled inside) or a line break, as RFC 4180 and every spreadsheet write them;
//! - spaces around a field are not part of it.
//!
//! Rows are named by their line in the file (the first line is 1), so an error points at
//! what the person sees in an editor.
use anyhow::{bail, Context, Result};
use std::path::Path;

/// One row of a table: its fields, trimmed, and the line of the file it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: usize,
    pub fields: Vec<String>,
}

/// The rows of the table in `path`, comments and blank lines left out; `what` names the
/// file in errors (`--exclude`, `manifest`).
pub fn read_rows(path: &Path, what: &str) -> Result<Vec<Row>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {what} '{}'", path.display()))?;
    parse_rows(&bytes).with_context(|| format!("{what} '{}'", path.display()))
}

/// [`read_rows`] of bytes in memory.
pub fn parse_rows(bytes: &[u8]) -> Result<Vec<Row>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        anyhow::anyhow!("line {} is not UTF-8 text", line + 1)
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser {
        chars: text.chars().peekable(),
        line: 1,
    };
    let mut rows = Vec::new();
    while parser.chars.peek().is_some() {
        let line = parser.line;
        if parser.chars.peek() == Some(&'#') {
            parser.skip_line();
            continue;
        }
        let fields = parser.record()?;
        if fields.iter().any(|f| !f.is_empty()) {
            rows.push(Row { line, fields });
        }
    }
    Ok(rows)
}

/// RFC 4180 records, a line counted at every line break (inside quotes too).
struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl Parser<'_> {
    fn skip_line(&mut self) {
        for c in self.chars.by_ref() {
            if c == '\n' {
                self.line += 1;
                break;
            }
        }
    }

    /// The fields of the record at the cursor, through its line break.
    fn record(&mut self) -> Result<Vec<String>> {
        let mut fields = Vec::new();
        loop {
            fields.push(self.field()?);
            match self.chars.next() {
                Some(',') => continue,
                Some('\n') => self.line += 1,
                _ => {}
            }
            return Ok(fields);
        }
    }

    /// One field, trimmed; the cursor stops at the comma or line break after it.
    fn field(&mut self) -> Result<String> {
        let mut out = String::new();
        while self.chars.peek().is_some_and(|&c| c == ' ' || c == '\t') {
            self.chars.next();
        }
        if self.chars.peek() == Some(&'"') {
            return self.quoted();
        }
        while let Some(&c) = self.chars.peek() {
            if c == ',' || c == '\n' {
                break;
            }
            out.push(c);
            self.chars.next();
        }
        Ok(out.trim().to_string())
    }

    fn quoted(&mut self) -> Result<String> {
        let opened = self.line;
        self.chars.next();
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => bail!("line {opened}: a quote opened here is never closed"),
                Some('"') if self.chars.peek() == Some(&'"') => {
                    self.chars.next();
                    out.push('"');
                }
                Some('"') => break,
                Some(c) => {
                    self.line += usize::from(c == '\n');
                    out.push(c);
                }
            }
        }
        while let Some(&c) = self.chars.peek() {
            match c {
                ',' | '\n' => break,
                ' ' | '\t' | '\r' => {
                    self.chars.next();
                }
                _ => bail!(
                    "line {}: '{c}' after the closing quote of a field (a quote inside a field \
                     is written twice)",
                    self.line
                ),
            }
        }
        Ok(out)
    }
}

/// A table with a header: the named columns of every row after it.
#[derive(Debug, Clone)]
pub struct Headed {
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

impl Headed {
    /// The first row as the header, the rest as rows.
    pub fn new(mut rows: Vec<Row>) -> Option<Self> {
        if rows.is_empty() {
            return None;
        }
        let header = rows.remove(0).fields;
        Some(Headed { header, rows })
    }

    /// [`Headed::new`], refusing a row with more fields than the header names: a field
    /// that would be dropped unread is a mistake (an unquoted comma, a column without a
    /// name), never data to ignore.
    pub fn checked(rows: Vec<Row>) -> Result<Option<Self>> {
        let Some(t) = Self::new(rows) else {
            return Ok(None);
        };
        t.check_widths()?;
        Ok(Some(t))
    }

    /// Refuses the first row with more fields than the header.
    pub fn check_widths(&self) -> Result<()> {
        let columns = self.header.len();
        if let Some(r) = self.rows.iter().find(|r| r.fields.len() > columns) {
            bail!(
                "line {}: {} fields where the header names {columns} ({}): quote a field that \
                 holds a comma, or name every column",
                r.line,
                r.fields.len(),
                self.header.join(",")
            );
        }
        Ok(())
    }

    /// The position of column `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Field `column` of `row` ("" where the row is short).
    pub fn get(row: &Row, column: usize) -> &str {
        row.fields.get(column).map_or("", String::as_str)
    }
}

/// Example ids, as `vog rank --format ids` writes them and people list them: a table
/// whose first row holds an `id` column (the ids are that column), or one id per line
/// without a header. Each id once; an id with a comma must be quoted. With the line of
/// each.
pub fn read_ids(path: &Path, what: &str) -> Result<Vec<(usize, String)>> {
    ids_of(read_rows(path, what)?).with_context(|| format!("{what} '{}'", path.display()))
}

/// The ids of parsed `rows` (see [`read_ids`]).
pub fn ids_of(rows: Vec<Row>) -> Result<Vec<(usize, String)>> {
    let ids: Vec<(usize, String)> = match Headed::new(rows.clone()) {
        Some(t) if t.position("id").is_some() => {
            t.check_widths()?;
            let col = t.position("id").expect("checked");
            t.rows
                .iter()
                .map(|r| (r.line, Headed::get(r, col).to_string()))
                .collect()
        }
        _ => rows
            .into_iter()
            .map(|r| match r.fields.len() {
                1 => Ok((r.line, r.fields[0].clone())),
                n => bail!(
                    "line {}: {n} fields where one id was expected (quote an id that holds a \
                     comma, or give the file an `id` header)",
                    r.line
                ),
            })
            .collect::<Result<_>>()?,
    };
    let mut seen = std::collections::HashMap::new();
    for (line, id) in &ids {
        if id.is_empty() {
            bail!("line {line}: the id is empty");
        }
        if let Some(first) = seen.insert(id.as_str(), *line) {
            bail!("line {line}: '{id}' is listed already on line {first}");
        }
    }
    Ok(ids)
}

/// The lines of a list (class names, one per line): the same rules, but a line is one
/// value whatever commas it holds.
pub fn read_list(path: &Path, what: &str) -> Result<Vec<String>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {what} '{}'", path.display()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("{what} '{}' is not UTF-8 text", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(usize, Vec<&str>)> {
        let parsed = parse_rows(text.as_bytes()).unwrap();
        let leaked: &'static [Row] = Box::leak(parsed.into_boxed_slice());
        leaked
            .iter()
            .map(|r| (r.line, r.fields.iter().map(String::as_str).collect()))
            .collect()
    }

    #[test]
    fn one_rule_for_every_writer() {
        // A spreadsheet: BOM, CRLF, quoted fields with commas and doubled quotes.
        let sheet = "\u{feff}id,label\r\n\"train/1/x,y.png\",cat\r\n\"a \"\"q\"\"\", dog \r\n";
        assert_eq!(
            rows(sheet),
            vec![
                (1, vec!["id", "label"]),
                (2, vec!["train/1/x,y.png", "cat"]),
                (3, vec!["a \"q\"", "dog"]),
            ]
        );
        // Comments and blank lines before and after the header; rows keep their lines.
        let edited = "# made by hand\n\nid\n# the next one is odd\ntrain/a\n   \ntrain/b\n";
        assert_eq!(
            rows(edited),
            vec![(3, vec!["id"]), (5, vec!["train/a"]), (7, vec!["train/b"])]
        );
        let err = parse_rows(b"id\n\xff\n").unwrap_err().to_string();
        assert_eq!(err, "line 2 is not UTF-8 text");
        // A line break inside quotes belongs to the field and counts as a line.
        assert_eq!(
            rows("\"a\nb\",1\nc,2"),
            vec![(1, vec!["a\nb", "1"]), (3, vec!["c", "2"])]
        );
        let err = parse_rows(b"id\n\"open,1\n").unwrap_err().to_string();
        assert_eq!(err, "line 2: a quote opened here is never closed");
        let err = parse_rows(b"\"a\"b,1\n").unwrap_err().to_string();
        assert!(
            err.starts_with("line 1: 'b' after the closing quote"),
            "{err}"
        );
    }

    #[test]
    fn ids_with_and_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.csv");
        std::fs::write(
            &p,
            "\u{feff}id,score\r\n\"train/1/x,y.png\",3\r\ntrain/2,4\r\n",
        )
        .unwrap();
        let ids = read_ids(&p, "--exclude").unwrap();
        assert_eq!(
            ids,
            vec![(2, "train/1/x,y.png".into()), (3, "train/2".into())]
        );
        std::fs::write(&p, "# ids\ntrain/1\n\ntrain/2\n").unwrap();
        assert_eq!(
            read_ids(&p, "--exclude").unwrap(),
            vec![(2, "train/1".into()), (4, "train/2".into())]
        );
        std::fs::write(&p, "train/1/x,y.png\n").unwrap();
        let err = format!("{:#}", read_ids(&p, "--exclude").unwrap_err());
        assert!(err.contains("line 1: 2 fields"), "{err}");
        std::fs::write(&p, "id\ntrain/1\ntrain/1\n").unwrap();
        let err = format!("{:#}", read_ids(&p, "--exclude").unwrap_err());
        assert!(
            err.ends_with("line 3: 'train/1' is listed already on line 2"),
            "{err}"
        );
        std::fs::write(&p, "").unwrap();
        assert!(read_ids(&p, "--exclude").unwrap().is_empty());
    }

    #[test]
    fn lists() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("classes.txt");
        std::fs::write(&p, "\u{feff}# classes\r\ncat, black\r\n\r\n dog \n").unwrap();
        assert_eq!(
            read_list(&p, "class file").unwrap(),
            vec!["cat, black", "dog"]
        );
    }
}
