//! Tensor functions of the encoder that must carry gradients. candle's fused `layer_norm` and
//! `softmax_last_dim` have no backward pass and silently cut the graph, so these are built
//! from differentiable primitives (see reference/CANDLE_NOTES.md).
//!
//! In half precision (bf16, f16) layer norm and softmax compute in f32 and return the input's
//! dtype, as torch's autocast does.

use super::config::Activation;
use candle_core::{DType, Result, Tensor, D};

/// xs: [n, in], weight: [out, in], bias: [out] -> [n, out]
pub fn linear(xs: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    xs.matmul(&weight.t()?)?.broadcast_add(bias)
}

/// xs: [n, hidden], weight/bias: [hidden] -> [n, hidden]
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if xs.dtype() == DType::F32 {
        return candle_nn::ops::layer_norm_slow(xs, weight, bias, eps as f32);
    }
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    candle_nn::ops::layer_norm_slow(&f32(xs)?, &f32(weight)?, &f32(bias)?, eps as f32)?.to_dtype(xs.dtype())
}

/// scores: [b, heads, s, s], bias: [b, 1, 1, s] (0 or a large negative) -> probabilities
/// over the last dimension of `scores * scale + bias`.
pub fn masked_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    let logits = (scores.to_dtype(DType::F32)? * scale)?.broadcast_add(bias)?;
    candle_nn::ops::softmax(&logits, D::Minus1)?.to_dtype(scores.dtype())
}

/// The feed-forward activation.
pub fn activation(xs: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::GeluErf => xs.gelu_erf(),
        Activation::GeluTanh => xs.gelu(),
        Activation::Relu => xs.relu(),
    }
}
