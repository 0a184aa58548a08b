//! Models: Hugging Face configs and checkpoints (BERT, DistilBERT, RoBERTa/XLM-R), a trainable
//! encoder with a token-classification head, tokenisation with word alignment, export in
//! Hugging Face layout, and entity prediction from raw text.
//!
//! The model is computed two ways over the same parameters: [`encoder`]/[`head`] through
//! candle's autograd (any device), and [`fused`] (the fused engine) on the CPU with fused [`kernels`] and a
//! hand-written backward pass that skips padding (tested to give the autograd path's loss and
//! gradients).

pub mod aggregate;
pub(crate) mod align;
mod approx;
pub mod bf16;
pub(crate) mod config;
pub(crate) mod dropout;
pub mod encoder;
pub mod export;
pub mod fused;
pub(crate) mod head;
pub(crate) mod host;
pub mod kernels;
pub mod load;
pub(crate) mod ops;
pub mod params;
pub mod predict;
pub mod tokenizer;
pub mod transfer;

pub use align::{AlignedSentence, LabelAlignment};
pub use config::{Activation, Architecture, Config, ConfigError};
pub use dropout::Dropout;
pub use encoder::{Encoder, Inputs};
pub use head::{masked_cross_entropy, TokenClassifier, IGNORE_INDEX};
pub use load::{
    load_model, random_model, resolve, resolve_location, LoadError, LoadedModel, ModelFiles, ModelLocation,
};
pub use params::Params;
