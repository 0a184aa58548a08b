//! Errors of the metrics module: inputs that do not line up and tags seqeval refuses.

use std::fmt;

use super::entities::StrictScheme;

/// Which tag sequences an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Gold,
    Predicted,
    /// The sequences given to [`super::extract_entities`].
    Input,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Gold => "gold",
            Side::Predicted => "predicted",
            Side::Input => "input",
        })
    }
}

/// Why scoring or extraction failed. Sentence and token indices count from 0.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// seqeval: `ValueError: Found input variables with inconsistent numbers of samples`.
    #[error("gold has {gold} sentences but predicted has {predicted}")]
    SentenceCount { gold: usize, predicted: usize },
    /// seqeval: the same `ValueError`, for one sentence.
    #[error("sentence {sentence}: gold has {gold} tags but predicted has {predicted}")]
    SentenceLength { sentence: usize, gold: usize, predicted: usize },
    /// seqeval raises `ValueError` when given no sentences at all.
    #[error("no sentences to score")]
    NoSentences,
    /// A tag seqeval cannot parse or that the strict scheme does not allow.
    #[error("{side} tags, sentence {sentence}, token {token}")]
    Tag {
        side: Side,
        sentence: usize,
        token: usize,
        #[source]
        source: TagError,
    },
}

/// What is wrong with one tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// seqeval: `IndexError` on `chunk[0]`.
    #[error("empty tag")]
    Empty,
    /// Strict mode only; seqeval: `KeyError` from `Prefixes[token[0]]`.
    #[error("tag {tag:?}: unknown prefix {prefix:?}, expected one of I O B E S U L")]
    UnknownPrefix { tag: String, prefix: char },
    /// Strict mode only; seqeval: `ValueError: Invalid token is found`.
    #[error("tag {tag:?}: prefix {prefix} is not allowed by {scheme} (allowed: {allowed})", allowed = scheme.allowed_prefixes())]
    NotInScheme { tag: String, prefix: char, scheme: StrictScheme },
}
