//! Why a training run failed. Non-finite losses and device out-of-memory have their own
//! variants: the scheduler retries the latter with more gradient accumulation.

use crate::model::align::AlignError;
use crate::model::tokenizer::TokenizerError;
use crate::model::LoadError;

/// Errors of [`super::train`].
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training settings: {0}")]
    Config(String),
    #[error("loading the model")]
    Load(#[from] LoadError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{split} sentence {index}")]
    Align {
        split: &'static str,
        index: usize,
        #[source]
        source: AlignError,
    },
    #[error("no training sentences")]
    EmptyTrain,
    #[error("non-finite loss or gradient at epoch {epoch}, step {step}; lower the learning rate")]
    NonFiniteLoss { epoch: usize, step: usize },
    #[error("device out of memory; retry with more gradient accumulation")]
    OutOfMemory(#[source] candle_core::Error),
    #[error("tensor computation")]
    Tensor(#[source] candle_core::Error),
    #[error(transparent)]
    Fast(#[from] crate::model::fused::FastError),
    #[error("evaluation")]
    Evaluate(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        if is_out_of_memory(&e) {
            TrainError::OutOfMemory(e)
        } else {
            TrainError::Tensor(e)
        }
    }
}

/// Whether a device error is an allocation failure (CUDA reports `CUDA_ERROR_OUT_OF_MEMORY`
/// / "out of memory"; a failed host allocation aborts the process instead).
pub fn is_out_of_memory(e: &candle_core::Error) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("out of memory") || text.contains("out_of_memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_into_anyhow_with_their_chain() {
        let err: anyhow::Error =
            TrainError::Align { split: "test", index: 3, source: AlignError::Length { words: 2, tags: 1 } }.into();
        assert_eq!(format!("{err:#}"), "test sentence 3: 2 words but 1 tags");
    }

    #[test]
    fn out_of_memory_is_told_apart() {
        let oom = candle_core::Error::Msg("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into());
        assert!(matches!(TrainError::from(oom), TrainError::OutOfMemory(_)));
        let other = candle_core::Error::Msg("shape mismatch".into());
        assert!(matches!(TrainError::from(other), TrainError::Tensor(_)));
    }
}
