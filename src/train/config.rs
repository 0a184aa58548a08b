//! Training hyper-parameters, defaulting to the recipe of reference/TRAINING_RECIPE.md.

pub use crate::spec::{Engine, Precision};

use super::select::SelectMetric;
use crate::model::align::LabelAlignment;

/// One run's training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    /// The effective batch (sentences per optimizer step).
    pub batch_size: usize,
    /// Micro-batches per optimizer step: each holds about `batch_size / grad_accum`
    /// sentences and the gradients add up to the full batch's (same loss normalisation).
    pub grad_accum: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Used when `warmup_steps` is 0.
    pub warmup_ratio: f64,
    pub warmup_steps: usize,
    /// Global gradient-norm limit; 0 disables clipping.
    pub max_grad_norm: f64,
    /// Tokens per sentence, special tokens included.
    pub max_length: usize,
    pub label_alignment: LabelAlignment,
    /// Sub-word tokens shared by consecutive windows of a sentence longer than `max_length`;
    /// 0 truncates such sentences instead (the study's recipe).
    pub stride: usize,
    pub seed: u64,
    pub select_best_by: SelectMetric,
    /// Overrides every dropout probability of the model (hidden, attention, classifier).
    pub dropout: Option<f64>,
    /// Sentences per evaluation batch.
    pub eval_batch_size: usize,
    /// Evaluations without improvement of `select_best_by` before training stops; 0 is off
    /// (transformers' `EarlyStoppingCallback`, see [`super::select::stops_early`]).
    pub early_stopping_patience: usize,
    /// How much an evaluation must beat the best so far to count as an improvement.
    pub early_stopping_threshold: f64,
    /// Which implementation computes the steps (see [`Engine`]).
    pub engine: Engine,
    /// The arithmetic of forward and backward passes (see [`Precision`]): on the graph engine
    /// the dtype of weights and activations, on the fused engine that of the matrix products.
    pub precision: Precision,
}

impl Precision {
    /// The dtype of weights and activations in forward and backward passes.
    pub fn compute_dtype(self) -> candle_core::DType {
        match self {
            Precision::Fp32 | Precision::Tf32 => candle_core::DType::F32,
            Precision::Bf16 => candle_core::DType::BF16,
            Precision::Fp16 => candle_core::DType::F16,
        }
    }
}

/// The precisions a resolved engine can compute: the capability table `nergrid validate`
/// and `train` both consult.
pub fn precisions_of(engine: Engine) -> &'static [&'static str] {
    match engine {
        Engine::Fused => &["fp32", "tf32", "bf16"],
        Engine::Graph | Engine::Auto => &["fp32", "tf32", "bf16", "fp16"],
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 16,
            grad_accum: 1,
            learning_rate: 5e-5,
            weight_decay: 0.01,
            warmup_ratio: 0.0,
            warmup_steps: 0,
            max_grad_norm: 1.0,
            max_length: 256,
            label_alignment: LabelAlignment::First,
            stride: 0,
            seed: 42,
            select_best_by: SelectMetric::F1,
            dropout: None,
            eval_batch_size: 16,
            early_stopping_patience: 0,
            early_stopping_threshold: 0.0,
            engine: Engine::Auto,
            precision: Precision::Fp32,
        }
    }
}

impl TrainConfig {
    /// A description of the first invalid setting, if any.
    pub fn invalid(&self) -> Option<String> {
        let checks = [
            (self.epochs == 0, "epochs must be >= 1".to_string()),
            (self.batch_size == 0, "batch_size must be >= 1".to_string()),
            (self.grad_accum == 0, "grad_accum must be >= 1".to_string()),
            (
                self.grad_accum > self.batch_size,
                format!("grad_accum {} exceeds batch_size {}", self.grad_accum, self.batch_size),
            ),
            (
                self.learning_rate.is_nan() || self.learning_rate <= 0.0,
                format!("learning_rate must be > 0, got {}", self.learning_rate),
            ),
            (self.max_length < 3, format!("max_length must be >= 3, got {}", self.max_length)),
            (self.dropout.is_some_and(|p| !(0.0..1.0).contains(&p)), "dropout must be in [0, 1)".to_string()),
            (self.eval_batch_size == 0, "eval_batch_size must be >= 1".to_string()),
            (
                self.early_stopping_threshold.is_nan() || self.early_stopping_threshold < 0.0,
                format!("early_stopping_threshold must be >= 0, got {}", self.early_stopping_threshold),
            ),
        ];
        checks.into_iter().find(|(bad, _)| *bad).map(|(_, what)| what)
    }
}
