//! Runner: the real per-run pipeline (dataset -> split -> scheme -> model -> train -> metrics)
//! behind the scheduler's `Trainer` seam.

mod candle;
mod dataset;

pub use candle::{device, sentences, seqeval_scores, train_config, CandleTrainer};
pub use dataset::{dataset_config, load_run_data, prepare, RunData, RunSplit};
