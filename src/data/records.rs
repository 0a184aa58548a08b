//! Reading the records of a corpus file: lines checked for UTF-8, and the fail/skip policy.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{DataError, Problem};

/// What to do with a malformed record (line, row or sentence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop at the first malformed record with its error.
    #[default]
    Fail,
    /// Leave the record out and count it.
    Skip,
}

impl std::str::FromStr for OnError {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "fail" => Ok(OnError::Fail),
            "skip" => Ok(OnError::Skip),
            _ => Err(format!("unknown on_error {name:?}, expected fail or skip")),
        }
    }
}

/// Applies the [`OnError`] policy and keeps the messages of skipped records.
#[derive(Debug, Default)]
pub struct Skipped {
    policy: OnError,
    pub messages: Vec<String>,
}

impl Skipped {
    pub fn new(policy: OnError) -> Self {
        Skipped { policy, messages: Vec::new() }
    }

    /// The value, `None` for a record error that the policy skips, or the error.
    pub fn check<T>(&mut self, result: Result<T, DataError>) -> Result<Option<T>, DataError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e) if self.policy == OnError::Skip && e.is_record_error() => {
                self.messages.push(e.to_string());
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// One line of a text file: its 1-based number and its text, or why it is not text.
pub type Line = (usize, Result<String, DataError>);

/// The lines of a file without their `\n` / `\r\n`. A final newline ends the last line; it
/// does not start an empty one. Each line is checked for UTF-8 on its own, so one bad line
/// can be skipped. A UTF-8 byte-order mark at the start (editors on Windows write one) is not
/// text and is dropped.
pub fn read_lines(path: &Path) -> Result<Vec<Line>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
    let mut pieces: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if pieces.last().is_some_and(|last| last.is_empty()) {
        pieces.pop();
    }
    let lines = pieces.into_iter().enumerate().map(|(i, piece)| (i + 1, decode_line(path, i + 1, piece))).collect();
    Ok(lines)
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

fn decode_line(path: &Path, line: usize, bytes: &[u8]) -> Result<String, DataError> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_string()),
        Err(e) => Err(DataError::malformed(path, line, "encoding", Problem::InvalidUtf8 { byte: e.valid_up_to() + 1 })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_checked_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        std::fs::write(&path, b"a\r\nb\xff\n\nc\n").unwrap();
        let lines = read_lines(&path).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].1.as_ref().unwrap(), "a");
        let error = lines[1].1.as_ref().unwrap_err().to_string();
        assert!(error.ends_with("x.txt:2: encoding: invalid UTF-8 at byte 2 of the line"), "{error}");
        assert_eq!(lines[2].1.as_ref().unwrap(), "");
        assert_eq!(lines[3].0, 4);
    }

    #[test]
    fn a_byte_order_mark_does_not_stay_in_the_first_word() {
        let dir = tempfile::tempdir().unwrap();
        let conll = dir.path().join("x.conll");
        std::fs::write(&conll, "\u{feff}a\tB-X\nb\tO\n").unwrap();
        let options = super::super::conll::ConllOptions::default();
        let sentences = super::super::conll::read_conll(&conll, &options, &mut Skipped::new(OnError::Fail)).unwrap();
        assert_eq!(sentences[0].words, ["a", "b"]);
        let jsonl = dir.path().join("x.jsonl");
        std::fs::write(&jsonl, "\u{feff}{\"text\": \"a b\", \"entities\": []}\n").unwrap();
        let lines = read_lines(&jsonl).unwrap();
        assert_eq!(lines[0].1.as_ref().unwrap(), "{\"text\": \"a b\", \"entities\": []}");
        std::fs::write(&jsonl, "a\u{feff}\n").unwrap();
        assert_eq!(read_lines(&jsonl).unwrap()[0].1.as_ref().unwrap(), "a\u{feff}", "only a leading mark is dropped");
    }

    #[test]
    fn skip_policy_keeps_messages_of_record_errors_only() {
        let mut skipped = Skipped::new(OnError::Skip);
        let record = DataError::malformed(Path::new("f"), 3, "x", Problem::Missing);
        assert!(skipped.check::<()>(Err(record)).unwrap().is_none());
        assert_eq!(skipped.messages, ["f:3: x: missing"]);
        let split = DataError::Split("no".into());
        assert!(skipped.check::<()>(Err(split)).is_err());
        let mut failing = Skipped::new(OnError::Fail);
        let record = DataError::malformed(Path::new("f"), 3, "x", Problem::Missing);
        assert!(failing.check::<()>(Err(record)).is_err());
    }
}
