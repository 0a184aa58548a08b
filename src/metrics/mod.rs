//! Entity-level sequence-labelling metrics that reproduce seqeval 1.2.2: default
//! (conlleval-like) and strict IOB2/IOBES entity extraction, micro/macro/weighted precision,
//! recall and F1, token accuracy, and seqeval's classification report. Pure functions over tag
//! strings; the training loop, `report` and `nergrid eval` all call [`evaluate`].
//!
//! `tags` parses tags and interns types, `chunks` is default-mode chunking, `strict` is
//! strict-mode extraction, `entities` chooses between them, `scores` turns counts into a
//! [`Report`] and `classification` renders it. `semeval` ports nervaluate 1.2.1's SemEval-2013
//! categories, `error_analysis` adds the type confusion table and boundary errors on top, and
//! `error_text` renders them for `nergrid eval --errors`.

mod chunks;
mod classification;
mod entities;
mod error;
mod error_analysis;
mod error_text;
mod scores;
mod semeval;
mod strict;
mod tags;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod semeval_golden_tests;

pub use classification::{classification_report, SeqevalJson};
pub use entities::{extract_entities, Entity, Mode, StrictScheme};
pub use error::{MetricsError, Side, TagError};
pub use error_analysis::{error_analysis, BoundaryErrors, ConfusionCell, ErrorAnalysis};
pub use error_text::error_tables;
pub use scores::{evaluate, score_entities, ClassScore, Report, ZeroDivision};
pub use semeval::{Categories, SchemaScores, SCHEMA_NAMES};
