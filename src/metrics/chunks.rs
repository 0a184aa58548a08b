//! Default-mode chunking over interned tags: seqeval 1.2.2's `get_entities` as a stream, with
//! `end_of_chunk` and `start_of_chunk` from [`crate::tags`].
//!
//! seqeval scores default mode on one flattened stream: the sentences joined with an `O` after
//! each, then one more `O`. The state (previous prefix and type, chunk start) runs through the
//! whole stream, so [`flat_chunks`] does the same. For tags whose prefix is one of B I E S O the
//! sentinel `O` resets everything and the chunks are exactly those of each sentence on its own
//! ([`sentence_chunks`]); only odd prefixes (`X-`, `.`, bare `U`) can make the two differ.

use super::error::{MetricsError, Side};
use super::tags::{parse_default, DefaultTag, TypeId, TypeTable};
use crate::tags::{ends_chunk, starts_chunk};

/// A chunk in some coordinate system: `[begin, end]`, end inclusive, as seqeval reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub kind: TypeId,
    pub begin: usize,
    pub end: usize,
}

/// The initial previous type of `get_entities` is `''`, which no tag can produce.
const NO_TYPE: TypeId = TypeId::MAX;

/// The running state of `get_entities` between two tags.
#[derive(Debug)]
pub(crate) struct Chunker {
    prev_prefix: char,
    prev_kind: TypeId,
    begin: usize,
}

impl Chunker {
    pub(crate) fn new() -> Self {
        Chunker { prev_prefix: 'O', prev_kind: NO_TYPE, begin: 0 }
    }

    /// Feeds the tag at position `i`; returns the chunk that ends just before it, if any.
    pub(crate) fn step(&mut self, i: usize, tag: DefaultTag) -> Option<Chunk> {
        let (prev, prev_kind) = (self.prev_prefix, self.prev_kind);
        // An end needs a previous tag other than the initial `O`, so `i >= 1` here.
        let type_changes = prev_kind != tag.kind;
        let ended = ends_chunk(prev, tag.prefix, type_changes).then(|| Chunk {
            kind: prev_kind,
            begin: self.begin,
            end: i - 1,
        });
        if starts_chunk(prev, tag.prefix, type_changes) {
            self.begin = i;
        }
        self.prev_prefix = tag.prefix;
        self.prev_kind = tag.kind;
        ended
    }
}

/// Chunks of the flattened stream, in flat positions (sentence `k` starts after the tags and
/// sentinels of sentences `0..k`). Ends are strictly increasing.
pub(crate) fn flat_chunks<S: AsRef<str>>(
    sentences: &[Vec<S>],
    side: Side,
    table: &mut TypeTable,
) -> Result<Vec<Chunk>, MetricsError> {
    let mut chunker = Chunker::new();
    let mut chunks = Vec::new();
    let mut position = 0;
    for (sentence, tags) in sentences.iter().enumerate() {
        for (token, tag) in tags.iter().enumerate() {
            let parsed = parse_default(tag.as_ref(), table).map_err(|source| MetricsError::Tag {
                side,
                sentence,
                token,
                source,
            })?;
            chunks.extend(chunker.step(position, parsed));
            position += 1;
        }
        chunks.extend(chunker.step(position, DefaultTag::OUTSIDE));
        position += 1;
    }
    // `seq + ['O']`: the extra `O` after the last sentinel cannot end anything; kept literal.
    chunks.extend(chunker.step(position, DefaultTag::OUTSIDE));
    Ok(chunks)
}

/// Chunks of one sentence scored on its own (`get_entities(sentence)`), in word positions.
pub(crate) fn sentence_chunks(tags: &[DefaultTag]) -> Vec<Chunk> {
    let mut chunker = Chunker::new();
    let mut chunks: Vec<Chunk> = (0..).zip(tags).filter_map(|(i, &tag)| chunker.step(i, tag)).collect();
    chunks.extend(chunker.step(tags.len(), DefaultTag::OUTSIDE));
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tags::parse_default;

    /// Chunks of one sentence as `(type, begin, end_inclusive)`, like seqeval prints them.
    fn chunks(tags: &[&str]) -> Vec<(String, usize, usize)> {
        let mut table = TypeTable::new();
        let parsed: Vec<DefaultTag> = tags.iter().map(|t| parse_default(t, &mut table).unwrap()).collect();
        sentence_chunks(&parsed).into_iter().map(|c| (table.name(c.kind).to_owned(), c.begin, c.end)).collect()
    }

    fn c(kind: &str, begin: usize, end: usize) -> (String, usize, usize) {
        (kind.to_owned(), begin, end)
    }

    #[test]
    fn bio_chunks_end_at_o_and_at_a_new_b() {
        assert_eq!(
            chunks(&["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
            vec![c("PER", 0, 1), c("LOC", 3, 3), c("LOC", 4, 4)]
        );
    }

    #[test]
    fn s_and_e_end_a_chunk_unlike_conlleval() {
        assert_eq!(chunks(&["S-PER", "S-PER"]), vec![c("PER", 0, 0), c("PER", 1, 1)]);
        assert_eq!(chunks(&["B-PER", "E-PER", "B-PER", "E-PER"]), vec![c("PER", 0, 1), c("PER", 2, 3)]);
        assert_eq!(chunks(&["E-PER", "E-PER"]), vec![c("PER", 0, 0), c("PER", 1, 1)]);
    }

    #[test]
    fn i_after_o_or_a_type_change_starts_a_chunk() {
        assert_eq!(chunks(&["O", "I-PER", "I-PER"]), vec![c("PER", 1, 2)]);
        assert_eq!(chunks(&["B-PER", "I-LOC", "O"]), vec![c("PER", 0, 0), c("LOC", 1, 1)]);
    }

    #[test]
    fn bare_prefixes_have_type_underscore() {
        assert_eq!(chunks(&["B", "I", "O", "B"]), vec![c("_", 0, 1), c("_", 3, 3)]);
    }

    #[test]
    fn unknown_prefixes_only_chunk_by_type_change() {
        assert_eq!(chunks(&["X-PER", "O", "B-PER"]), vec![c("PER", 0, 0), c("PER", 2, 2)]);
        assert_eq!(chunks(&["U-PER", "O", "B-LOC", "L-LOC"]), vec![c("PER", 0, 0), c("LOC", 2, 3)]);
    }

    #[test]
    fn a_lone_dot_tag_never_ends_a_chunk() {
        // `.` is exempt from the type-change rules, so the chunk it continues is never closed.
        assert_eq!(chunks(&["B-PER", ".-PER", "O"]), vec![]);
    }

    #[test]
    fn the_flat_stream_matches_sentences_on_their_own_for_bioes_tags() {
        let sentences = vec![vec!["O", "B-PER"], vec!["I-PER", "O"], vec!["S-LOC"]];
        let mut table = TypeTable::new();
        let flat = flat_chunks(&sentences, Side::Input, &mut table).unwrap();
        let spans: Vec<_> = flat.iter().map(|c| (c.begin, c.end)).collect();
        assert_eq!(spans, vec![(1, 1), (3, 3), (6, 6)]);
    }

    #[test]
    fn the_flat_stream_carries_a_stale_chunk_start_across_sentences() {
        // `.` neither starts nor ends a chunk, so the I-PER chunk reuses the start of the last
        // chunk, in the previous sentence. On its own the second sentence gives (PER, 0, 1).
        let sentences = vec![vec!["B-LOC"], vec![".-PER", "I-PER"]];
        let mut table = TypeTable::new();
        let flat = flat_chunks(&sentences, Side::Input, &mut table).unwrap();
        let spans: Vec<_> = flat.iter().map(|c| (c.begin, c.end)).collect();
        assert_eq!(spans, vec![(0, 0), (0, 3)]);
        assert_eq!(chunks(&[".-PER", "I-PER"]), vec![c("PER", 0, 1)]);
    }

    #[test]
    fn an_empty_tag_is_located() {
        let sentences = vec![vec!["O"], vec!["B-PER", ""]];
        let err = flat_chunks(&sentences, Side::Gold, &mut TypeTable::new()).unwrap_err();
        assert_eq!(err.to_string(), "gold tags, sentence 1, token 1");
    }
}
