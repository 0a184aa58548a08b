//! Located spec errors: `FILE:LINE:COL: key.path: what is wrong (what is allowed)`.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in a spec file, with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() { String::new() } else { format!("{}: ", self.key) };
        write!(f, "{}:{}:{}: {}{}", self.file.display(), self.line, self.col, key, self.message)
    }
}

/// Every error of one spec file, in file order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

/// Failure to produce a `Spec` from a file.
#[derive(Debug, thiserror::Error)]
pub enum SpecLoadError {
    #[error("{path}: cannot read spec file")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(SpecErrors),
}

/// Converts byte offsets into 1-based line and column (in characters).
pub(crate) struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator { file, text, line_starts }
    }

    /// 1-based (line, column) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..offset).map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }

    pub(crate) fn error(&self, offset: usize, key: &str, message: impl Into<String>) -> SpecError {
        let (line, col) = self.position(offset);
        SpecError { file: self.file.to_path_buf(), line, col, key: key.to_string(), message: message.into() }
    }
}

/// The closest name in `candidates` to `name`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nö = \"x\"\n";
        let loc = Locator::new(Path::new("x.toml"), text);
        assert_eq!(loc.position(0), (1, 1));
        assert_eq!(loc.position(6), (2, 1));
        // 'ö' is two bytes but one column.
        assert_eq!(loc.position(6 + "ö = ".len()), (2, 5));
    }

    #[test]
    fn closest_finds_typos_only() {
        let keys = ["learning_rates", "models", "schemes"];
        assert_eq!(closest("learning_rate", &keys), Some("learning_rates"));
        assert_eq!(closest("model", &keys), Some("models"));
        assert_eq!(closest("zzzzzz", &keys), None);
    }
}
