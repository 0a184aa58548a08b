//! Tagging schemes: word spans to tags, tags to word spans, and conversion between schemes.
//!
//! * `IO`: `I-X` on every word of an entity.
//! * `BIO` (also `IOB2`): `B-X` on the first word, `I-X` on the rest.
//! * `IOB1`: like BIO, but `B-X` only on the first word of an entity that directly follows
//!   another entity of the same type; every other entity word is `I-X`.
//! * `BIOES` (also `IOBES`, `BILOU`): `S-X` on a one-word entity, otherwise `B-X`, `I-X`…,
//!   `E-X`. The aliases write the same S/E tags; `U-`/`L-` are accepted when decoding.
//!
//! Spans are painted in order onto a row of `O`, later spans overwriting earlier ones, which is
//! how the reference notebook labels overlapping entities. Decoding follows seqeval's default
//! (lenient) chunking for every scheme, so `decode(scheme.tags(s))` recovers disjoint spans.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::corpus::{Sentence, WordSpan};
use crate::tags::{self, split_tag};

/// A tagging scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Io,
    Bio,
    Iob1,
    Bioes,
}

/// Names accepted by [`Scheme::from_str`], case-insensitive.
pub const SCHEME_NAMES: [&str; 7] = ["IO", "BIO", "IOB2", "IOB1", "BIOES", "IOBES", "BILOU"];

impl FromStr for Scheme {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_uppercase().as_str() {
            "IO" => Ok(Scheme::Io),
            "BIO" | "IOB2" => Ok(Scheme::Bio),
            "IOB1" => Ok(Scheme::Iob1),
            "BIOES" | "IOBES" | "BILOU" => Ok(Scheme::Bioes),
            _ => Err(format!("unknown tagging scheme {name:?}, expected one of {}", SCHEME_NAMES.join(", "))),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Io => "IO",
            Scheme::Bio => "BIO",
            Scheme::Iob1 => "IOB1",
            Scheme::Bioes => "BIOES",
        })
    }
}

impl Serialize for Scheme {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scheme {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl Scheme {
    /// Tag prefixes of the scheme, in the order the label set lists them.
    pub fn prefixes(self) -> &'static [char] {
        match self {
            Scheme::Io => &['I'],
            Scheme::Bio | Scheme::Iob1 => &['B', 'I'],
            Scheme::Bioes => &['B', 'I', 'E', 'S'],
        }
    }

    /// One tag per word of `sentence`.
    pub fn tags(self, sentence: &Sentence) -> Vec<String> {
        encode(&sentence.entities, sentence.words.len(), self)
    }

    /// The label set: `O` first, then for each type in string order its tags in prefix order
    /// (BIO: `B-X, I-X`; BIOES: `B-X, I-X, E-X, S-X`; IO: `I-X`; IOB1: `B-X, I-X`).
    pub fn label_set(self, types: &[String]) -> Vec<String> {
        let mut sorted = types.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut labels = vec!["O".to_string()];
        for kind in &sorted {
            labels.extend(self.prefixes().iter().map(|p| format!("{p}-{kind}")));
        }
        labels
    }

    /// Whether `tag` is `O` or a tag of this scheme (BIOES also takes `U-`/`L-`).
    pub fn accepts(self, tag: &str) -> bool {
        if tag.is_empty() {
            return false;
        }
        match split_tag(tag) {
            None => true,
            Some((prefix, _)) => self.prefixes().contains(&prefix) || (self == Scheme::Bioes && "UL".contains(prefix)),
        }
    }
}

/// Tags for `len` words from `spans`, painted in order (later spans overwrite earlier ones).
pub fn encode(spans: &[WordSpan], len: usize, scheme: Scheme) -> Vec<String> {
    let painter = if scheme == Scheme::Iob1 { Scheme::Bio } else { scheme };
    let mut tags = vec!["O".to_string(); len];
    for span in spans.iter().filter(|s| s.end <= len && !s.is_empty()) {
        for (offset, position) in (span.start..span.end).enumerate() {
            let prefix = prefix_at(painter, offset, span.len());
            tags[position] = format!("{prefix}-{}", span.kind);
        }
    }
    if scheme == Scheme::Iob1 {
        bio_to_iob1(&mut tags);
    }
    tags
}

fn prefix_at(scheme: Scheme, offset: usize, len: usize) -> char {
    match scheme {
        Scheme::Io => 'I',
        Scheme::Bio | Scheme::Iob1 => {
            if offset == 0 {
                'B'
            } else {
                'I'
            }
        }
        Scheme::Bioes => match (offset, len) {
            (_, 1) => 'S',
            (0, _) => 'B',
            (o, l) if o + 1 == l => 'E',
            _ => 'I',
        },
    }
}

/// IOB1 keeps `B-X` only where the previous word is also of type X.
fn bio_to_iob1(tags: &mut [String]) {
    let kinds: Vec<Option<String>> = tags.iter().map(|t| split_tag(t).map(|(_, kind)| kind.to_string())).collect();
    for i in 0..tags.len() {
        let Some((prefix, kind)) = split_tag(&tags[i]) else {
            continue;
        };
        let follows_same = i > 0 && kinds[i - 1].as_deref() == Some(kind);
        if prefix == 'B' && !follows_same {
            tags[i] = format!("I-{kind}");
        }
    }
}

/// Word spans of a tag sequence, with seqeval's default chunking rules.
///
/// A chunk starts at `B`/`S`, at `I`/`E` after `O`, `E` or `S`, and at any type change; it ends
/// before `B`, `S`, `O` or a type change, and after `E`/`S`. `U`/`L` read as `S`/`E`. The
/// `scheme` only matters for `U`/`L`, which only BIOES (BILOU) accepts.
pub fn decode(tags: &[String], scheme: Scheme) -> Vec<WordSpan> {
    let parsed: Vec<(char, &str)> = tags.iter().map(|t| normalised(t, scheme)).collect();
    tags::chunks(&parsed)
        .into_iter()
        .map(|c| WordSpan { kind: c.kind.to_string(), start: c.start, end: c.end })
        .collect()
}

fn normalised(tag: &str, scheme: Scheme) -> (char, &str) {
    match split_tag(tag) {
        None => ('O', ""),
        Some(('U', kind)) if scheme == Scheme::Bioes => ('S', kind),
        Some(('L', kind)) if scheme == Scheme::Bioes => ('E', kind),
        Some(parsed) => parsed,
    }
}

/// Tags of one sentence converted from one scheme to another through its spans.
pub fn convert(tags: &[String], from: Scheme, to: Scheme) -> Vec<String> {
    encode(&decode(tags, from), tags.len(), to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    fn span(kind: &str, start: usize, end: usize) -> WordSpan {
        WordSpan { kind: kind.into(), start, end }
    }

    #[test]
    fn names_and_aliases_parse_case_insensitively() {
        assert_eq!("iob2".parse::<Scheme>(), Ok(Scheme::Bio));
        assert_eq!("BILOU".parse::<Scheme>(), Ok(Scheme::Bioes));
        assert_eq!("Iobes".parse::<Scheme>(), Ok(Scheme::Bioes));
        assert_eq!("io".parse::<Scheme>(), Ok(Scheme::Io));
        assert_eq!("IOB1".parse::<Scheme>(), Ok(Scheme::Iob1));
        assert!("BIOX".parse::<Scheme>().unwrap_err().contains("expected one of IO, BIO"));
        assert_eq!(Scheme::Bioes.to_string(), "BIOES");
    }

    #[test]
    fn each_scheme_encodes_spans() {
        let spans = [span("A", 0, 3), span("A", 3, 4), span("B", 5, 6)];
        let expect = |scheme: Scheme, tags: &[&str]| {
            assert_eq!(encode(&spans, 6, scheme), strings(tags), "{scheme}");
        };
        expect(Scheme::Io, &["I-A", "I-A", "I-A", "I-A", "O", "I-B"]);
        expect(Scheme::Bio, &["B-A", "I-A", "I-A", "B-A", "O", "B-B"]);
        expect(Scheme::Iob1, &["I-A", "I-A", "I-A", "B-A", "O", "I-B"]);
        expect(Scheme::Bioes, &["B-A", "I-A", "E-A", "S-A", "O", "S-B"]);
    }

    #[test]
    fn later_spans_overwrite_earlier_ones() {
        let spans = [span("A", 0, 3), span("B", 1, 2)];
        assert_eq!(encode(&spans, 3, Scheme::Bio), strings(&["B-A", "B-B", "I-A"]));
        assert_eq!(encode(&spans, 3, Scheme::Bioes), strings(&["B-A", "S-B", "E-A"]));
    }

    #[test]
    fn decoding_inverts_encoding_for_every_scheme_that_can_tell_spans_apart() {
        let spans = vec![span("A", 0, 2), span("A", 2, 3), span("B", 4, 5)];
        for scheme in [Scheme::Bio, Scheme::Iob1, Scheme::Bioes] {
            assert_eq!(decode(&encode(&spans, 6, scheme), scheme), spans, "{scheme}");
        }
        let io = decode(&encode(&spans, 6, Scheme::Io), Scheme::Io);
        assert_eq!(io, vec![span("A", 0, 3), span("B", 4, 5)]);
    }

    #[test]
    fn decoding_is_lenient_like_seqeval() {
        let tags = strings(&["I-A", "I-A", "O", "E-B", "B-A", "I-B", "S-A", "E-A"]);
        let expected =
            vec![span("A", 0, 2), span("B", 3, 4), span("A", 4, 5), span("B", 5, 6), span("A", 6, 7), span("A", 7, 8)];
        assert_eq!(decode(&tags, Scheme::Bioes), expected);
    }

    #[test]
    fn bilou_tags_decode_as_bioes() {
        let tags = strings(&["B-A", "L-A", "U-B"]);
        assert_eq!(decode(&tags, Scheme::Bioes), vec![span("A", 0, 2), span("B", 2, 3)]);
        assert!(Scheme::Bioes.accepts("U-B"));
        assert!(!Scheme::Bio.accepts(""));
        assert!(!Scheme::Bio.accepts("E-B"));
    }

    #[test]
    fn tag_types_follow_seqeval() {
        assert_eq!(split_tag("B-DRUG-NAME"), Some(('B', "DRUG-NAME")));
        assert_eq!(split_tag("B"), Some(('B', "_")));
        assert_eq!(split_tag("O"), None);
    }

    #[test]
    fn label_set_order_is_documented_order() {
        let types = strings(&["b", "a", "b"]);
        assert_eq!(Scheme::Bio.label_set(&types), strings(&["O", "B-a", "I-a", "B-b", "I-b"]));
        assert_eq!(Scheme::Bioes.label_set(&types[..1]), strings(&["O", "B-b", "I-b", "E-b", "S-b"]));
    }

    #[test]
    fn convert_goes_through_spans() {
        let bio = strings(&["B-A", "I-A", "O", "B-A", "B-A"]);
        let bioes = convert(&bio, Scheme::Bio, Scheme::Bioes);
        assert_eq!(bioes, strings(&["B-A", "E-A", "O", "S-A", "S-A"]));
        assert_eq!(convert(&bioes, Scheme::Bioes, Scheme::Bio), bio);
    }
}
