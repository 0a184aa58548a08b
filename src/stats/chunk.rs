//! Entities of one tagged sentence in seqeval's default mode, and the per-sentence counts the
//! bootstrap resamples.
//!
//! Local stand-in until `crate::metrics::extract_entities` lands on main: the same rules as
//! seqeval 1.2.2's `get_entities` (golden-tested against `../shared/fixtures/seqeval_cases.jsonl`).

use std::collections::BTreeSet;

use super::bootstrap::Counts;

/// An entity: its type and first and last word (inclusive), in sentence coordinates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

/// Prefix letter and type of a tag: `B-DRUG-NAME` → ('B', "DRUG-NAME"), bare `B` → ('B', "_").
fn parse(tag: &str) -> (char, String) {
    let prefix = tag.chars().next().unwrap_or('O');
    let rest = &tag[prefix.len_utf8().min(tag.len())..];
    let kind = rest.split_once('-').map_or(rest, |(_, k)| k);
    (prefix, if kind.is_empty() { "_".into() } else { kind.into() })
}

fn ends_chunk(prev: char, tag: char, prev_kind: &str, kind: &str) -> bool {
    matches!(prev, 'E' | 'S')
        || (matches!(prev, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev != 'O' && prev != '.' && prev_kind != kind)
}

fn starts_chunk(prev: char, tag: char, prev_kind: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_kind != kind)
}

/// seqeval's default-mode (lenient) entities of one sentence.
pub fn sentence_entities<S: AsRef<str>>(tags: &[S]) -> Vec<Span> {
    let mut spans = Vec::new();
    let (mut prev, mut prev_kind, mut begin) = ('O', String::new(), 0);
    let tail = ["O"];
    for (i, tag) in tags.iter().map(AsRef::as_ref).chain(tail).enumerate() {
        let (prefix, kind) = parse(tag);
        if ends_chunk(prev, prefix, &prev_kind, &kind) {
            spans.push(Span { kind: prev_kind.clone(), start: begin, end: i - 1 });
        }
        if starts_chunk(prev, prefix, &prev_kind, &kind) {
            begin = i;
        }
        (prev, prev_kind) = (prefix, kind);
    }
    spans
}

/// Entities found, predicted and correct (same type and boundaries) in one sentence.
pub fn sentence_counts<S: AsRef<str>>(gold: &[S], predicted: &[S]) -> Counts {
    let gold: BTreeSet<Span> = sentence_entities(gold).into_iter().collect();
    let predicted: BTreeSet<Span> = sentence_entities(predicted).into_iter().collect();
    Counts {
        correct: gold.intersection(&predicted).count() as u64,
        predicted: predicted.len() as u64,
        gold: gold.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn shared() -> PathBuf {
        std::env::var_os("NERGRID_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
    }

    fn span(kind: &str, start: usize, end: usize) -> Span {
        Span { kind: kind.into(), start, end }
    }

    #[test]
    fn bio_and_bioes_entities() {
        let bio = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"];
        assert_eq!(sentence_entities(&bio), vec![span("PER", 0, 1), span("LOC", 3, 3), span("LOC", 4, 5)]);
        let bioes = ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC"];
        assert_eq!(sentence_entities(&bioes), sentence_entities(&bio));
        // Lenient rules: an I- after O starts an entity, `S S` is two, a type change splits.
        assert_eq!(sentence_entities(&["O", "I-X", "I-X"]), vec![span("X", 1, 2)]);
        assert_eq!(sentence_entities(&["S-X", "S-X"]), vec![span("X", 0, 0), span("X", 1, 1)]);
        assert_eq!(sentence_entities(&["B-X", "I-Y"]), vec![span("X", 0, 0), span("Y", 1, 1)]);
        assert_eq!(sentence_entities(&["B", "B-DRUG-NAME"]), vec![span("_", 0, 0), span("DRUG-NAME", 1, 1)]);
    }

    #[test]
    fn counts_compare_type_and_boundaries() {
        let gold = ["B-PER", "I-PER", "O", "B-LOC"];
        let pred = ["B-PER", "O", "O", "B-LOC"];
        assert_eq!(sentence_counts(&gold, &pred), Counts { correct: 1, predicted: 2, gold: 2 });
        let pred = ["B-ORG", "I-ORG", "O", "O"];
        assert_eq!(sentence_counts(&gold, &pred), Counts { correct: 0, predicted: 1, gold: 2 });
    }

    /// Every case of seqeval's recorded output: per-sentence entities and the micro F1 from
    /// summed counts.
    #[test]
    fn golden_seqeval_default_mode() {
        let path = shared().join("fixtures/seqeval_cases.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut cases = 0;
        for line in text.lines() {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            let sentences = |key: &str| -> Vec<Vec<String>> { serde_json::from_value(case[key].clone()).unwrap() };
            let (gold, pred) = (sentences("y_true"), sentences("y_pred"));
            let block = &case["default"];
            for (side, tags) in [("true", &gold), ("pred", &pred)] {
                let want = &block[format!("entities_{side}_per_sentence")];
                for (i, sentence) in tags.iter().enumerate() {
                    let got: Vec<serde_json::Value> = sentence_entities(sentence)
                        .iter()
                        .map(|s| serde_json::json!([s.kind, s.start, s.end]))
                        .collect();
                    assert_eq!(serde_json::Value::from(got), want[i], "{} {side} sentence {i}", case["id"]);
                }
            }
            if gold.len() == pred.len() && gold.iter().zip(&pred).all(|(g, p)| g.len() == p.len()) {
                let total =
                    gold.iter().zip(&pred).map(|(g, p)| sentence_counts(g, p)).fold(Counts::default(), |a, c| a + c);
                let want = block["f1"].as_f64().unwrap();
                assert!((total.f1() - want).abs() < 1e-12, "{}: f1 {} vs seqeval {want}", case["id"], total.f1());
            }
            cases += 1;
        }
        assert_eq!(cases, 2167);
    }
}
