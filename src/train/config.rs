//! Training hyper-parameters, defaulting to the recipe of reference/TRAINING_RECIPE.md.

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
    pub seed: u64,
    pub select_best_by: SelectMetric,
    /// Overrides every dropout probability of the model (hidden, attention, classifier).
    pub dropout: Option<f64>,
    /// Sentences per evaluation batch.
    pub eval_batch_size: usize,
    /// How the matrix products compute.
    pub precision: Precision,
}

/// The `precision` key: what the matrix products of training and evaluation compute in.
/// Master weights, optimizer state, norms, softmax, activations and the loss stay f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Fp32,
    /// Reduced-precision f32 products on GPUs; the same as `Fp32` on the CPU.
    Tf32,
    /// bf16 operands, f32 accumulation.
    Bf16,
    Fp16,
}

impl Precision {
    pub const ALL: [Precision; 4] = [Precision::Fp32, Precision::Tf32, Precision::Bf16, Precision::Fp16];

    /// The spelling of the spec and of `result.json`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    pub fn parse(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
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
            seed: 42,
            select_best_by: SelectMetric::F1,
            dropout: None,
            eval_batch_size: 16,
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
        ];
        checks.into_iter().find(|(bad, _)| *bad).map(|(_, what)| what)
    }
}
