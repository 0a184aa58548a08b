//! The in-memory corpus every loader produces: sentences of words with word-level entity spans.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::scheme::Scheme;

/// An entity as a range of word indices (`end` exclusive) with its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WordSpan {
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

impl WordSpan {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// One sentence.
///
/// `entities` are in source order and may overlap: span tables can hold overlapping
/// entities, and the reference notebook labels them by painting each entity over the
/// labels of the ones before it. [`Scheme::tags`] does the same, so the labels match the
/// notebook exactly. Loaders of tag and bracket corpora produce disjoint spans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sentence {
    pub words: Vec<String>,
    pub entities: Vec<WordSpan>,
    /// The original text for span tables and bracket files (without the brackets).
    pub text: Option<String>,
}

/// Index lists of the splits a corpus ships with (its own train/dev/test files).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PredefinedSplits {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// A loaded corpus. With predefined splits, the sentences are train, then validation, then test.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Corpus {
    pub sentences: Vec<Sentence>,
    pub predefined: Option<PredefinedSplits>,
}

/// A sentence with one tag per word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedSentence {
    pub words: Vec<String>,
    pub tags: Vec<String>,
}

impl Corpus {
    /// Every sentence tagged in `scheme`.
    pub fn tagged(&self, scheme: Scheme) -> Vec<TaggedSentence> {
        self.sentences.iter().map(|s| TaggedSentence { words: s.words.clone(), tags: scheme.tags(s) }).collect()
    }

    /// Entity types in string order.
    pub fn entity_types(&self) -> Vec<String> {
        self.entity_counts().into_keys().collect()
    }

    /// Number of entities per type over all sentences.
    pub fn entity_counts(&self) -> BTreeMap<String, usize> {
        count_entities(self.sentences.iter())
    }

    /// Total number of entities.
    pub fn entity_total(&self) -> usize {
        self.sentences.iter().map(|s| s.entities.len()).sum()
    }
}

/// Number of entities per type in some sentences.
pub fn count_entities<'a>(sentences: impl Iterator<Item = &'a Sentence>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entity in sentences.flat_map(|s| &s.entities) {
        *counts.entry(entity.kind.clone()).or_insert(0) += 1;
    }
    counts
}

impl PredefinedSplits {
    /// Splits of `train`, `validation` and `test` sentences laid end to end.
    pub fn consecutive(train: usize, validation: usize, test: usize) -> Self {
        PredefinedSplits {
            train: (0..train).collect(),
            validation: (train..train + validation).collect(),
            test: (train + validation..train + validation + test).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_splits_follow_each_other() {
        let splits = PredefinedSplits::consecutive(2, 1, 2);
        assert_eq!(splits.train, [0, 1]);
        assert_eq!(splits.validation, [2]);
        assert_eq!(splits.test, [3, 4]);
    }

    #[test]
    fn entity_types_are_sorted_and_counted() {
        let sentence = Sentence {
            words: vec!["a".into(), "b".into()],
            entities: vec![
                WordSpan { kind: "b".into(), start: 0, end: 1 },
                WordSpan { kind: "a".into(), start: 1, end: 2 },
                WordSpan { kind: "b".into(), start: 1, end: 2 },
            ],
            text: None,
        };
        let corpus = Corpus { sentences: vec![sentence], predefined: None };
        assert_eq!(corpus.entity_types(), ["a", "b"]);
        assert_eq!(corpus.entity_counts()["b"], 2);
        assert_eq!(corpus.entity_total(), 3);
    }
}
