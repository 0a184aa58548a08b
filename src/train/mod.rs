//! Fine-tuning on the Hugging Face Trainer's recipe: AdamW with its decay groups, global
//! gradient clipping, a linear schedule with warmup, seeded shuffling and dropout, validation
//! every epoch and the best epoch restored for the test evaluation. Evaluation is injected
//! (the caller passes seqeval-compatible metrics) and progress is reported as events.
//! On the CPU, steps run on the fused engine (`model::fused`); on other devices through
//! candle's autograd.

pub(crate) mod batch;
pub mod clip;
pub(crate) mod config;
pub(crate) mod error;
pub mod optimizer;
pub(crate) mod outcome;
pub mod schedule;
pub(crate) mod select;
pub(crate) mod trainer;

pub use crate::model::align::LabelAlignment;
pub use config::TrainConfig;
pub use error::TrainError;
pub use outcome::{EpochRecord, EvalScores, TrainEvent, TrainOutcome, TruncationLoss};
pub use select::SelectMetric;
pub use trainer::{train, AlignedSplit, AlignedSplits, Evaluate};
