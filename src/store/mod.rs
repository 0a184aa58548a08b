//! Store: the results directory layout, crash-safe writes, and run states for resume.

mod layout;
mod predictions;
mod result;
mod time;

use std::path::PathBuf;

pub use layout::{write_atomic, RunState, Store};
pub use predictions::{format_predictions, parse_predictions, TaggedSentence};
pub use result::{ClassScores, EpochRow, RunResult, RunStatus, Scores, Timings, ToolInfo};
pub use time::{now_rfc3339, rfc3339};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: i/o error", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}", path = path.display())]
    Malformed { path: PathBuf, line: usize, message: String },
    #[error("{path}: cannot encode: {message}", path = path.display())]
    Encode { path: PathBuf, message: String },
}
