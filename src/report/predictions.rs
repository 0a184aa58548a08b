//! Reads a run's `predictions.conll` (`word gold pred` per line, a blank line between
//! sentences) into tagged sentences for the paired bootstrap.

use std::path::Path;

use super::ReportError;

/// One test sentence with its gold and predicted tags.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaggedSentence {
    pub words: Vec<String>,
    pub gold: Vec<String>,
    pub predicted: Vec<String>,
}

/// Parses the file's text; runs of blank lines count as one sentence break.
pub(crate) fn parse_predictions(path: &Path, text: &str) -> Result<Vec<TaggedSentence>, ReportError> {
    let mut sentences = Vec::new();
    let mut current = TaggedSentence::empty();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = crate::store::conll_fields(line);
        match fields[..] {
            [] => {
                if !current.words.is_empty() {
                    sentences.push(std::mem::replace(&mut current, TaggedSentence::empty()));
                }
            }
            [word, gold, predicted] => {
                current.words.push(word.into());
                current.gold.push(gold.into());
                current.predicted.push(predicted.into());
            }
            _ => return Err(ReportError::Predictions { path: path.to_path_buf(), line: i + 1, fields: fields.len() }),
        }
    }
    if !current.words.is_empty() {
        sentences.push(current);
    }
    Ok(sentences)
}

impl TaggedSentence {
    fn empty() -> Self {
        TaggedSentence { words: Vec::new(), gold: Vec::new(), predicted: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_on_blank_lines() {
        let text = "Ont B-X B-X\ni O O\n\n\nhuvud S-Y O\n";
        let got = parse_predictions(Path::new("p.conll"), text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].words, ["Ont", "i"]);
        assert_eq!(got[0].predicted, ["B-X", "O"]);
        assert_eq!(got[1].gold, ["S-Y"]);
        assert!(parse_predictions(Path::new("p.conll"), "").unwrap().is_empty());
    }

    #[test]
    fn a_malformed_line_names_file_and_line() {
        let err = parse_predictions(Path::new("runs/r/predictions.conll"), "a O O\nb O\n").unwrap_err();
        assert_eq!(err.to_string(), "runs/r/predictions.conll:2: expected `word gold pred`, got 2 field(s)");
    }
}
