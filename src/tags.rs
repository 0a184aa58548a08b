//! Tag syntax and chunk boundaries, in one place: how a tag splits into a prefix letter and an
//! entity type, and where a chunk of tags starts and ends. Corpora (`data::scheme`), training
//! (`model::align`), scoring and error analysis (`metrics::chunks`, which `metrics::entities`,
//! `error_analysis` and `semeval` read entities through) and prediction (`model::predict`) use
//! these functions; none has its own copy of the rules.
//!
//! Two readings of a tag exist because two references are matched: seqeval's default mode
//! ([`split_tag`]) and the Hugging Face token-classification pipeline ([`split_pipeline_label`]).
//! seqeval's strict mode parses tags its own way (`metrics::tags`), since its rules are
//! per-scheme and not conlleval's.

/// The type seqeval gives a tag with nothing after its prefix (`B`, `B-`).
pub const BARE_TYPE: &str = "_";

/// Splits a tag as seqeval's `get_entities` does: the first character is the prefix and the
/// type is what follows the first `-` of the rest, else the rest (`B-DRUG-NAME` -> `DRUG-NAME`,
/// `BPER` -> `PER`), [`BARE_TYPE`] when empty. `None` for `O` (and the empty tag).
pub fn split_tag(tag: &str) -> Option<(char, &str)> {
    let prefix = tag.chars().next()?;
    if tag == "O" {
        return None;
    }
    let rest = &tag[prefix.len_utf8()..];
    let kind = rest.split_once('-').map_or(rest, |(_, kind)| kind);
    Some((prefix, if kind.is_empty() { BARE_TYPE } else { kind }))
}

/// Splits a label as the pipeline's `get_tag` reads it: `B-X` -> ('B', "X") for a one-letter
/// prefix; `O` -> ('O', ""); any other label is a continuation of its own type ('I', label).
pub fn split_pipeline_label(label: &str) -> (char, &str) {
    match label.split_once('-') {
        Some((p, kind)) if p.len() == 1 => (p.chars().next().unwrap_or('I'), kind),
        _ if label == "O" => ('O', ""),
        _ => ('I', label),
    }
}

/// seqeval's `end_of_chunk` (conlleval's rule plus E-/S-): whether the chunk open at the
/// previous tag (prefix `prev`) ends before a tag with prefix `tag`; `type_changes` says whether
/// the two types differ.
pub fn ends_chunk(prev: char, tag: char, type_changes: bool) -> bool {
    matches!(prev, 'E' | 'S')
        || (matches!(prev, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev != 'O' && prev != '.' && type_changes)
}

/// seqeval's `start_of_chunk`: whether a chunk starts at a tag with prefix `tag` after one with
/// prefix `prev`.
pub fn starts_chunk(prev: char, tag: char, type_changes: bool) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && type_changes)
}

/// A chunk of one sentence: its type and words `start..end` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagChunk<'t> {
    pub kind: &'t str,
    pub start: usize,
    pub end: usize,
}

/// The chunks of one sentence of split tags (`('O', "")` for `O`), by [`ends_chunk`] and
/// [`starts_chunk`], as `get_entities(sentence)` finds them.
pub fn chunks<'t>(tags: &[(char, &'t str)]) -> Vec<TagChunk<'t>> {
    let mut found = Vec::new();
    let mut open: Option<(usize, &str)> = None;
    let mut previous = ('O', "");
    for (i, &(prefix, kind)) in tags.iter().enumerate() {
        let type_changes = previous.1 != kind;
        if let Some((start, open_kind)) = open {
            if ends_chunk(previous.0, prefix, type_changes) {
                found.push(TagChunk { kind: open_kind, start, end: i });
                open = None;
            }
        }
        if starts_chunk(previous.0, prefix, type_changes) {
            open = Some((i, kind));
        }
        previous = (prefix, kind);
    }
    if let Some((start, kind)) = open {
        found.push(TagChunk { kind, start, end: tags.len() });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(tags: &[&str]) -> Vec<(String, usize, usize)> {
        let split: Vec<(char, &str)> = tags.iter().map(|t| split_tag(t).unwrap_or(('O', ""))).collect();
        chunks(&split).iter().map(|c| (c.kind.to_string(), c.start, c.end)).collect()
    }

    #[test]
    fn seqeval_splits_and_pipeline_splits() {
        assert_eq!(split_tag("B-DRUG-NAME"), Some(('B', "DRUG-NAME")));
        assert_eq!(split_tag("BPER"), Some(('B', "PER")));
        assert_eq!(split_tag("B"), Some(('B', "_")));
        assert_eq!(split_tag("O"), None);
        assert_eq!(split_tag(""), None);
        assert_eq!(split_pipeline_label("B-PER"), ('B', "PER"));
        assert_eq!(split_pipeline_label("PER"), ('I', "PER"));
        assert_eq!(split_pipeline_label("O"), ('O', ""));
    }

    #[test]
    fn chunks_follow_conlleval_and_seqeval_rules() {
        assert_eq!(chunked(&["B-X", "I-X", "O", "I-Y", "I-Y"]), [("X".into(), 0, 2), ("Y".into(), 3, 5)]);
        assert_eq!(chunked(&["B-X", "B-X", "I-Y"]), [("X".into(), 0, 1), ("X".into(), 1, 2), ("Y".into(), 2, 3)]);
        assert_eq!(
            chunked(&["S-X", "B-X", "E-X", "I-X"]),
            [("X".into(), 0, 1), ("X".into(), 1, 3), ("X".into(), 3, 4)]
        );
        assert_eq!(chunked(&["E-X", "O"]), [("X".into(), 0, 1)]);
    }
}
