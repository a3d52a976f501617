//! How a person names a class, on the command line (`--class`) or in a file (the label
//! of `--relabel`, `--decisions` and manifests), by one rule:
//!
//! - `name:NAME` is the class called NAME, `index:N` the class at index N (the sorted
//!   position of an image folder's class, the label number of CIFAR);
//! - any other token is read both ways: a class name, and an index. It names the class it
//!   reads as; a token that names one class and is the index of another (folder classes
//!   `1`, `10`, `2`: `1` is the name of index 0 and the index of `10`) is refused, naming
//!   both readings, so a class is never the wrong one.
//!
//! Files vog writes name classes with [`token`], which reads back as the same class.
use anyhow::{bail, Result};

/// The index of the class `token` names among `classes` (names by index).
pub fn resolve(token: &str, classes: &[String]) -> Result<usize> {
    let token = token.trim();
    if let Some(name) = token.strip_prefix("name:") {
        return match classes.iter().position(|c| c == name) {
            Some(i) => Ok(i),
            None => bail!(
                "'{token}': no class is called '{name}' ({})",
                listed(classes)
            ),
        };
    }
    if let Some(index) = token.strip_prefix("index:") {
        return match index.parse::<usize>() {
            Ok(i) if i < classes.len() => Ok(i),
            _ => bail!(
                "'{token}': the class indices are 0 to {} ({})",
                classes.len().saturating_sub(1),
                listed(classes)
            ),
        };
    }
    let by_name = classes.iter().position(|c| c == token);
    let by_index = token.parse::<usize>().ok().filter(|&i| i < classes.len());
    match (by_name, by_index) {
        (Some(n), Some(i)) if n != i => bail!(
            "'{token}' is ambiguous: the name of class {n} ('{}') and the index of class '{}'; \
             write 'name:{token}' or 'index:{token}'",
            classes[n],
            classes[i]
        ),
        (Some(n), _) => Ok(n),
        (None, Some(i)) => Ok(i),
        (None, None) => bail!(
            "'{token}' is neither a class name nor an index below {} ({})",
            classes.len(),
            listed(classes)
        ),
    }
}

/// The token naming class `index` that [`resolve`] reads back as it: its name, or
/// `name:NAME` where the bare name would be ambiguous or taken for a prefix.
pub fn token(index: usize, classes: &[String]) -> String {
    let name = &classes[index];
    let prefixed = name.starts_with("name:") || name.starts_with("index:");
    match resolve(name, classes) {
        Ok(i) if i == index && !prefixed && name.trim() == name => name.clone(),
        _ => format!("name:{name}"),
    }
}

fn listed(classes: &[String]) -> String {
    const SHOWN: usize = 12;
    let names: Vec<&str> = classes.iter().take(SHOWN).map(String::as_str).collect();
    let more = match classes.len() > SHOWN {
        true => format!(", ... {} in all", classes.len()),
        false => String::new(),
    };
    format!("classes: {}{more}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn numbers_as_names() {
        let c = classes(&["1", "10", "2"]);
        // "10" is only a name (no index 10); "2" is the name and the index of one class.
        assert_eq!(resolve("10", &c).unwrap(), 1);
        assert_eq!(resolve("2", &c).unwrap(), 2);
        assert_eq!(resolve("0", &c).unwrap(), 0);
        let err = resolve("1", &c).unwrap_err().to_string();
        assert_eq!(
            err,
            "'1' is ambiguous: the name of class 0 ('1') and the index of class '10'; \
             write 'name:1' or 'index:1'"
        );
        assert_eq!(resolve("name:1", &c).unwrap(), 0);
        assert_eq!(resolve("index:1", &c).unwrap(), 1);
        assert!(resolve("index:3", &c).is_err() && resolve("name:3", &c).is_err());
        assert!(resolve("dog", &c)
            .unwrap_err()
            .to_string()
            .contains("classes: 1, 10, 2"));
    }

    #[test]
    fn tokens_read_back() {
        let mut names: Vec<String> = (1..=11).map(|i| i.to_string()).collect();
        names.sort();
        names.extend(["name:x".into(), " pad".into(), "cat".into()]);
        for i in 0..names.len() {
            assert_eq!(
                resolve(&token(i, &names), &names).unwrap(),
                i,
                "{}",
                names[i]
            );
        }
        assert_eq!(token(names.len() - 1, &names), "cat");
        // "10" sits at index 1 and index 10 is "9": only the prefixed name is safe.
        assert_eq!(token(1, &names), "name:10");
    }
}
