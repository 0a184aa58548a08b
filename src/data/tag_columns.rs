//! The file `nergrid eval` scores: CoNLL-style token lines whose last two columns are the gold
//! and the predicted tag (as conlleval.pl reads it), a blank line between sentences,
//! `-DOCSTART-` lines skipped. A run's `predictions.conll` is such a file.

use std::path::{Path, PathBuf};

/// The columns of a line of `predictions.conll` (or any CoNLL-style file): split on tabs when
/// the line has one, so tags whose type contains spaces (`B-Body Structure`) survive, else on
/// whitespace. A blank line gives no columns.
pub fn conll_fields(line: &str) -> Vec<&str> {
    if line.trim().is_empty() {
        Vec::new()
    } else if line.contains('\t') {
        line.split('\t').map(str::trim).collect()
    } else {
        line.split_whitespace().collect()
    }
}

/// The tag columns of a file, sentence by sentence.
#[derive(Debug, Default, PartialEq)]
pub struct TagColumns {
    pub gold: Vec<Vec<String>>,
    pub predicted: Vec<Vec<String>>,
    /// Line number (from 1) of each sentence's first token.
    pub first_lines: Vec<usize>,
}

impl TagColumns {
    /// The file line of token `token` (0-based) of sentence `sentence`.
    pub fn line_of(&self, sentence: usize, token: usize) -> usize {
        self.first_lines[sentence] + token
    }
}

/// A file that is not a tag-column file; the message names `path:line`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagColumnsError {
    #[error("{}:{line}: expected at least 2 columns (.. gold tag, predicted tag), found 1", path.display())]
    OneColumn { path: PathBuf, line: usize },
    #[error("{}:{line}: expected {expected} columns like line {first}, found {found}", path.display())]
    ColumnCount { path: PathBuf, line: usize, expected: usize, first: usize, found: usize },
    #[error("{}: no token lines", path.display())]
    Empty { path: PathBuf },
}

/// Reads the last two columns of every token line of `text` (read from `path`). All token
/// lines must have the same number of columns (at least 2), as conlleval.pl requires.
pub fn read_tag_columns(text: &str, path: &Path) -> Result<TagColumns, TagColumnsError> {
    let mut tagged = TagColumns::default();
    let mut in_sentence = false;
    let mut columns: Option<(usize, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fields: Vec<&str> = conll_fields(line);
        if fields.is_empty() || fields[0] == "-DOCSTART-" {
            in_sentence = false;
            continue;
        }
        match columns {
            _ if fields.len() < 2 => return Err(TagColumnsError::OneColumn { path: path.into(), line: number }),
            Some((expected, first)) if fields.len() != expected => {
                let found = fields.len();
                return Err(TagColumnsError::ColumnCount { path: path.into(), line: number, expected, first, found });
            }
            None => columns = Some((fields.len(), number)),
            Some(_) => {}
        }
        if !in_sentence {
            tagged.gold.push(Vec::new());
            tagged.predicted.push(Vec::new());
            tagged.first_lines.push(number);
            in_sentence = true;
        }
        let n = fields.len();
        tagged.gold.last_mut().expect("a sentence is open").push(fields[n - 2].to_owned());
        tagged.predicted.last_mut().expect("a sentence is open").push(fields[n - 1].to_owned());
    }
    if tagged.gold.is_empty() {
        return Err(TagColumnsError::Empty { path: path.into() });
    }
    Ok(tagged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TagColumns, TagColumnsError> {
        read_tag_columns(text, Path::new("x.conll"))
    }

    #[test]
    fn blank_lines_and_docstart_separate_sentences() {
        let text = "-DOCSTART- -X- O O\n\nEU B-ORG B-ORG\nrejects O O\n\n\n\nPeter B-PER I-PER\r\n";
        let tagged = parse(text).unwrap();
        assert_eq!(tagged.gold, vec![vec!["B-ORG", "O"], vec!["B-PER"]]);
        assert_eq!(tagged.predicted[1], vec!["I-PER"]);
        assert_eq!(tagged.first_lines, vec![3, 8]);
        assert_eq!(tagged.line_of(0, 1), 4);
    }

    #[test]
    fn tabs_keep_spaces_inside_tags() {
        assert_eq!(conll_fields("ont\tB-Body Structure\tO"), ["ont", "B-Body Structure", "O"]);
        assert_eq!(conll_fields("word  B-X   I-X"), ["word", "B-X", "I-X"]);
        assert!(conll_fields("  \t ").is_empty());
    }

    #[test]
    fn tab_separated_types_with_spaces_are_one_column() {
        let tagged = parse("ont\tB-Body Structure\tO\n").unwrap();
        assert_eq!(tagged.gold, vec![vec!["B-Body Structure"]]);
    }

    #[test]
    fn a_line_with_one_column_is_located() {
        let err = parse("a O O\nb\n").unwrap_err();
        assert_eq!(err.to_string(), "x.conll:2: expected at least 2 columns (.. gold tag, predicted tag), found 1");
    }

    #[test]
    fn column_counts_must_agree() {
        let err = parse("a NN O O\n\nb O O\n").unwrap_err();
        assert_eq!(err.to_string(), "x.conll:3: expected 4 columns like line 1, found 3");
    }

    #[test]
    fn a_file_without_tokens_is_an_error() {
        let err = parse("\n-DOCSTART- O O\n\n").unwrap_err();
        assert_eq!(err.to_string(), "x.conll: no token lines");
    }
}
