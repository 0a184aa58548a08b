//! The graph engine: training steps through candle tensors and autograd, the code a GPU run
//! takes, and on the CPU when `engine = "graph"`. Built so that a step copies nothing back to
//! the host but one two-number tensor:
//!
//! - a micro-batch is one upload (token ids, positions, the token mask and targets packed in
//!   one i64 tensor); the attention bias and the loss's mask are computed from it on the device;
//! - dropout masks come from the counter-based generator of [`crate::model::dropout`], on the
//!   device;
//! - the loss is summed and the squared gradient norm computed on the device, and both come
//!   back in one download: the step's only synchronisation. Clipping and loss scaling become
//!   the multiplier of one [`FlatAdamW`] update.
//!
//! Every copy goes through [`crate::model::transfer`], which counts them: the per-step count is
//! recorded in the outcome and held by tests.

use super::clip::clip_coefficient;
use super::config::{Precision, TrainConfig};
use super::flat::FlatAdamW;
use super::optimizer::AdamWConfig;
use super::scaler::GradScaler;
use crate::model::encoder::HostBatch;
use crate::model::head::masked_cross_entropy_on_device;
use crate::model::transfer::{self, Transfers};
use crate::model::{Dropout, Inputs, Params, TokenClassifier};
use candle_core::{DType, Device, Result, Tensor, Var, D};

/// The state of a run on the graph engine.
pub struct GraphEngine {
    /// The model in the compute dtype; in fp32 and tf32 it shares its variables with the
    /// f32 model the run started from.
    model: TokenClassifier,
    optimizer: FlatAdamW,
    dropout: Dropout,
    /// Present for fp16.
    scaler: Option<GradScaler>,
    device: Device,
    worst_step: Transfers,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// The batch's mean loss over labelled positions.
    pub loss: f64,
    /// The global gradient norm before clipping (loss scaling removed).
    pub grad_norm: f64,
    /// Whether the parameters were updated (not when a gradient was inf or NaN).
    pub applied: bool,
}

impl GraphEngine {
    /// Prepares `model` (f32) for training in `cfg.precision` on `device`.
    pub fn new(model: &TokenClassifier, cfg: &TrainConfig, device: &Device) -> Result<GraphEngine> {
        if device.is_cuda() {
            candle_core::cuda::set_gemm_reduced_precision_f32(cfg.precision == Precision::Tf32);
        }
        let optimizer = FlatAdamW::new(model.params(), AdamWConfig::with_weight_decay(cfg.weight_decay))?;
        let dtype = cfg.precision.compute_dtype();
        let compute = match dtype {
            DType::F32 => model.clone(),
            _ => {
                TokenClassifier::new(model.config().clone(), model.labels().to_vec(), in_dtype(model.params(), dtype)?)
            }
        };
        let mc = model.config();
        let rows = cfg.batch_size.div_ceil(cfg.grad_accum.max(1));
        let capacity = rows * cfg.max_length * mc.hidden_size.max(mc.num_heads * cfg.max_length);
        Ok(GraphEngine {
            model: compute,
            optimizer,
            dropout: Dropout::on_device(cfg.seed, capacity, device)?,
            scaler: (cfg.precision == Precision::Fp16).then(GradScaler::default),
            device: device.clone(),
            worst_step: Transfers::default(),
        })
    }

    /// The model in the compute dtype (for evaluation).
    pub fn model(&self) -> &TokenClassifier {
        &self.model
    }

    /// Optimizer steps skipped by loss scaling.
    pub fn skipped_steps(&self) -> usize {
        self.scaler.as_ref().map_or(0, GradScaler::skipped)
    }

    /// The most host <-> device copies any step made so far.
    pub fn worst_step_transfers(&self) -> Transfers {
        self.worst_step
    }

    /// Forward and backward over `micro` (micro-batches and their targets), then clipping and
    /// one AdamW update with `lr`. `step` (0-based in the run) keys the dropout masks;
    /// `denominator` is the labelled positions of the whole batch.
    pub fn step(
        &mut self,
        micro: &[(HostBatch, Vec<i64>)],
        denominator: f64,
        step: u64,
        lr: f64,
        max_grad_norm: f64,
    ) -> Result<StepOutcome> {
        let before = transfer::counts();
        self.dropout.start_step(step);
        let scale = self.scaler.as_ref().map_or(1.0, GradScaler::scale);
        let (loss, grads) = self.gradients(micro, denominator, scale)?;
        let flat = self.optimizer.gather(&grads)?;
        let norm_squared = self.optimizer.squared_norm(&flat)?;
        let both: Vec<f32> = transfer::download(&Tensor::stack(&[loss, norm_squared], 0)?)?;
        let (loss, grad_norm) = (both[0] as f64, (both[1] as f64).sqrt() / scale);
        let finite = grad_norm.is_finite() && loss.is_finite();
        let applied = match &mut self.scaler {
            Some(s) => s.update(finite),
            None => finite,
        };
        if applied {
            let multiplier = clip_coefficient(grad_norm, max_grad_norm) / scale;
            self.optimizer.step(&flat, lr, multiplier, self.model.params())?;
        }
        self.worst_step = self.worst_step.max(transfer::counts().since(before));
        Ok(StepOutcome { loss, grad_norm, applied })
    }

    /// The summed loss (a device scalar) and per-parameter gradients of `scale` times it.
    fn gradients(
        &mut self,
        micro: &[(HostBatch, Vec<i64>)],
        denominator: f64,
        scale: f64,
    ) -> Result<(Tensor, Vec<Option<Tensor>>)> {
        let mut grads: Vec<Option<Tensor>> = vec![None; self.model.params().len()];
        let mut loss_sum: Option<Tensor> = None;
        for (batch, targets) in micro {
            let (inputs, targets) = device_batch(batch, targets, &self.device)?;
            let logits = self.model.forward(&inputs, Some(&mut self.dropout))?;
            let loss = masked_cross_entropy_on_device(&logits, &targets, denominator)?;
            let mut store = loss.affine(scale, 0.0)?.backward()?;
            for (slot, (_, var)) in grads.iter_mut().zip(self.model.params().iter()) {
                if let Some(g) = store.remove(var.as_tensor()) {
                    *slot = Some(match slot.take() {
                        Some(acc) => (acc + g)?,
                        None => g,
                    });
                }
            }
            let loss = loss.detach();
            loss_sum = Some(match loss_sum {
                Some(acc) => (acc + loss)?,
                None => loss,
            });
        }
        match loss_sum {
            Some(loss) => Ok((loss, grads)),
            None => candle_core::bail!("an optimizer step without micro-batches"),
        }
    }

    /// The masters as they are now, for [`GraphEngine::restore`].
    pub fn snapshot(&self) -> Vec<Tensor> {
        self.optimizer.snapshot()
    }

    /// Puts back the weights of a [`GraphEngine::snapshot`].
    pub fn restore(&mut self, snapshot: &[Tensor]) -> Result<()> {
        self.optimizer.restore(snapshot, self.model.params())
    }

    /// Writes the f32 masters into `params` (the run's f32 model, for export).
    pub fn write_masters(&self, params: &Params) -> Result<()> {
        self.optimizer.write_to(params)
    }

    /// Class ids of every position of `batch` without dropout (the only copy back), and the
    /// batch's mean loss added, times `weight`, to `loss_sum` on the device.
    pub fn classify(
        &self,
        batch: &HostBatch,
        targets: &[i64],
        weight: f64,
        loss_sum: &mut Option<Tensor>,
    ) -> Result<Vec<u32>> {
        let (inputs, on_device) = device_batch(batch, targets, &self.device)?;
        let logits = self.model.forward(&inputs, None)?;
        let labelled = targets.iter().filter(|&&t| t != crate::model::IGNORE_INDEX).count().max(1) as f64;
        let loss = masked_cross_entropy_on_device(&logits, &on_device, labelled)?.affine(weight, 0.0)?;
        *loss_sum = Some(match loss_sum.take() {
            Some(acc) => (acc + loss)?,
            None => loss,
        });
        transfer::download(&logits.argmax(D::Minus1)?)
    }
}

/// The variables of `params` cast to `dtype`, as new variables.
fn in_dtype(params: &Params, dtype: DType) -> Result<Params> {
    let vars = params
        .iter()
        .map(|(name, var)| Ok((name.to_string(), Var::from_tensor(&var.as_tensor().to_dtype(dtype)?)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Params::new(vars))
}

/// A padded batch and its targets on `device` in one upload: rows of token ids, position ids,
/// the token mask (1 on tokens) and targets, packed as [4, batch * seq] i64.
pub fn device_batch(batch: &HostBatch, targets: &[i64], device: &Device) -> Result<(Inputs, Tensor)> {
    let n = batch.batch * batch.seq;
    if targets.len() != n {
        candle_core::bail!("{} targets for a batch of {n} positions", targets.len());
    }
    let mut packed: Vec<i64> = Vec::with_capacity(4 * n);
    packed.extend(batch.input_ids.iter().map(|&i| i as i64));
    packed.extend(batch.position_ids.iter().map(|&i| i as i64));
    packed.extend(batch.attention_bias.iter().map(|&b| (b == 0.0) as i64));
    packed.extend_from_slice(targets);
    let packed = transfer::upload(&packed, (4, n), device)?;
    let row = |i: usize| packed.get(i);
    let (b, s) = (batch.batch, batch.seq);
    let token_type_ids = match batch.has_token_types {
        true => Some(Tensor::zeros((b, s), DType::U32, device)?),
        false => None,
    };
    // 1 on tokens -> 0, 0 on padding -> the most negative f32 (as `HostBatch`).
    let bias = row(2)?.to_dtype(DType::F32)?.affine(f32::MAX as f64, f32::MIN as f64)?;
    let inputs = Inputs {
        input_ids: row(0)?.reshape((b, s))?,
        token_type_ids,
        position_ids: row(1)?.reshape((b, s))?,
        attention_bias: bias.reshape((b, 1, 1, s))?,
        batch: b,
        seq: s,
    };
    Ok((inputs, row(3)?))
}

/// The summed evaluation loss of [`GraphEngine::classify`] in host memory (one copy).
pub fn read_loss(loss_sum: Option<Tensor>) -> Result<f64> {
    match loss_sum {
        Some(t) => Ok(transfer::download::<f32>(&t)?[0] as f64),
        None => Ok(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_batch_equals_the_host_inputs() {
        let cfg = crate::model::Config::from_json(
            r#"{"model_type": "roberta", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 20,
            "type_vocab_size": 1, "pad_token_id": 1}"#,
            std::path::Path::new("c.json"),
        )
        .unwrap();
        let host = HostBatch::new(&[vec![0, 5, 6, 2], vec![0, 7, 2]], &cfg);
        let targets = vec![-100, 1, 2, -100, -100, 0, -100, -100];
        let before = transfer::counts();
        let (inputs, t) = device_batch(&host, &targets, &Device::Cpu).unwrap();
        assert_eq!(transfer::counts().since(before), Transfers { to_device: 1, to_host: 0 });
        let want = Inputs::from_host(&host, &Device::Cpu).unwrap();
        let ids = |x: &Tensor| x.to_dtype(DType::I64).unwrap().flatten_all().unwrap().to_vec1::<i64>().unwrap();
        assert_eq!(ids(&inputs.input_ids), ids(&want.input_ids));
        assert_eq!(ids(&inputs.position_ids), ids(&want.position_ids));
        let bias = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(bias(&inputs.attention_bias), bias(&want.attention_bias));
        assert_eq!(t.to_vec1::<i64>().unwrap(), targets);
    }
}

#[cfg(test)]
mod precision_tests {
    use super::*;
    use crate::model::Config;

    /// bf16 trains a bf16 copy of the model from f32 masters; fp32 trains the model itself.
    #[test]
    fn half_precision_computes_in_half_and_keeps_f32_masters() {
        let cfg = Config::from_json(
            r#"{"model_type": "bert", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 20,
            "type_vocab_size": 2, "pad_token_id": 0}"#,
            std::path::Path::new("c.json"),
        )
        .unwrap();
        let labels = ["O", "B-X"].map(String::from).to_vec();
        let model = crate::model::random_model(&cfg, &labels, 1, &Device::Cpu).unwrap();
        let start = model.params().snapshot().unwrap();
        let train = TrainConfig { precision: Precision::Bf16, max_length: 8, ..TrainConfig::default() };
        let mut engine = GraphEngine::new(&model, &train, &Device::Cpu).unwrap();
        assert!(engine.model().params().iter().all(|(_, v)| v.dtype() == DType::BF16));
        let batch = HostBatch::new(&[vec![2, 5, 6, 3]], &cfg);
        let outcome = engine.step(&[(batch, vec![-100, 1, 0, -100])], 2.0, 0, 1e-2, 1.0).unwrap();
        assert!(outcome.applied && outcome.loss.is_finite());
        // The f32 model is untouched until the masters are written into it.
        let flat = |p: &Params| -> Vec<f32> {
            p.iter()
                .flat_map(|(_, v)| v.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap())
                .collect()
        };
        let unchanged: Vec<f32> =
            start.iter().flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect();
        assert_eq!(flat(model.params()), unchanged);
        engine.write_masters(model.params()).unwrap();
        let (masters, half) = (flat(model.params()), flat(engine.model().params()));
        assert_ne!(masters, unchanged);
        // The bf16 weights are the masters rounded: close, and not all equal.
        assert!(masters.iter().zip(&half).all(|(m, h)| (m - h).abs() <= m.abs() / 128.0 + 1e-30));
        assert_ne!(masters, half);
    }
}
