//! Runner: the real per-run pipeline behind the scheduler's `Trainer` seam, and its I/O:
//! dataset -> split -> scheme (`dataset.rs`), model and tokenizer loading and alignment
//! (`prepare.rs`), then `train::train` and the run's output (`pipeline.rs`).

mod dataset;
mod pipeline;
mod prepare;

pub use dataset::{dataset_config, load_run_data, prepare, RunData, RunSplit};
pub use pipeline::{device, seqeval_scores, train_config, CandleTrainer};
pub use prepare::{prepare_run, ModelSource, PreparedRun};
