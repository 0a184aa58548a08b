//! Fine-tuning on the Hugging Face Trainer's recipe: AdamW with its decay groups, global
//! gradient clipping, a linear schedule with warmup, seeded shuffling and dropout, validation
//! every epoch and the best epoch restored for the test evaluation. Evaluation is injected
//! (the caller passes seqeval-compatible metrics) and progress is reported as events.
//! Two engines compute the steps: the fused CPU path of `model::fused` and the graph engine
//! ([`graph`]: candle tensors and autograd, any device, mixed precision). `engine = "auto"`
//! takes the fused one on the CPU and the graph one elsewhere.

pub(crate) mod batch;
pub mod clip;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod flat;
pub mod graph;
pub mod optimizer;
pub(crate) mod outcome;
pub(crate) mod scaler;
pub mod schedule;
pub(crate) mod select;
pub(crate) mod trainer;

pub use crate::model::align::LabelAlignment;
pub use config::{precisions_of, Engine, Precision, TrainConfig};
pub use error::TrainError;
pub use outcome::{EpochRecord, EvalScores, TrainEvent, TrainOutcome, TruncationLoss};
pub use select::SelectMetric;
pub use trainer::{train, AlignedSplit, AlignedSplits, Evaluate};
