//! What training produces: per-epoch records, events for progress and logs, and the outcome
//! of a run (scores, word-level test predictions, timings, the best model in memory).

use crate::model::TokenClassifier;

/// Entity-level scores of one evaluation (the caller's metric, seqeval-compatible).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct EvalScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub accuracy: f64,
}

/// One epoch of training followed by its validation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean of the epoch's step losses.
    pub train_loss: f64,
    pub val: EvalScores,
    /// Validation loss (mean over batches, weighted by batch size, as the Trainer).
    pub val_loss: f64,
    /// The learning rate of the epoch's last optimizer step.
    pub learning_rate: f64,
    /// Training time of the epoch, validation excluded.
    pub seconds: f64,
    pub eval_seconds: f64,
    /// Non-padding training tokens per second of `seconds`.
    pub tokens_per_sec: f64,
}

/// Progress of a run, for rendering and logging (library code never prints).
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    EpochStart {
        epoch: usize,
        steps: usize,
    },
    Step {
        epoch: usize,
        /// 1-based within the run.
        step: usize,
        total_steps: usize,
        loss: f64,
        learning_rate: f64,
    },
    EpochEnd(EpochRecord),
    /// Early stopping ended training after this epoch.
    StoppedEarly {
        epoch: usize,
    },
    /// The epoch whose weights are restored for the test evaluation.
    BestEpoch {
        epoch: usize,
    },
    TestScored(EvalScores),
    /// How the matrix products compute: the `precision` key, the kernel family that runs
    /// them and a line for the run's log.
    Kernels {
        precision: &'static str,
        family: String,
        note: String,
    },
}

/// Gold entities broken by `max_length` truncation, per split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TruncationLoss {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    /// Test words cut (predicted "O" in `test_pred`).
    pub test_words: usize,
}

/// The result of [`super::train`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub epochs: Vec<EpochRecord>,
    /// 1-based epoch whose weights were restored.
    pub best_epoch: usize,
    /// The epoch after which early stopping ended training; `None` when every epoch ran.
    pub stopped_epoch: Option<usize>,
    /// Test scores on the words the model saw (truncated words dropped, as the recipe).
    pub test: EvalScores,
    /// Every test word's gold tag.
    pub test_gold: Vec<Vec<String>>,
    /// Every test word's predicted tag ("O" for words cut by truncation).
    pub test_pred: Vec<Vec<String>>,
    pub entities_lost_to_truncation: TruncationLoss,
    pub n_parameters: usize,
    /// The whole epoch loop, validation included (as the Trainer's `train()`).
    pub train_seconds: f64,
    /// Non-padding training tokens of all epochs over the epochs' training time (validation
    /// excluded: the sum of [`EpochRecord::seconds`]).
    pub train_tokens_per_sec: f64,
    /// Non-padding tokens of one pass over the training split.
    pub train_tokens_per_epoch: usize,
    pub test_seconds: f64,
    /// The engine that computed the steps (`Auto` resolved).
    pub engine: super::Engine,
    /// fp16 optimizer steps skipped because a gradient overflowed (loss scaling).
    pub skipped_steps: usize,
    /// Graph engine: the most host <-> device copies one optimizer step made.
    pub transfers_per_step: Option<crate::model::transfer::Transfers>,
    /// The `precision` key the run computed with.
    pub precision: &'static str,
    /// The kernels of the matrix products: on the fused engine the bf16 family (`amx`,
    /// `avx512_bf16`, `emulated`) or the f32 kernels' name, on the graph engine `candle`.
    pub kernels: String,
    /// The model with the best epoch's weights (f32).
    pub model: TokenClassifier,
}
