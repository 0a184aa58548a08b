//! `predictions.conll`: every test word with its gold and predicted tag, `word<TAB>gold<TAB>pred`
//! per line (tabs: entity types may contain spaces), a blank line after each sentence. The input
//! of `nergrid eval` and of the report's paired bootstrap. Written and read only here.

use std::path::Path;

use super::StoreError;
use crate::data::tag_columns::conll_fields;

/// One test sentence with its gold and predicted tags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PredictedSentence {
    pub words: Vec<String>,
    pub gold: Vec<String>,
    pub predicted: Vec<String>,
}

/// The file's text for `sentences`.
pub fn format_predictions(sentences: &[PredictedSentence]) -> String {
    let mut out = String::new();
    for s in sentences {
        for ((w, g), p) in s.words.iter().zip(&s.gold).zip(&s.predicted) {
            out.push_str(&format!("{w}\t{g}\t{p}\n"));
        }
        out.push('\n');
    }
    out
}

/// Parses the file's text; runs of blank lines count as one sentence break.
pub fn parse_predictions(path: &Path, text: &str) -> Result<Vec<PredictedSentence>, StoreError> {
    let mut sentences = Vec::new();
    let mut current = PredictedSentence::empty();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = conll_fields(line);
        match fields[..] {
            [] => {
                if !current.words.is_empty() {
                    sentences.push(std::mem::replace(&mut current, PredictedSentence::empty()));
                }
            }
            [word, gold, predicted] => {
                current.words.push(word.into());
                current.gold.push(gold.into());
                current.predicted.push(predicted.into());
            }
            _ => {
                let message = format!("expected `word gold pred`, got {} field(s)", fields.len());
                return Err(StoreError::Malformed { path: path.to_path_buf(), line: i + 1, message });
            }
        }
    }
    if !current.words.is_empty() {
        sentences.push(current);
    }
    Ok(sentences)
}

impl PredictedSentence {
    fn empty() -> Self {
        PredictedSentence::default()
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
    fn written_text_reads_back_with_spaces_inside_types() {
        let sentences = vec![
            PredictedSentence {
                words: vec!["ont".into(), "i".into(), "magen".into()],
                gold: vec!["B-Disorder and Finding".into(), "O".into(), "B-Body Structure".into()],
                predicted: vec!["O".into(), "O".into(), "B-Body Structure".into()],
            },
            PredictedSentence { words: vec!["x".into()], gold: vec!["O".into()], predicted: vec!["S-Y".into()] },
        ];
        let text = format_predictions(&sentences);
        assert_eq!(parse_predictions(Path::new("p.conll"), &text).unwrap(), sentences);
    }

    #[test]
    fn a_malformed_line_names_file_and_line() {
        let err = parse_predictions(Path::new("runs/r/predictions.conll"), "a O O\nb O\n").unwrap_err();
        assert_eq!(err.to_string(), "runs/r/predictions.conll:2: expected `word gold pred`, got 2 field(s)");
    }
}
