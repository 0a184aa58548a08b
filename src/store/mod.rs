//! Store: the results directory layout, crash-safe writes, and run states for resume.

mod layout;
mod predictions;
mod result;
mod time;

use std::path::PathBuf;

pub use layout::{write_atomic, RunState, Store};
pub use predictions::{format_predictions, parse_predictions, PredictedSentence};
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
    #[error("{path}: cannot encode", path = path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{path}: cannot decode", path = path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// An error and its causes, `outer: cause: root` (for warnings that are kept as text).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_errors_keep_their_cause_as_source() {
        let cause = serde_json::from_str::<u8>("x").unwrap_err();
        let e = StoreError::Encode { path: "r/result.json".into(), source: cause.into() };
        let source = std::error::Error::source(&e).expect("the cause is a source");
        assert_eq!(e.to_string(), "r/result.json: cannot encode");
        assert_eq!(error_chain(&e), format!("r/result.json: cannot encode: {source}"));
    }
}
