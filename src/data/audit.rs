//! Leakage audit: what in a corpus or its split lets a model score without learning the task.
//!
//! Entities are read as a model sees them: the BIO tags of each sentence decoded back to spans.
//!
//! 1. **Boundary tokens.** For each entity type with at least [`BOUNDARY_MIN_ENTITIES`]
//!    entities, a token is a cue when it is the first word, the last word, the word just before
//!    (outside any entity) or the word just after (outside any entity) of at least
//!    [`BOUNDARY_SHARE`] of that type's entities. Natural text has no such token; the Hub 1177
//!    table has `(`, `[`, `{` as the first word of every entity of their type, because its
//!    spans keep the annotation brackets. Type-independent by design: the token alone predicts
//!    both the boundary and the type.
//! 2. **Duplicated sentences.** Sentences (words joined by spaces, empty ones ignored) of a later
//!    split that also occur in an earlier one (train < validation < test).
//! 3. **Shared entity surfaces.** Test entities whose type and words also occur as a train
//!    entity; a warning when their share reaches [`SHARED_SURFACE_WARN`]. Some sharing is
//!    normal (about three quarters of test entities in NCBI-disease and in the 1177 corpus
//!    under the study's split), so only near-total overlap is a warning.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::corpus::{Corpus, Sentence, WordSpan};
use super::scheme::{decode, Scheme};
use super::split::SplitManifest;

/// Share of a type's entities a token must mark to be a boundary cue.
pub const BOUNDARY_SHARE: f64 = 0.9;
/// Types with fewer entities are not checked for boundary cues.
pub const BOUNDARY_MIN_ENTITIES: usize = 5;
/// Share of test entities seen in train from which shared surfaces are a warning.
pub const SHARED_SURFACE_WARN: f64 = 0.9;

/// The kind of a leakage warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    BoundaryToken,
    DuplicateSentence,
    SharedEntitySurface,
}

/// One finding of the audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditWarning {
    pub kind: AuditKind,
    pub message: String,
}

/// Where a cue token sits relative to the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CuePosition {
    Before,
    First,
    Last,
    After,
}

impl CuePosition {
    fn describe(self) -> &'static str {
        match self {
            CuePosition::Before => "the word before",
            CuePosition::First => "the first word",
            CuePosition::Last => "the last word",
            CuePosition::After => "the word after",
        }
    }
}

/// A token that marks most entities of one type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoundaryCue {
    pub token: String,
    pub kind: String,
    pub position: CuePosition,
    pub count: usize,
    pub total: usize,
    pub share: f64,
}

/// Sentences of one split that also occur in an earlier split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateCount {
    pub earlier: &'static str,
    pub later: &'static str,
    pub count: usize,
    pub later_size: usize,
    pub example: Option<String>,
}

/// How many test entities (type and words) also occur as train entities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurfaceOverlap {
    pub test_entities: usize,
    pub shared: usize,
    pub share: f64,
}

/// Entities of a sentence as a model sees them: its BIO tags decoded.
fn visible_entities(sentence: &Sentence) -> Vec<WordSpan> {
    decode(&Scheme::Bio.tags(sentence), Scheme::Bio)
}

/// Tokens at an entity boundary of at least [`BOUNDARY_SHARE`] of their type's entities.
pub fn boundary_cues(corpus: &Corpus) -> Vec<BoundaryCue> {
    let mut totals: HashMap<String, usize> = HashMap::new();
    let mut counts: HashMap<(String, CuePosition, String), usize> = HashMap::new();
    for sentence in &corpus.sentences {
        let entities = visible_entities(sentence);
        let outside = outside_words(sentence.words.len(), &entities);
        for entity in &entities {
            *totals.entry(entity.kind.clone()).or_default() += 1;
            for (position, word) in boundary_words(entity, &outside) {
                let key = (entity.kind.clone(), position, sentence.words[word].clone());
                *counts.entry(key).or_default() += 1;
            }
        }
    }
    let mut cues: Vec<BoundaryCue> = counts
        .into_iter()
        .filter_map(|((kind, position, token), count)| {
            let total = totals[&kind];
            let share = count as f64 / total as f64;
            (total >= BOUNDARY_MIN_ENTITIES && share >= BOUNDARY_SHARE).then_some(BoundaryCue {
                token,
                kind,
                position,
                count,
                total,
                share,
            })
        })
        .collect();
    cues.sort_by(|a, b| (&a.kind, a.position, &a.token).cmp(&(&b.kind, b.position, &b.token)));
    cues
}

fn outside_words(len: usize, entities: &[WordSpan]) -> Vec<bool> {
    let mut outside = vec![true; len];
    for entity in entities {
        outside[entity.start..entity.end].iter_mut().for_each(|o| *o = false);
    }
    outside
}

/// The word indices at each boundary position of an entity (neighbours only when outside).
fn boundary_words(entity: &WordSpan, outside: &[bool]) -> Vec<(CuePosition, usize)> {
    let mut words = vec![(CuePosition::First, entity.start), (CuePosition::Last, entity.end - 1)];
    if entity.start > 0 && outside[entity.start - 1] {
        words.push((CuePosition::Before, entity.start - 1));
    }
    if entity.end < outside.len() && outside[entity.end] {
        words.push((CuePosition::After, entity.end));
    }
    words
}

fn sentence_key(sentence: &Sentence) -> Option<String> {
    (!sentence.words.is_empty()).then(|| sentence.words.join(" "))
}

/// Sentences of each later split that occur in an earlier one.
pub fn duplicate_sentences(corpus: &Corpus, manifest: &SplitManifest) -> Vec<DuplicateCount> {
    let named = manifest.named();
    let keys = |indices: &[usize]| -> Vec<String> {
        indices.iter().filter_map(|&i| sentence_key(&corpus.sentences[i])).collect()
    };
    let mut found = Vec::new();
    for (a, (earlier, earlier_indices)) in named.iter().enumerate() {
        let seen: HashSet<String> = keys(earlier_indices).into_iter().collect();
        for (later, later_indices) in &named[a + 1..] {
            let repeated: Vec<String> = keys(later_indices).into_iter().filter(|k| seen.contains(k)).collect();
            found.push(DuplicateCount {
                earlier,
                later,
                count: repeated.len(),
                later_size: later_indices.len(),
                example: repeated.into_iter().next(),
            });
        }
    }
    found
}

fn surfaces(corpus: &Corpus, indices: &[usize]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for sentence in indices.iter().map(|&i| &corpus.sentences[i]) {
        for entity in visible_entities(sentence) {
            let words = sentence.words[entity.start..entity.end].join(" ");
            found.push((entity.kind, words));
        }
    }
    found
}

/// Test entities whose type and words also occur among the train entities.
pub fn surface_overlap(corpus: &Corpus, manifest: &SplitManifest) -> SurfaceOverlap {
    let train: HashSet<(String, String)> = surfaces(corpus, &manifest.train).into_iter().collect();
    let test = surfaces(corpus, &manifest.test);
    let shared = test.iter().filter(|s| train.contains(*s)).count();
    let share = if test.is_empty() { 0.0 } else { shared as f64 / test.len() as f64 };
    SurfaceOverlap { test_entities: test.len(), shared, share }
}

/// Every warning of the audit, boundary cues first.
pub fn audit(corpus: &Corpus, manifest: &SplitManifest) -> Vec<AuditWarning> {
    let mut warnings: Vec<AuditWarning> = boundary_cues(corpus).iter().map(cue_warning).collect();
    for duplicate in duplicate_sentences(corpus, manifest).iter().filter(|d| d.count > 0) {
        warnings.push(duplicate_warning(duplicate));
    }
    let overlap = surface_overlap(corpus, manifest);
    if overlap.test_entities > 0 && overlap.share >= SHARED_SURFACE_WARN {
        warnings.push(AuditWarning {
            kind: AuditKind::SharedEntitySurface,
            message: format!(
                "{} of {} test entities ({:.1}%) occur with the same type and words in train",
                overlap.shared,
                overlap.test_entities,
                100.0 * overlap.share
            ),
        });
    }
    warnings
}

fn cue_warning(cue: &BoundaryCue) -> AuditWarning {
    AuditWarning {
        kind: AuditKind::BoundaryToken,
        message: format!(
            "token {:?} is {} of {} of {} {:?} entities ({:.1}%): it gives the boundary and type \
             away",
            cue.token,
            cue.position.describe(),
            cue.count,
            cue.total,
            cue.kind,
            100.0 * cue.share
        ),
    }
}

fn duplicate_warning(duplicate: &DuplicateCount) -> AuditWarning {
    let example: String = duplicate.example.clone().unwrap_or_default().chars().take(60).collect();
    AuditWarning {
        kind: AuditKind::DuplicateSentence,
        message: format!(
            "{} of {} {} sentences also occur in {} (e.g. {example:?})",
            duplicate.count, duplicate.later_size, duplicate.later, duplicate.earlier
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(text: &str, entities: &[(&str, usize, usize)]) -> Sentence {
        Sentence {
            words: text.split(' ').map(String::from).collect(),
            entities: entities.iter().map(|&(kind, start, end)| WordSpan { kind: kind.into(), start, end }).collect(),
            text: None,
        }
    }

    fn bracketed_corpus(brackets_in_words: bool) -> Corpus {
        let sentences = (0..6)
            .map(|i| {
                if brackets_in_words {
                    sentence(&format!("w{i} [ drug{i} ] x"), &[("Drug", 1, 4)])
                } else {
                    sentence(&format!("w{i} drug{i} x"), &[("Drug", 1, 2)])
                }
            })
            .collect();
        Corpus { sentences, predefined: None }
    }

    #[test]
    fn bracket_tokens_inside_spans_are_cues_and_plain_text_has_none() {
        let cues = boundary_cues(&bracketed_corpus(true));
        let found: Vec<_> = cues.iter().map(|c| (c.token.as_str(), c.position)).collect();
        assert_eq!(found, [("[", CuePosition::First), ("]", CuePosition::Last), ("x", CuePosition::After)]);
        assert!(boundary_cues(&bracketed_corpus(false)).iter().all(|c| c.token != "["));
    }

    #[test]
    fn a_word_before_entities_counts_only_outside_entities() {
        let corpus = Corpus {
            sentences: (0..5).map(|_| sentence("the a b", &[("X", 0, 1), ("Y", 1, 3)])).collect(),
            predefined: None,
        };
        let cues = boundary_cues(&corpus);
        assert!(cues.iter().all(|c| c.position != CuePosition::Before), "{cues:?}");
    }

    #[test]
    fn small_types_are_not_checked() {
        let mut corpus = bracketed_corpus(true);
        corpus.sentences.truncate(BOUNDARY_MIN_ENTITIES - 1);
        assert!(boundary_cues(&corpus).is_empty());
    }

    #[test]
    fn duplicates_and_shared_surfaces_are_counted_across_splits() {
        let corpus = Corpus {
            sentences: vec![
                sentence("a b", &[("X", 0, 1)]),
                sentence("c d", &[("X", 1, 2)]),
                sentence("a b", &[("X", 0, 1)]),
                sentence("e d", &[("X", 1, 2)]),
            ],
            predefined: None,
        };
        let manifest = SplitManifest::new(vec![0, 1], vec![], vec![2, 3]);
        let duplicates = duplicate_sentences(&corpus, &manifest);
        let train_test = duplicates.iter().find(|d| d.later == "test" && d.earlier == "train").unwrap();
        assert_eq!((train_test.count, train_test.example.as_deref()), (1, Some("a b")));
        let overlap = surface_overlap(&corpus, &manifest);
        assert_eq!((overlap.shared, overlap.test_entities), (2, 2));
        let kinds: Vec<_> = audit(&corpus, &manifest).iter().map(|w| w.kind).collect();
        assert_eq!(kinds, [AuditKind::DuplicateSentence, AuditKind::SharedEntitySurface]);
    }
}
