//! `result.json`: what a finished run (done or failed) leaves behind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::ErrorAnalysis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Done,
    Failed,
}

/// Micro-averaged entity scores and token accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub accuracy: f64,
}

/// One row of a per-type report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Timings {
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    /// Wall time of the whole run.
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_tokens_per_sec: Option<f64>,
}

/// The tool that produced a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
    pub git_commit: String,
}

impl ToolInfo {
    pub fn current() -> Self {
        ToolInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: option_env!("NERGRID_GIT_COMMIT").unwrap_or("unknown").into(),
        }
    }
}

/// Everything `result.json` holds. A complete file is what "done" means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub id: String,
    pub index: usize,
    pub experiment: String,
    pub status: RunStatus,
    /// True when the metrics come from the dry-run trainer, not from training.
    pub dry_run: bool,
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Scores>,
    /// Validation scores of the best epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Scores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    /// Per-type test report, plus "micro avg", "macro avg", "weighted avg".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub report: BTreeMap<String, ClassScores>,
    /// Error analysis of the test predictions: nervaluate's categories, type confusion and
    /// boundary errors. Absent in results written before it existed and in dry runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorAnalysis>,
    pub timings: Timings,
    pub device: String,
    pub host: String,
    pub attempt: u32,
    pub tool: ToolInfo,
    /// Error chain of a failed run, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error: Vec<String>,
    /// Trainer-specific facts: resources, split manifest hashes, retries, versions.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// One row of `epochs.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_precision: f64,
    pub val_recall: f64,
    pub val_f1: f64,
    pub learning_rate: f64,
    pub seconds: f64,
    pub tokens_per_sec: f64,
}
