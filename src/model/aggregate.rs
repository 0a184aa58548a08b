//! The aggregation strategies of transformers' token-classification pipeline, as pure
//! functions over one window's tokens: `none` (one entity per tagged token), `simple` (tokens
//! grouped by label), and `first`, `average` and `max` (sub-words fused into words first, the
//! word taking the label of its first token, of its averaged scores or of its most confident
//! token). Entities of overlapping windows are merged by the pipeline's rule: of entities that
//! start inside another, the longer one stays, then the higher score.
//!
//! Grouping follows the pipeline's `group_entities` (an `I-` continues an open entity of its
//! type, a `B-` starts one); `E-`/`S-` (BIOES) also close an entity, which the pipeline does
//! not know about and which changes nothing for BIO or IO labels.

/// How token predictions become entities (the pipeline's `aggregation_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregation {
    /// Every token with a label other than `O`, its label as the type.
    None,
    /// Consecutive tokens of one type, each token with its own label.
    Simple,
    /// Words take the label of their first token.
    #[default]
    First,
    /// Words take the label of their tokens' averaged probabilities.
    Average,
    /// Words take the label of their most confident token.
    Max,
}

/// One entity found in a text; offsets count characters (Unicode scalar values), as Python
/// string indices do.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entity {
    /// The entity type (`DRUG` for `B-DRUG`; the whole label with [`Aggregation::None`]).
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// Mean over the entity's words (tokens) of the probability of their label.
    pub score: f64,
}

/// A non-special token of a window: its character span, whether it continues the previous
/// token's word, and its label probabilities.
#[derive(Debug, Clone, Copy)]
pub struct ScoredToken<'a> {
    pub start: usize,
    pub end: usize,
    pub subword: bool,
    pub probs: &'a [f32],
}

/// A labelled token or word: label index, its score and its character span.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tagged {
    label: usize,
    score: f32,
    start: usize,
    end: usize,
}

/// The entities of one window (pure). `labels[i]` names class `i`; `chars` is the text.
pub fn window_entities(
    tokens: &[ScoredToken],
    strategy: Aggregation,
    labels: &[String],
    chars: &[char],
) -> Vec<Entity> {
    let tagged: Vec<Tagged> = match strategy {
        Aggregation::None | Aggregation::Simple => tokens.iter().map(|t| tag(t.probs, t.start, t.end)).collect(),
        _ => words(tokens).map(|w| word_tag(w, strategy)).collect(),
    };
    match strategy {
        Aggregation::None => tagged
            .iter()
            .filter(|t| labels[t.label] != "O")
            .map(|t| entity(labels[t.label].clone(), t.start, t.end, t.score as f64, chars))
            .collect(),
        _ => group(&tagged, labels, chars),
    }
}

fn entity(kind: String, start: usize, end: usize, score: f64, chars: &[char]) -> Entity {
    Entity { kind, text: chars[start..end].iter().collect(), start, end, score }
}

/// The label with the highest probability (the first of equals, as numpy's argmax).
fn tag(probs: &[f32], start: usize, end: usize) -> Tagged {
    let (label, score) = argmax(probs);
    Tagged { label, score, start, end }
}

pub(crate) fn argmax(row: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &p) in row.iter().enumerate() {
        if p > best.1 {
            best = (i, p);
        }
    }
    best
}

/// Tokens grouped into words: a word is a token and the sub-words after it.
fn words<'t, 'a>(tokens: &'t [ScoredToken<'a>]) -> impl Iterator<Item = &'t [ScoredToken<'a>]> {
    tokens.chunk_by(|_, next| next.subword)
}

/// The pipeline's `aggregate_word`.
fn word_tag(word: &[ScoredToken], strategy: Aggregation) -> Tagged {
    let (start, end) = (word[0].start, word[word.len() - 1].end);
    match strategy {
        Aggregation::Max => {
            let mut best = &word[0];
            for t in &word[1..] {
                if argmax(t.probs).1 > argmax(best.probs).1 {
                    best = t;
                }
            }
            tag(best.probs, start, end)
        }
        Aggregation::Average => {
            let mut mean = vec![0f32; word[0].probs.len()];
            for t in word {
                mean.iter_mut().zip(t.probs).for_each(|(m, p)| *m += p);
            }
            mean.iter_mut().for_each(|m| *m /= word.len() as f32);
            tag(&mean, start, end)
        }
        _ => tag(word[0].probs, start, end),
    }
}

/// `(prefix, type)` of a label: `B-X` -> ('B', X); a label without a one-letter prefix
/// is a continuation of its own type, as in the pipeline's `get_tag`.
pub(crate) fn split_label(label: &str) -> (char, &str) {
    match label.split_once('-') {
        Some((p, ty)) if p.len() == 1 => (p.chars().next().unwrap_or('I'), ty),
        _ if label == "O" => ('O', ""),
        _ => ('I', label),
    }
}

/// Consecutive tagged items of one type merged into entities (`O` dropped); an entity's score
/// is the mean of its items' scores.
fn group(tagged: &[Tagged], labels: &[String], chars: &[char]) -> Vec<Entity> {
    let mut entities = Vec::new();
    let mut open: Option<(&str, usize, usize)> = None;
    let mut close = |open: &mut Option<(&str, usize, usize)>| {
        if let Some((kind, first, last)) = open.take() {
            let items = &tagged[first..=last];
            let score = items.iter().map(|t| t.score as f64).sum::<f64>() / items.len() as f64;
            entities.push(entity(kind.to_string(), items[0].start, items[items.len() - 1].end, score, chars));
        }
    };
    for (i, t) in tagged.iter().enumerate() {
        let (prefix, kind) = split_label(&labels[t.label]);
        let continues = matches!(prefix, 'I' | 'E') && open.is_some_and(|(k, _, _)| k == kind);
        if !continues {
            close(&mut open);
        }
        if prefix == 'O' {
            continue;
        }
        open = Some(match open {
            Some((k, first, _)) if continues => (k, first, i),
            _ => (kind, i, i),
        });
        if matches!(prefix, 'E' | 'S') {
            close(&mut open);
        }
    }
    close(&mut open);
    entities
}

/// The pipeline's `aggregate_overlapping_entities` over the entities of all windows of a text
/// (in window order): sorted by start (stably), an entity starting inside the one kept
/// replaces it if it is longer, or as long with a higher score.
pub fn merge_overlapping(mut entities: Vec<Entity>) -> Vec<Entity> {
    entities.sort_by_key(|e| e.start);
    let mut merged: Vec<Entity> = Vec::with_capacity(entities.len());
    let mut entities = entities.into_iter();
    let Some(mut kept) = entities.next() else { return merged };
    for e in entities {
        if kept.start <= e.start && e.start < kept.end {
            let (length, kept_length) = (e.end - e.start, kept.end - kept.start);
            if length > kept_length || (length == kept_length && e.score > kept.score) {
                kept = e;
            }
        } else {
            merged.push(std::mem::replace(&mut kept, e));
        }
    }
    merged.push(kept);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["O", "B-X", "I-X", "B-Y"].map(String::from).to_vec()
    }

    /// Text "ab cd ef": tokens a|b cd e|f, the second piece of each word a sub-word.
    fn tokens(probs: &[[f32; 4]]) -> Vec<ScoredToken<'_>> {
        let spans = [(0, 1, false), (1, 2, true), (3, 5, false), (6, 7, false), (7, 8, true)];
        spans
            .iter()
            .zip(probs)
            .map(|(&(start, end, subword), p)| ScoredToken { start, end, subword, probs: p })
            .collect()
    }

    fn run(probs: &[[f32; 4]], strategy: Aggregation) -> Vec<(String, usize, usize, f32)> {
        let chars: Vec<char> = "ab cd ef".chars().collect();
        window_entities(&tokens(probs), strategy, &labels(), &chars)
            .into_iter()
            .map(|e| (e.kind, e.start, e.end, e.score as f32))
            .collect()
    }

    const PROBS: [[f32; 4]; 5] = [
        [0.1, 0.6, 0.2, 0.1], // a: B-X
        [0.5, 0.1, 0.0, 0.4], // b: O
        [0.2, 0.1, 0.7, 0.0], // cd: I-X
        [0.4, 0.0, 0.0, 0.6], // e: B-Y
        [0.1, 0.8, 0.1, 0.0], // f: B-X
    ];

    #[test]
    fn none_keeps_every_tagged_token_with_its_label() {
        let got = run(&PROBS, Aggregation::None);
        let kinds: Vec<(&str, usize)> = got.iter().map(|g| (g.0.as_str(), g.1)).collect();
        assert_eq!(kinds, vec![("B-X", 0), ("I-X", 3), ("B-Y", 6), ("B-X", 7)]);
    }

    #[test]
    fn simple_groups_tokens_and_breaks_on_o() {
        let got = run(&PROBS, Aggregation::Simple);
        assert_eq!(
            got,
            vec![("X".into(), 0, 1, 0.6), ("X".into(), 3, 5, 0.7), ("Y".into(), 6, 7, 0.6), ("X".into(), 7, 8, 0.8)]
        );
    }

    #[test]
    fn first_average_and_max_fuse_words_differently() {
        let first = run(&PROBS, Aggregation::First);
        assert_eq!(first, vec![("X".into(), 0, 5, 0.65), ("Y".into(), 6, 8, 0.6)]);
        // a|b averaged: [0.3, 0.35, 0.1, 0.25] -> B-X; e|f: [0.25, 0.4, 0.05, 0.3] -> B-X.
        let average = run(&PROBS, Aggregation::Average);
        assert_eq!(
            average.iter().map(|g| (g.0.as_str(), g.1, g.2)).collect::<Vec<_>>(),
            vec![("X", 0, 5), ("X", 6, 8)]
        );
        assert!((average[0].3 - 0.525).abs() < 1e-6 && (average[1].3 - 0.4).abs() < 1e-6);
        // Max: f (0.8) beats e (0.6).
        let max = run(&PROBS, Aggregation::Max);
        assert_eq!(max.iter().map(|g| (g.0.as_str(), g.1, g.2)).collect::<Vec<_>>(), vec![("X", 0, 5), ("X", 6, 8)]);
        assert!((max[1].3 - 0.8).abs() < 1e-6);
    }

    fn e(start: usize, end: usize, score: f64) -> Entity {
        Entity { kind: "X".into(), text: String::new(), start, end, score }
    }

    #[test]
    fn overlapping_windows_keep_the_longer_then_the_more_confident() {
        let spans = |v: Vec<Entity>| v.iter().map(|e| (e.start, e.end, e.score)).collect::<Vec<_>>();
        // A window edge cut the first copy of 10..20 short; the later, longer one wins.
        let got =
            merge_overlapping(vec![e(0, 3, 0.9), e(10, 14, 0.9), e(10, 20, 0.5), e(12, 14, 0.99), e(30, 31, 0.1)]);
        assert_eq!(spans(got), vec![(0, 3, 0.9), (10, 20, 0.5), (30, 31, 0.1)]);
        let got = merge_overlapping(vec![e(5, 8, 0.4), e(5, 8, 0.6), e(5, 8, 0.6)]);
        assert_eq!(spans(got), vec![(5, 8, 0.6)]);
        assert!(merge_overlapping(Vec::new()).is_empty());
    }

    /// Words of `text` split at spaces, each tagged with a label of `labels` (probability 0.5,
    /// or `scores`), grouped as `first` groups them.
    fn group_words(text: &str, tags: &str, scores: &[f32]) -> Vec<(String, String, usize, usize, f64)> {
        let labels: Vec<String> =
            ["O", "B-X", "I-X", "E-X", "S-X", "B-DIS", "I-DIS", "I-BODY", "B-DRUG"].map(String::from).to_vec();
        let chars: Vec<char> = text.chars().collect();
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in chars.iter().chain([&' ']).enumerate() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    spans.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        let probs: Vec<Vec<f32>> = tags
            .split_whitespace()
            .enumerate()
            .map(|(i, t)| {
                let mut p = vec![0.0; labels.len()];
                p[labels.iter().position(|l| l == t).unwrap()] = scores.get(i).copied().unwrap_or(0.5);
                p
            })
            .collect();
        let tokens: Vec<ScoredToken> = spans
            .iter()
            .zip(&probs)
            .map(|(&(start, end), p)| ScoredToken { start, end, subword: false, probs: p })
            .collect();
        window_entities(&tokens, Aggregation::First, &labels, &chars)
            .into_iter()
            .map(|e| (e.kind, e.text, e.start, e.end, e.score))
            .collect()
    }

    #[test]
    fn bio_words_merge_like_the_pipeline() {
        let got = group_words("Ta två Alvedon mot ont i huvudet", "O O B-DRUG O B-DIS I-DIS I-BODY", &[]);
        let spans: Vec<(&str, &str, usize, usize)> =
            got.iter().map(|g| (g.0.as_str(), g.1.as_str(), g.2, g.3)).collect();
        assert_eq!(spans, vec![("DRUG", "Alvedon", 7, 14), ("DIS", "ont i", 19, 24), ("BODY", "huvudet", 25, 32)]);
    }

    #[test]
    fn b_starts_a_new_entity_and_i_after_o_starts_one() {
        let got = group_words("a b c d", "B-X B-X O I-X", &[]);
        assert_eq!(got.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(), vec!["a", "b", "d"]);
    }

    #[test]
    fn bioes_ends_close_entities() {
        let got = group_words("a b c d", "B-X E-X I-X S-X", &[]);
        assert_eq!(got.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(), vec!["a b", "c", "d"]);
    }

    #[test]
    fn entity_scores_average_over_words() {
        let got = group_words("a b", "B-X I-X", &[0.9, 0.5]);
        assert!((got[0].4 - 0.7).abs() < 1e-6, "{got:?}");
    }
}
