//! Entity-level sequence-labelling metrics that reproduce seqeval 1.2.2: default
//! (conlleval-like) and strict IOB2/IOBES entity extraction, micro/macro/weighted precision,
//! recall and F1, token accuracy, and seqeval's classification report. Pure functions over tag
//! strings; the training loop, `report` and `nergrid eval` all call [`evaluate`].
//!
//! `tags` parses tags and interns types, `chunks` is default-mode chunking, `strict` is
//! strict-mode extraction, `entities` chooses between them, `scores` turns counts into a
//! [`Report`] and `classification` renders it.

mod chunks;
mod classification;
mod entities;
mod error;
mod scores;
mod strict;
mod tags;

#[cfg(test)]
mod golden_tests;

pub use classification::{classification_report, SeqevalJson};
pub use entities::{extract_entities, Entity, Mode, StrictScheme};
pub use error::{MetricsError, Side, TagError};
pub use scores::{evaluate, score_entities, ClassScore, Report, ZeroDivision};
