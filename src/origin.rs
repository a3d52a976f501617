//! Where a setting came from, so an error names it as the user wrote it: `--batch-size`
//! for a flag, `batch_size in 'configs/x.toml'` for a file, `built-in batch_size` for a
//! default that nobody set.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The sources of a set of settings: the keys given as flags, and the file (if any) the
/// others were read from.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    file: Option<PathBuf>,
    /// Prefix of the keys inside the file, e.g. `[train] `.
    table: String,
    flags: HashSet<String>,
}

impl Origins {
    /// Settings read from `file` (the keys under `table`, "" for the top level).
    pub fn file(file: &Path, table: &str) -> Self {
        Origins {
            file: Some(file.to_path_buf()),
            table: table.to_string(),
            flags: HashSet::new(),
        }
    }

    /// Records that `key` (snake_case) was set by its flag.
    pub fn flag(mut self, key: &str, given: bool) -> Self {
        if given {
            self.flags.insert(key.to_string());
        }
        self
    }

    /// Overrides `slot` with `value` where the flag of `key` gave one, and records that
    /// it did: the one way a flag overrides a setting from a file or a default.
    pub fn set<T>(self, key: &str, slot: &mut T, value: Option<T>) -> Self {
        let given = value.is_some();
        if let Some(v) = value {
            *slot = v;
        }
        self.flag(key, given)
    }

    /// How to name `key` in an error.
    pub fn name(&self, key: &str) -> String {
        if self.flags.contains(key) {
            return format!("--{}", key.replace('_', "-"));
        }
        match &self.file {
            Some(f) => format!("{}{key} in '{}'", self.table, f.display()),
            None => format!("built-in {key}"),
        }
    }
}

/// Refuses a list option that names a value twice (`--column vog,vog`): each value of a
/// list names one thing to do, and doing it twice would only count it twice.
pub fn refuse_repeats<T: PartialEq + std::fmt::Display>(
    option: &str,
    values: &[T],
) -> anyhow::Result<()> {
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            anyhow::bail!("{option} lists '{v}' twice: give each value once");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_list_values() {
        assert!(refuse_repeats("--column", &["vog", "loss"]).is_ok());
        let err = refuse_repeats("--fractions", &[0.1, 0.2, 0.1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--fractions lists '0.1' twice: give each value once"
        );
    }

    #[test]
    fn names_flags_files_and_defaults() {
        let o = Origins::file(Path::new("c.toml"), "[train] ").flag("batch_size", true);
        assert_eq!(o.name("batch_size"), "--batch-size");
        assert_eq!(o.name("lr"), "[train] lr in 'c.toml'");
        assert_eq!(Origins::default().name("width"), "built-in width");
        assert_eq!(
            Origins::default()
                .flag("save_epochs", true)
                .name("save_epochs"),
            "--save-epochs"
        );
    }
}
