//! Runner: the real per-run pipeline (dataset -> split -> scheme -> model -> train -> metrics)
//! behind the scheduler's `Trainer` seam.

mod dataset;
mod pipeline;
mod prepare;

pub use dataset::{dataset_config, load_run_data, prepare, RunData, RunSplit};
pub use pipeline::{device, seqeval_scores, train_config, CandleTrainer};
pub use prepare::{prepare_run, ModelSource, PreparedRun};
