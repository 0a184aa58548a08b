//! Tensor functions of the encoder that must carry gradients. candle's fused `layer_norm` and
//! `softmax_last_dim` have no backward pass and silently cut the graph, so these are built
//! from differentiable primitives (see reference/CANDLE_NOTES.md).

use super::config::Activation;
use candle_core::{Result, Tensor, D};

/// xs: [n, in], weight: [out, in], bias: [out] -> [n, out]
pub fn linear(xs: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    xs.matmul(&weight.t()?)?.broadcast_add(bias)
}

/// xs: [n, hidden], weight/bias: [hidden] -> [n, hidden]
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    candle_nn::ops::layer_norm_slow(xs, weight, bias, eps as f32)
}

/// scores: [b, heads, s, s], bias: [b, 1, 1, s] (0 or a large negative) -> probabilities
/// over the last dimension of `scores * scale + bias`.
pub fn masked_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    let logits = (scores * scale)?.broadcast_add(bias)?;
    candle_nn::ops::softmax(&logits, D::Minus1)
}

/// The feed-forward activation.
pub fn activation(xs: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::GeluErf => xs.gelu_erf(),
        Activation::GeluTanh => xs.gelu(),
        Activation::Relu => xs.relu(),
    }
}
