//! Entity extraction in either mode: per-sentence [`Entity`] spans for callers, and the
//! flat-coordinate chunk lists that scoring matches gold against predicted with.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::chunks::{flat_chunks, sentence_chunks, Chunk};
use super::error::{MetricsError, Side};
use super::strict::{first_disallowed, sentence_spans, Span};
use super::tags::{parse_default, parse_strict, DefaultTag, StrictTag, TypeTable};

/// How entities are read from tags, as seqeval's `mode` and `scheme` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// seqeval's default (conlleval-like) chunking; accepts any tags.
    Default,
    /// seqeval's `mode="strict"` with the given scheme.
    Strict(StrictScheme),
}

/// The tagging schemes strict mode supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StrictScheme {
    Iob2,
    Iobes,
}

impl fmt::Display for StrictScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StrictScheme::Iob2 => "IOB2",
            StrictScheme::Iobes => "IOBES",
        })
    }
}

/// One entity: words `start..end` (end exclusive) of sentence `sentence`, both from 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    pub sentence: usize,
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

/// The entities of every sentence, in sentence order and, within one, by position.
///
/// Default mode reads each sentence on its own, as `get_entities(sentence)` does. Scoring
/// ([`super::evaluate`]) reads the sentences as one stream, as seqeval does; the two agree
/// whenever every tag's prefix is one of B I E S O (see `chunks.rs` for the exceptions).
/// Strict mode fails where seqeval raises: a tag whose prefix is not one of I O B E S U L
/// (`KeyError`), or one the scheme does not allow (`ValueError`).
pub fn extract_entities<S: AsRef<str>>(tags: &[Vec<S>], mode: Mode) -> Result<Vec<Entity>, MetricsError> {
    let mut table = TypeTable::new();
    let mut entities = Vec::new();
    match mode {
        Mode::Default => return default_entities(tags, Side::Input),
        Mode::Strict(scheme) => {
            let mut scan = StrictScan::new(scheme, Side::Input);
            for (sentence, words) in tags.iter().enumerate() {
                let spans = scan.sentence(words, sentence, &mut table)?;
                entities.extend(spans.iter().map(|s| Entity {
                    sentence,
                    kind: table.name(s.kind).to_owned(),
                    start: s.start,
                    end: s.end,
                }));
            }
        }
    }
    Ok(entities)
}

/// Default-mode entities of every sentence on its own, as `get_entities(sentence)` gives them;
/// a tag that cannot be parsed is reported on `side`.
pub(crate) fn default_entities<S: AsRef<str>>(tags: &[Vec<S>], side: Side) -> Result<Vec<Entity>, MetricsError> {
    let mut table = TypeTable::new();
    let mut parsed = Vec::new();
    let mut entities = Vec::new();
    for (sentence, words) in tags.iter().enumerate() {
        parse_sentence_default(words, sentence, side, &mut table, &mut parsed)?;
        entities.extend(sentence_chunks(&parsed).into_iter().map(|c| Entity {
            sentence,
            kind: table.name(c.kind).to_owned(),
            start: c.begin,
            end: c.end + 1,
        }));
    }
    Ok(entities)
}

/// The entities of all sentences as chunks in one coordinate system where every entity has a
/// distinct, strictly increasing end. Gold and predicted lists built with the same table over
/// sentences of equal lengths can be matched by position.
pub(crate) fn scoring_chunks<S: AsRef<str>>(
    sentences: &[Vec<S>],
    mode: Mode,
    side: Side,
    table: &mut TypeTable,
) -> Result<Vec<Chunk>, MetricsError> {
    match mode {
        Mode::Default => flat_chunks(sentences, side, table),
        Mode::Strict(scheme) => {
            let mut scan = StrictScan::new(scheme, side);
            let mut chunks = Vec::new();
            let mut offset = 0;
            for (sentence, words) in sentences.iter().enumerate() {
                let spans = scan.sentence(words, sentence, table)?;
                chunks.extend(spans.iter().map(|s| Chunk {
                    kind: s.kind,
                    begin: offset + s.start,
                    end: offset + s.end,
                }));
                offset += words.len();
            }
            Ok(chunks)
        }
    }
}

fn parse_sentence_default<S: AsRef<str>>(
    words: &[S],
    sentence: usize,
    side: Side,
    table: &mut TypeTable,
    parsed: &mut Vec<DefaultTag>,
) -> Result<(), MetricsError> {
    parsed.clear();
    for (token, tag) in words.iter().enumerate() {
        let tag =
            parse_default(tag.as_ref(), table).map_err(|source| MetricsError::Tag { side, sentence, token, source })?;
        parsed.push(tag);
    }
    Ok(())
}

/// Strict extraction sentence by sentence, reusing its buffers.
struct StrictScan {
    scheme: StrictScheme,
    side: Side,
    parsed: Vec<StrictTag>,
    spans: Vec<Span>,
}

impl StrictScan {
    fn new(scheme: StrictScheme, side: Side) -> Self {
        StrictScan { scheme, side, parsed: Vec::new(), spans: Vec::new() }
    }

    /// Like seqeval's `Tokens(sentence).entities`: every tag is parsed first (unknown prefixes
    /// fail), then the scan fails at the first tag the scheme does not allow.
    fn sentence<S: AsRef<str>>(
        &mut self,
        words: &[S],
        sentence: usize,
        table: &mut TypeTable,
    ) -> Result<&[Span], MetricsError> {
        let side = self.side;
        let located = |token, source| MetricsError::Tag { side, sentence, token, source };
        self.parsed.clear();
        for (token, tag) in words.iter().enumerate() {
            let tag = parse_strict(tag.as_ref(), table).map_err(|e| located(token, e))?;
            self.parsed.push(tag);
        }
        let raw = |k: usize| words[k].as_ref().to_owned();
        if let Some((token, error)) = first_disallowed(&self.parsed, raw, self.scheme) {
            return Err(located(token, error));
        }
        self.spans.clear();
        sentence_spans(&self.parsed, self.scheme, &mut self.spans);
        Ok(&self.spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::error::TagError;

    fn sentences(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().map(|t| t.to_string()).collect()).collect()
    }

    fn entity(sentence: usize, kind: &str, start: usize, end: usize) -> Entity {
        Entity { sentence, kind: kind.into(), start, end }
    }

    #[test]
    fn default_entities_are_per_sentence_with_exclusive_ends() {
        let tags = sentences(&[&["O", "B-PER", "I-PER"], &[], &["S-LOC", "B-DRUG-NAME"]]);
        assert_eq!(
            extract_entities(&tags, Mode::Default).unwrap(),
            vec![entity(0, "PER", 1, 3), entity(2, "LOC", 0, 1), entity(2, "DRUG-NAME", 1, 2)]
        );
    }

    #[test]
    fn strict_iob2_rejects_bioes_tags_with_their_location() {
        let tags = sentences(&[&["B-PER"], &["O", "S-PER"]]);
        let err = extract_entities(&tags, Mode::Strict(StrictScheme::Iob2)).unwrap_err();
        assert!(matches!(
            err,
            MetricsError::Tag { sentence: 1, token: 1, source: TagError::NotInScheme { prefix: 'S', .. }, .. }
        ));
    }

    #[test]
    fn an_unknown_prefix_is_reported_before_a_disallowed_one_in_the_same_sentence() {
        let tags = sentences(&[&["E-PER", "X-PER"]]);
        let err = extract_entities(&tags, Mode::Strict(StrictScheme::Iob2)).unwrap_err();
        assert!(matches!(err, MetricsError::Tag { token: 1, source: TagError::UnknownPrefix { .. }, .. }));
    }

    #[test]
    fn strict_iobes_finds_nothing_in_bio_data() {
        let tags = sentences(&[&["B-PER", "I-PER", "O", "B-LOC"]]);
        assert_eq!(extract_entities(&tags, Mode::Strict(StrictScheme::Iobes)).unwrap(), vec![]);
    }

    #[test]
    fn strict_scoring_chunks_have_increasing_ends_across_sentences() {
        let tags = sentences(&[&["B-PER", "I-PER"], &["B-LOC"]]);
        let mut table = TypeTable::new();
        let chunks = scoring_chunks(&tags, Mode::Strict(StrictScheme::Iob2), Side::Gold, &mut table).unwrap();
        let spans: Vec<_> = chunks.iter().map(|c| (c.begin, c.end)).collect();
        assert_eq!(spans, vec![(0, 2), (2, 3)]);
    }
}
