//! The seam between the scheduler and whatever produces a run's numbers.
//!
//! A trainer that fails in a way the scheduler should act on (out of memory, non-finite loss)
//! returns a `RunFailure` (see `failure.rs`) inside its `anyhow::Error`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::RunSpec;
use crate::spec::Spec;
use crate::store::{ClassScores, EpochRow, Scores, Store};

/// What a trainer gets besides the run itself.
pub struct RunContext<'a> {
    pub spec: &'a Spec,
    pub store: &'a Store,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// Micro-batches per optimizer step (doubled on out-of-memory retries).
    pub grad_accum: usize,
}

impl RunContext<'_> {
    /// Sentences per forward pass: the recipe's `batch_size` cut into `grad_accum` pieces.
    /// The optimizer still steps once per `batch_size` sentences, so results stay the recipe's.
    pub fn micro_batch(&self, batch_size: usize) -> usize {
        micro_batch(batch_size, self.grad_accum)
    }
}

/// `ceil(batch_size / grad_accum)`, at least 1.
pub fn micro_batch(batch_size: usize, grad_accum: usize) -> usize {
    batch_size.max(1).div_ceil(grad_accum.max(1))
}

/// Live progress of one run, for the progress display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    /// The validation F1 of `epoch`: set only in the report sent when that epoch's validation
    /// has ended, so a display never shows one epoch's number beside another epoch.
    pub val_f1: Option<f64>,
}

/// The numbers and files a finished run hands to the store.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    pub test: Scores,
    pub validation: Option<Scores>,
    pub best_epoch: Option<usize>,
    pub report: BTreeMap<String, ClassScores>,
    /// Error analysis of the test predictions (`result.json`'s `errors`).
    pub errors: Option<crate::metrics::ErrorAnalysis>,
    pub epochs: Vec<EpochRow>,
    /// Every test sentence with gold and predicted tags (`predictions.conll`, the input of
    /// `nergrid eval`).
    pub predictions: Option<Vec<crate::store::PredictedSentence>>,
    pub train_seconds: Option<f64>,
    pub train_tokens_per_sec: Option<f64>,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Produces the results of one run.
pub trait Trainer: Sync {
    /// True for the dry-run trainer, whose numbers are not from training.
    fn is_dry_run(&self) -> bool;
    fn train(
        &self,
        run: &RunSpec,
        ctx: &RunContext<'_>,
        progress: &mut dyn FnMut(RunProgress),
    ) -> anyhow::Result<RunOutput>;
}
