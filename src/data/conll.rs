//! CoNLL-style token-per-line corpora: `token<TAB>tag`, or columns with the tag in a chosen one.
//!
//! * A line whose text is only whitespace ends a sentence; runs of them are one break.
//! * A line whose first column is `-DOCSTART-` is a document marker and also a break.
//! * Columns: split on `separator` when it is given; otherwise on tabs when the line has one,
//!   else on runs of whitespace. The token is column 0, the tag is `tag_column` (0-based,
//!   default: the last column).
//! * Tags must belong to the source scheme (default BIO); they are decoded into word spans,
//!   so a corpus can be re-tagged in any scheme.
//!
//! With `on_error = "skip"`, a sentence with a malformed line is left out as a whole.

use std::path::Path;

use super::corpus::{Sentence, TaggedSentence};
use super::error::{DataError, Problem};
use super::records::{read_lines, Skipped};
use super::scheme::{decode, Scheme};

/// How to read the columns of a CoNLL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConllOptions {
    pub tag_column: Option<usize>,
    pub separator: Option<String>,
    pub scheme: Scheme,
}

impl Default for ConllOptions {
    fn default() -> Self {
        ConllOptions { tag_column: None, separator: None, scheme: Scheme::Bio }
    }
}

/// A sentence being read: its tokens, or the first error of one of its lines.
type Pending = Result<TaggedSentence, DataError>;

/// The sentences of a CoNLL file with their tags as written.
pub fn read_conll(
    path: &Path,
    options: &ConllOptions,
    skipped: &mut Skipped,
) -> Result<Vec<TaggedSentence>, DataError> {
    let mut sentences = Vec::new();
    let mut pending: Option<Pending> = None;
    for (number, line) in read_lines(path)? {
        match line.and_then(|text| parse_line(path, number, &text, options)) {
            Ok(None) => finish(&mut pending, &mut sentences, skipped)?,
            Ok(Some((word, tag))) => push_token(&mut pending, word, tag),
            Err(e) => fail_sentence(&mut pending, e),
        }
    }
    finish(&mut pending, &mut sentences, skipped)?;
    Ok(sentences)
}

/// The sentences of a CoNLL file as words and entity spans.
pub fn load_conll(path: &Path, options: &ConllOptions, skipped: &mut Skipped) -> Result<Vec<Sentence>, DataError> {
    let tagged = read_conll(path, options, skipped)?;
    let sentences = tagged
        .into_iter()
        .map(|s| Sentence { entities: decode(&s.tags, options.scheme), words: s.words, text: None })
        .collect();
    Ok(sentences)
}

fn push_token(pending: &mut Option<Pending>, word: String, tag: String) {
    let empty = || Ok(TaggedSentence { words: Vec::new(), tags: Vec::new() });
    if let Ok(sentence) = pending.get_or_insert_with(empty) {
        sentence.words.push(word);
        sentence.tags.push(tag);
    }
}

fn fail_sentence(pending: &mut Option<Pending>, error: DataError) {
    if !matches!(pending, Some(Err(_))) {
        *pending = Some(Err(error));
    }
}

fn finish(
    pending: &mut Option<Pending>,
    sentences: &mut Vec<TaggedSentence>,
    skipped: &mut Skipped,
) -> Result<(), DataError> {
    if let Some(result) = pending.take() {
        sentences.extend(skipped.check(result)?);
    }
    Ok(())
}

/// `None` for a sentence break, or the token and tag of a line.
fn parse_line(
    path: &Path,
    number: usize,
    text: &str,
    options: &ConllOptions,
) -> Result<Option<(String, String)>, DataError> {
    let columns = split_columns(text, options.separator.as_deref());
    if columns.is_empty() || columns[0] == "-DOCSTART-" {
        return Ok(None);
    }
    let needed = options.tag_column.map_or(2, |c| (c + 1).max(2));
    if columns.len() < needed {
        let problem = Problem::TooFewColumns { needed, found: columns.len() };
        return Err(DataError::malformed(path, number, "columns", problem));
    }
    let tag = columns[options.tag_column.unwrap_or(columns.len() - 1)];
    if !options.scheme.accepts(tag) {
        let problem = Problem::InvalidTag { tag: tag.into(), scheme: options.scheme.to_string() };
        return Err(DataError::malformed(path, number, "tag", problem));
    }
    Ok(Some((columns[0].to_string(), tag.to_string())))
}

/// Columns of a line; empty for a blank line.
fn split_columns<'a>(text: &'a str, separator: Option<&str>) -> Vec<&'a str> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    match separator {
        Some(sep) => text.split(sep).collect(),
        None if text.contains('\t') => text.split('\t').collect(),
        None => text.split_whitespace().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::records::OnError;

    fn write(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.tsv");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_sentences_and_skips_docstart() {
        let (_dir, path) = write("-DOCSTART-\tO\n\nA\tB-X\nb\tI-X\n\n\nc\tO\n");
        let mut skipped = Skipped::new(OnError::Fail);
        let sentences = load_conll(&path, &ConllOptions::default(), &mut skipped).unwrap();
        assert_eq!(sentences.len(), 2);
        assert_eq!(sentences[0].words, ["A", "b"]);
        assert_eq!(sentences[0].entities.len(), 1);
        assert_eq!(sentences[0].entities[0].end, 2);
    }

    #[test]
    fn tag_column_and_separator_are_configurable() {
        let (_dir, path) = write("A NN B-X x\nb NN I-X y\n");
        let options = ConllOptions { tag_column: Some(2), separator: Some(" ".into()), scheme: Scheme::Bio };
        let tagged = read_conll(&path, &options, &mut Skipped::new(OnError::Fail)).unwrap();
        assert_eq!(tagged[0].tags, ["B-X", "I-X"]);
    }

    #[test]
    fn too_few_columns_names_path_line_and_field() {
        let (_dir, path) = write("A\tO\nb\n\nc\tO\n");
        let mut skipped = Skipped::new(OnError::Fail);
        let error = read_conll(&path, &ConllOptions::default(), &mut skipped).unwrap_err();
        let message = error.to_string();
        assert!(message.ends_with("c.tsv:2: columns: too few columns: needs 2, found 1"), "{message}");
    }

    #[test]
    fn skip_mode_drops_the_whole_sentence_and_counts_it() {
        let (_dir, path) = write("A\tO\nb\nc\tB-Y\n\nd\tO\n\ne\tE-X\n");
        let mut skipped = Skipped::new(OnError::Skip);
        let tagged = read_conll(&path, &ConllOptions::default(), &mut skipped).unwrap();
        assert_eq!(tagged.len(), 1);
        assert_eq!(tagged[0].words, ["d"]);
        assert_eq!(skipped.messages.len(), 2);
        assert!(skipped.messages[1].contains(":7: tag: \"E-X\" is not a BIO tag"));
    }
}
