//! Strict-mode entities: a literal port of seqeval 1.2.2's `seqeval.scheme` (`IOB2`, `IOBES`,
//! `Tokens.entities`). An entity exists only where the scheme's start, inside and end patterns
//! all hold, so IOB2 drops a chunk that starts with I- and IOBES finds nothing in BIO data.

use super::entities::StrictScheme;
use super::error::TagError;
use super::tags::{Prefix, StrictTag};

/// An entity of one sentence: words `start..end` (end exclusive, as seqeval's `Entity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub kind: super::tags::TypeId,
    pub start: usize,
    pub end: usize,
}

impl StrictScheme {
    fn allows(self, prefix: Prefix) -> bool {
        use Prefix::*;
        match self {
            StrictScheme::Iob2 => matches!(prefix, I | O | B),
            StrictScheme::Iobes => matches!(prefix, I | O | B | E | S),
        }
    }

    /// The allowed prefixes, in seqeval's order, for error messages.
    pub(crate) fn allowed_prefixes(self) -> &'static str {
        match self {
            StrictScheme::Iob2 => "I, O, B",
            StrictScheme::Iobes => "I, O, B, E, S",
        }
    }

    /// `Token.is_start`: the patterns `(ANY, B)` and, for IOBES, `(ANY, S)`.
    fn is_start(self, token: StrictTag) -> bool {
        match self {
            StrictScheme::Iob2 => token.prefix == Prefix::B,
            StrictScheme::Iobes => matches!(token.prefix, Prefix::B | Prefix::S),
        }
    }

    /// `Token.is_inside`: B or I followed by I (IOBES: or E) of the same type.
    fn is_inside(self, prev: StrictTag, token: StrictTag) -> bool {
        let continues = match self {
            StrictScheme::Iob2 => token.prefix == Prefix::I,
            StrictScheme::Iobes => matches!(token.prefix, Prefix::I | Prefix::E),
        };
        continues && matches!(prev.prefix, Prefix::B | Prefix::I) && prev.kind == token.kind
    }

    /// `Token.is_end`: whether the entity closed by `prev` is complete when `token` follows.
    fn is_end(self, prev: StrictTag, token: StrictTag) -> bool {
        match self {
            StrictScheme::Iob2 => {
                matches!(prev.prefix, Prefix::B | Prefix::I)
                    && (matches!(token.prefix, Prefix::O | Prefix::B)
                        || (token.prefix == Prefix::I && prev.kind != token.kind))
            }
            StrictScheme::Iobes => matches!(prev.prefix, Prefix::S | Prefix::E),
        }
    }
}

/// The first tag the scheme does not allow, as `(token index, error)`. seqeval raises it when
/// its scan reaches that token, and the scan visits every token.
pub(crate) fn first_disallowed(
    tags: &[StrictTag],
    raw: impl Fn(usize) -> String,
    scheme: StrictScheme,
) -> Option<(usize, TagError)> {
    let token = tags.iter().position(|t| !scheme.allows(t.prefix))?;
    let error = TagError::NotInScheme { tag: raw(token), prefix: tags[token].prefix.letter(), scheme };
    Some((token, error))
}

/// `Tokens.entities` for one sentence whose tags the scheme allows.
pub(crate) fn sentence_spans(tags: &[StrictTag], scheme: StrictScheme, out: &mut Vec<Span>) {
    let n = tags.len();
    // `extended_tokens`: the sentence plus one `O`.
    let at = |k: usize| tags.get(k).copied().unwrap_or(StrictTag::OUTSIDE);
    // seqeval also tracks the previous token here, but both schemes start an entity whatever
    // precedes it, so it is not needed.
    let mut i = 0;
    while i <= n {
        let token = at(i);
        if scheme.is_start(token) {
            let end = forward(i + 1, token, n, scheme, at);
            if scheme.is_end(at(end - 1), at(end)) {
                out.push(Span { kind: token.kind, start: i, end });
            }
            i = end;
        } else {
            i += 1;
        }
    }
}

/// `Tokens._forward`: the first position from `start` that does not continue the entity.
fn forward(
    start: usize,
    mut prev: StrictTag,
    n: usize,
    scheme: StrictScheme,
    at: impl Fn(usize) -> StrictTag,
) -> usize {
    for k in start..=n {
        let token = at(k);
        if !scheme.is_inside(prev, token) {
            return k;
        }
        prev = token;
    }
    // Unreachable: the appended `O` is never inside an entity.
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tags::{parse_strict, TypeTable};

    fn spans(tags: &[&str], scheme: StrictScheme) -> Vec<(String, usize, usize)> {
        let mut table = TypeTable::new();
        let parsed: Vec<StrictTag> = tags.iter().map(|t| parse_strict(t, &mut table).unwrap()).collect();
        let mut out = Vec::new();
        sentence_spans(&parsed, scheme, &mut out);
        out.into_iter().map(|s| (table.name(s.kind).to_owned(), s.start, s.end)).collect()
    }

    fn s(kind: &str, start: usize, end: usize) -> (String, usize, usize) {
        (kind.to_owned(), start, end)
    }

    #[test]
    fn iob2_needs_a_b_to_start() {
        assert_eq!(spans(&["B", "I", "O", "I"], StrictScheme::Iob2), vec![s("_", 0, 2)]);
        assert_eq!(spans(&["I-PER", "I-PER", "B-PER", "O"], StrictScheme::Iob2), vec![s("PER", 2, 3)]);
    }

    #[test]
    fn iob2_splits_at_a_type_change() {
        assert_eq!(
            spans(&["B-PER", "I-LOC", "I-LOC", "B-PER"], StrictScheme::Iob2),
            vec![s("PER", 0, 1), s("PER", 3, 4)]
        );
    }

    #[test]
    fn iobes_needs_an_e_or_s_to_end() {
        assert_eq!(spans(&["B-PER", "I-PER", "O"], StrictScheme::Iobes), vec![]);
        assert_eq!(
            spans(&["B-PER", "I-PER", "E-PER", "S-LOC", "S-LOC"], StrictScheme::Iobes),
            vec![s("PER", 0, 3), s("LOC", 3, 4), s("LOC", 4, 5)]
        );
    }

    #[test]
    fn iobes_drops_a_chunk_broken_by_a_type_change() {
        assert_eq!(spans(&["B-PER", "E-LOC", "B-LOC", "E-LOC"], StrictScheme::Iobes), vec![s("LOC", 2, 4)]);
    }

    #[test]
    fn iobes_ends_at_the_first_e() {
        assert_eq!(spans(&["B-PER", "E-PER", "E-PER"], StrictScheme::Iobes), vec![s("PER", 0, 2)]);
    }

    #[test]
    fn disallowed_prefixes_are_found_by_position() {
        let mut table = TypeTable::new();
        let raw = ["B-PER", "E-PER", "S-PER"];
        let tags: Vec<_> = raw.iter().map(|t| parse_strict(t, &mut table).unwrap()).collect();
        let (token, error) = first_disallowed(&tags, |k| raw[k].to_owned(), StrictScheme::Iob2).unwrap();
        assert_eq!(token, 1);
        assert_eq!(error.to_string(), "tag \"E-PER\": prefix E is not allowed by IOB2 (allowed: I, O, B)");
        assert!(first_disallowed(&tags, |k| raw[k].to_owned(), StrictScheme::Iobes).is_none());
    }
}
