//! The token-classification model: encoder, dropout, `Linear(hidden, num_labels)`, and the
//! masked cross-entropy loss of the Hugging Face recipe (positions labelled -100 ignored).

use super::config::Config;
use super::dropout::Dropout;
use super::encoder::{maybe_dropout, Encoder, Inputs};
use super::ops;
use super::params::{Params, CLASSIFIER_BIAS, CLASSIFIER_WEIGHT};
use candle_core::{DType, Result, Tensor, D};

/// The label id of positions that carry no loss (special tokens, later sub-words, padding).
pub const IGNORE_INDEX: i64 = -100;

/// Encoder plus classifier, bound to the variables of a [`Params`].
#[derive(Debug, Clone)]
pub struct TokenClassifier {
    cfg: Config,
    labels: Vec<String>,
    params: Params,
    encoder: Encoder,
    weight: Tensor,
    bias: Tensor,
}

impl TokenClassifier {
    /// Binds a model to `params` (names from [`super::params::model_specs`]).
    pub fn new(cfg: Config, labels: Vec<String>, params: Params) -> TokenClassifier {
        TokenClassifier {
            encoder: Encoder::new(&params, &cfg),
            weight: params.tensor(CLASSIFIER_WEIGHT),
            bias: params.tensor(CLASSIFIER_BIAS),
            cfg,
            labels,
            params,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Label names by class id.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The encoder's last hidden states without dropout: [batch * seq, hidden].
    pub fn hidden_states(&self, inputs: &Inputs) -> Result<Tensor> {
        self.encoder.forward(inputs, None)
    }

    /// -> logits [batch * seq, num_labels]; dropout only when `dropout` is `Some`.
    pub fn forward(&self, inputs: &Inputs, mut dropout: Option<&mut Dropout>) -> Result<Tensor> {
        let hidden = self.encoder.forward(inputs, dropout.as_deref_mut())?;
        let hidden = maybe_dropout(&hidden, self.cfg.classifier_dropout, &mut dropout)?;
        ops::linear(&hidden, &self.weight, &self.bias)
    }
}

/// Sum over labelled positions of -log p(label), divided by `denominator` (the number of
/// labelled positions of the whole optimizer batch, so micro-batches add up to its mean).
/// logits: [n, num_labels], targets: [n] i64 with [`IGNORE_INDEX`] on unlabelled positions.
pub fn masked_cross_entropy(logits: &Tensor, targets: &[i64], denominator: f64) -> Result<Tensor> {
    let (rows, classes): (Vec<u32>, Vec<u32>) =
        targets.iter().enumerate().filter(|(_, &t)| t != IGNORE_INDEX).map(|(i, &t)| (i as u32, t as u32)).unzip();
    let device = logits.device();
    if rows.is_empty() {
        return (logits.sum_all()? * 0.0)?.to_dtype(DType::F32);
    }
    let n = rows.len();
    let picked = logits.index_select(&Tensor::from_vec(rows, n, device)?, 0)?;
    let log_probs = candle_nn::ops::log_softmax(&picked, D::Minus1)?;
    let classes = Tensor::from_vec(classes, (n, 1), device)?;
    let nll = log_probs.gather(&classes, 1)?.sum_all()?.neg()?;
    nll / denominator
}

/// [`masked_cross_entropy`] with the targets already on the logits' device (no copy):
/// targets: [n] i64 with [`IGNORE_INDEX`] on unlabelled positions. Computed in f32.
pub fn masked_cross_entropy_on_device(logits: &Tensor, targets: &Tensor, denominator: f64) -> Result<Tensor> {
    let labelled = targets.ge(&Tensor::zeros((), DType::I64, targets.device())?.broadcast_as(targets.shape())?)?;
    let classes = targets.maximum(&Tensor::zeros((), DType::I64, targets.device())?.broadcast_as(targets.shape())?)?;
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let picked = log_probs.gather(&classes.unsqueeze(1)?, 1)?.squeeze(1)?;
    let nll = (picked * labelled.to_dtype(DType::F32)?)?.sum_all()?.neg()?;
    nll / denominator
}

/// Number of positions that carry a label.
pub fn labelled_count(targets: &[i64]) -> usize {
    targets.iter().filter(|&&t| t != IGNORE_INDEX).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_ignores_unlabelled_positions() {
        let logits = Tensor::new(&[[2.0f32, 0.0], [0.0, 0.0], [5.0, -5.0]], &Device::Cpu).unwrap();
        let loss = masked_cross_entropy(&logits, &[0, IGNORE_INDEX, 1], 2.0).unwrap();
        let expected = ((1.0 + (-2f64).exp()).ln() + (1.0 + 10f64.exp()).ln()) / 2.0;
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }

    #[test]
    fn device_targets_give_the_same_loss() {
        let logits = Tensor::new(&[[2.0f32, 0.0], [0.0, 0.0], [5.0, -5.0]], &Device::Cpu).unwrap();
        let targets = [0, IGNORE_INDEX, 1];
        let want = masked_cross_entropy(&logits, &targets, 2.0).unwrap().to_scalar::<f32>().unwrap();
        let on_device = Tensor::new(&targets, &Device::Cpu).unwrap();
        let got = masked_cross_entropy_on_device(&logits, &on_device, 2.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn cross_entropy_of_nothing_is_zero() {
        let logits = Tensor::new(&[[2.0f32, 0.0]], &Device::Cpu).unwrap();
        let loss = masked_cross_entropy(&logits, &[IGNORE_INDEX], 1.0).unwrap();
        assert_eq!(loss.to_scalar::<f32>().unwrap(), 0.0);
    }
}
