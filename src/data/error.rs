//! Errors of the data layer.
//!
//! Every problem with a corpus names its place: `path:line: field: what is wrong`. For parquet
//! tables the "line" is the 1-based row number. The cause of an I/O or parquet failure goes in
//! `#[source]`, never repeated in the text.

use std::fmt;
use std::path::PathBuf;

/// What is wrong with one record (line, row or sentence) of a corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A token line has fewer columns than the tag column needs.
    TooFewColumns { needed: usize, found: usize },
    /// A tag that the source scheme does not allow.
    InvalidTag { tag: String, scheme: String },
    /// An entity span reaches past the end of its text (offsets in code points).
    SpanPastEnd { offset: i64, len: usize },
    /// An entity span that starts after it ends or at a negative offset.
    InvalidSpan { start: i64, end: i64 },
    /// A numeric entity type without a name in `type_names`.
    UnknownTypeId { id: i64, known: usize },
    /// A value of the wrong JSON or parquet type.
    WrongType { expected: &'static str },
    /// A required field is absent.
    Missing,
    /// A line that is not valid JSON.
    InvalidJson { detail: String },
    /// An opening bracket without its closing bracket on the same line.
    UnclosedBracket { bracket: String, word: usize },
    /// A closing bracket without a matching opening bracket.
    UnexpectedClose { bracket: String, word: usize },
    /// An opening bracket inside another entity (nesting is not supported).
    NestedBracket { bracket: String, word: usize },
    /// A bracket pair with no word inside.
    EmptyEntity { word: usize },
    /// Bytes that are not UTF-8.
    InvalidUtf8 { byte: usize },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TooFewColumns { needed, found } => {
                write!(f, "too few columns: needs {needed}, found {found}")
            }
            Problem::InvalidTag { tag, scheme } => write!(f, "{tag:?} is not a {scheme} tag"),
            Problem::SpanPastEnd { offset, len } => {
                write!(f, "span past the end of the text: offset {offset}, text has {len} code points")
            }
            Problem::InvalidSpan { start, end } => {
                write!(f, "invalid span: start {start}, end {end}")
            }
            Problem::UnknownTypeId { id, known: 0 } => {
                write!(f, "unknown entity type id {id}: no type_names are given")
            }
            Problem::UnknownTypeId { id, known } => {
                write!(f, "unknown entity type id {id}: type_names has {known} names (ids 0 to {})", known - 1)
            }
            Problem::WrongType { expected } => write!(f, "expected {expected}"),
            Problem::Missing => write!(f, "missing"),
            Problem::InvalidJson { detail } => write!(f, "invalid JSON: {detail}"),
            Problem::UnclosedBracket { bracket, word } => {
                write!(f, "unclosed bracket {bracket:?} opened at word {word}")
            }
            Problem::UnexpectedClose { bracket, word } => {
                write!(f, "closing bracket {bracket:?} at word {word} was never opened")
            }
            Problem::NestedBracket { bracket, word } => write!(
                f,
                "bracket {bracket:?} at word {word} opens inside another entity (nesting is not \
                 supported)"
            ),
            Problem::EmptyEntity { word } => write!(f, "empty entity at word {word}"),
            Problem::InvalidUtf8 { byte } => {
                write!(f, "invalid UTF-8 at byte {byte} of the line")
            }
        }
    }
}

/// Errors of loading, converting and splitting corpora.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// One record of a corpus is malformed.
    #[error("{}:{line}: {field}: {problem}", path.display())]
    Malformed { path: PathBuf, line: usize, field: String, problem: Problem },
    /// A whole file does not have the expected shape (missing column, wrong column type).
    #[error("{}: {field}: {message}", path.display())]
    Schema { path: PathBuf, field: String, message: String },
    /// A file could not be read.
    #[error("{}: cannot read", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A parquet file could not be decoded.
    #[error("{}: cannot read parquet", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: polars::prelude::PolarsError,
    },
    /// A split rule that datasets' `train_test_split` would reject.
    #[error("split: {0}")]
    Split(String),
    /// A dataset description that cannot be loaded (see `DatasetConfig::check`).
    #[error("dataset: {field}: {message}")]
    Config { field: String, message: String },
    /// A tokenizer file that could not be loaded or used.
    #[error("{}: tokenizer", path.display())]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A Hub dataset that could not be resolved.
    #[error("hub: {repo}: {message}")]
    Hub { repo: String, message: String },
    /// The Hub API failed.
    #[error("hub: {repo}: {action}")]
    HubApi {
        repo: String,
        action: String,
        #[source]
        source: Box<hf_hub::api::sync::ApiError>,
    },
}

impl DataError {
    /// Whether `on_error = "skip"` may skip the record this error is about.
    pub fn is_record_error(&self) -> bool {
        matches!(self, DataError::Malformed { .. })
    }

    pub(crate) fn malformed(path: &std::path::Path, line: usize, field: impl Into<String>, problem: Problem) -> Self {
        DataError::Malformed { path: path.to_path_buf(), line, field: field.into(), problem }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }
}
