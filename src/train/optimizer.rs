//! AdamW with torch's semantics and the Hugging Face Trainer's parameter groups: betas
//! (0.9, 0.999), eps 1e-8, decoupled weight decay `p -= lr * wd * p` only for parameters that
//! are not biases or norms. On the CPU, parameters and moments are updated in place in one
//! fused parallel pass (candle_nn::AdamW decays everything and allocates per operation).

use crate::model::host::{is_host, modify_in_place, update_in_place};
use crate::model::Params;
use candle_core::{Result, Tensor, Var};
use rayon::prelude::*;

/// AdamW hyper-parameters other than the learning rate (which the schedule gives per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// torch's defaults with the given weight decay.
    pub fn with_weight_decay(weight_decay: f64) -> AdamWConfig {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }
}

/// Whether the Trainer decays parameter `name`: not when its lower-cased name contains
/// `bias`, `layernorm` or `rmsnorm`, or has a `norm` component (`.norm.`, `_norm.`).
pub fn decays(name: &str) -> bool {
    let lower = name.to_lowercase();
    let forbidden = ["bias", "layernorm", "rmsnorm"];
    if forbidden.iter().any(|f| lower.contains(f)) {
        return false;
    }
    let module = lower.rsplit_once('.').map_or("", |(m, _)| m);
    !module.split('.').any(|part| part == "norm" || part.ends_with("_norm"))
}

enum Moments {
    /// CPU parameters: first and second moments in host memory.
    Host { m: Vec<f32>, v: Vec<f32> },
    /// Other devices: moments as tensors beside the parameter.
    Device { m: Tensor, v: Tensor },
}

struct Slot {
    var: Var,
    decay: bool,
    steps: u64,
    moments: Moments,
}

/// The optimizer state of every parameter.
pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
}

/// Scalars of one update of one parameter.
#[derive(Clone, Copy)]
struct StepScalars {
    decay_factor: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    step_size: f32,
    bias_correction2_sqrt: f32,
    eps: f32,
    grad_scale: f32,
}

impl AdamW {
    /// State for every parameter of `params`, with zero moments.
    pub fn new(params: &Params, cfg: AdamWConfig) -> Result<AdamW> {
        let slots = params
            .iter()
            .map(|(name, var)| {
                let moments = if is_host(var.as_tensor()) {
                    let n = var.elem_count();
                    Moments::Host { m: crate::model::kernels::zeroed(n), v: crate::model::kernels::zeroed(n) }
                } else {
                    Moments::Device { m: var.zeros_like()?, v: var.zeros_like()? }
                };
                Ok(Slot { var: var.clone(), decay: decays(name), steps: 0, moments })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW { cfg, slots })
    }

    /// Whether each parameter (in order) is in the weight-decay group.
    pub fn decay_mask(&self) -> Vec<bool> {
        self.slots.iter().map(|s| s.decay).collect()
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to the i-th parameter and is
    /// multiplied by `grad_scale` (the clipping coefficient). Parameters without a gradient
    /// are left alone, as torch does.
    /// One update from gradients in host memory (the fused CPU path), `grads[i]` for the
    /// i-th parameter, which must be a CPU tensor. Leaves every gradient zero, ready for the
    /// next step to accumulate into (cleared in the same pass, while each chunk is in cache).
    pub fn step_host(&mut self, grads: &mut [Vec<f32>], lr: f64, grad_scale: f64) -> Result<()> {
        let cfg = self.cfg;
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            slot.steps += 1;
            let s = scalars(&cfg, slot.decay, slot.steps, lr, grad_scale);
            let Moments::Host { m, v } = &mut slot.moments else {
                candle_core::bail!("step_host: parameter not in host memory");
            };
            modify_in_place(slot.var.as_tensor(), |p| update_slices_clearing(p, grad, m, v, s))?;
        }
        Ok(())
    }

    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64, grad_scale: f64) -> Result<()> {
        let cfg = self.cfg;
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            let Some(grad) = grad else { continue };
            slot.steps += 1;
            let s = scalars(&cfg, slot.decay, slot.steps, lr, grad_scale);
            match &mut slot.moments {
                Moments::Host { m, v } => host_update(&slot.var, grad, m, v, s)?,
                Moments::Device { m, v } => {
                    let (new_m, new_v) = device_update(&slot.var, grad, m, v, s)?;
                    (*m, *v) = (new_m, new_v);
                }
            }
        }
        Ok(())
    }
}

fn scalars(cfg: &AdamWConfig, decay: bool, t: u64, lr: f64, grad_scale: f64) -> StepScalars {
    let wd = if decay { cfg.weight_decay } else { 0.0 };
    let bias_correction1 = 1.0 - cfg.beta1.powi(t as i32);
    let bias_correction2 = 1.0 - cfg.beta2.powi(t as i32);
    StepScalars {
        decay_factor: (1.0 - lr * wd) as f32,
        one_minus_beta1: (1.0 - cfg.beta1) as f32,
        beta2: cfg.beta2 as f32,
        one_minus_beta2: (1.0 - cfg.beta2) as f32,
        step_size: (lr / bias_correction1) as f32,
        bias_correction2_sqrt: bias_correction2.sqrt() as f32,
        eps: cfg.eps as f32,
        grad_scale: grad_scale as f32,
    }
}

const CHUNK: usize = 1 << 14;

fn host_update(var: &Var, grad: &Tensor, m: &mut [f32], v: &mut [f32], s: StepScalars) -> Result<()> {
    update_in_place(var.as_tensor(), grad, |p, g| update_slices(p, g, m, v, s))
}

fn update_slices(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: StepScalars) {
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| {
            crate::model::kernels::vectorised(
                #[inline(always)]
                || update_chunk(p, g, m, v, s),
            )
        });
}

/// [`update_slices`], then `g` set to zero.
fn update_slices_clearing(p: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32], s: StepScalars) {
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks_mut(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| {
            crate::model::kernels::vectorised(
                #[inline(always)]
                || {
                    update_chunk(p, g, m, v, s);
                    g.fill(0.0);
                },
            )
        });
}

/// torch's `_single_tensor_adamw` on one chunk.
#[inline(always)]
fn update_chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: StepScalars) {
    for i in 0..p.len() {
        let g = g[i] * s.grad_scale;
        let mut x = p[i] * s.decay_factor;
        let mi = m[i] + s.one_minus_beta1 * (g - m[i]);
        let vi = v[i] * s.beta2 + s.one_minus_beta2 * g * g;
        let denom = vi.sqrt() / s.bias_correction2_sqrt + s.eps;
        x -= s.step_size * mi / denom;
        (p[i], m[i], v[i]) = (x, mi, vi);
    }
}

fn device_update(var: &Var, grad: &Tensor, m: &Tensor, v: &Tensor, s: StepScalars) -> Result<(Tensor, Tensor)> {
    let g = (grad * s.grad_scale as f64)?;
    let m = (m + ((&g - m)? * s.one_minus_beta1 as f64)?)?;
    let v = ((v * s.beta2 as f64)? + (g.sqr()? * s.one_minus_beta2 as f64)?)?;
    let denom = ((v.sqrt()? / s.bias_correction2_sqrt as f64)? + s.eps as f64)?;
    let p = (var.as_tensor() * s.decay_factor as f64)?;
    let p = (p - ((&m / denom)? * s.step_size as f64)?)?;
    var.set(&p)?;
    Ok((m, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn decay_groups_follow_the_trainer() {
        assert!(decays("encoder.layer.0.attention.self.query.weight"));
        assert!(decays("embeddings.word_embeddings.weight"));
        assert!(decays("classifier.weight"));
        assert!(!decays("encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("embeddings.LayerNorm.weight"));
        assert!(!decays("transformer.layer.0.sa_layer_norm.weight"));
        assert!(!decays("transformer.layer.0.output_layer_norm.weight"));
        assert!(!decays("model.norm.weight"));
        assert!(decays("encoder.normalizer.weight"));
    }

    /// Expected values computed in float64 from torch's `_single_tensor_adamw` formulas.
    #[test]
    fn matches_torch_adamw_on_two_steps() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, -2.0, 0.5], &dev).unwrap();
        let b = Var::new(&[0.3f32, -0.1], &dev).unwrap();
        let params = Params::new(vec![("dense.weight".into(), w.clone()), ("dense.bias".into(), b.clone())]);
        let mut opt = AdamW::new(&params, AdamWConfig::with_weight_decay(0.1)).unwrap();
        assert_eq!(opt.decay_mask(), vec![true, false]);
        let t = |v: &[f32]| Some(Tensor::new(v, &dev).unwrap());
        opt.step(&[t(&[0.1, -0.2, 0.3]), t(&[0.2, 0.0])], 0.01, 1.0).unwrap();
        assert_close(&w, &[0.989000001, -1.988000001, 0.489500000]);
        assert_close(&b, &[0.290000000, -0.100000000]);
        opt.step(&[t(&[0.05, 0.1, -0.4]), t(&[-0.3, 0.5])], 0.005, 1.0).unwrap();
        assert_close(&w, &[0.983844603, -1.985674315, 0.490222802]);
        assert_close(&b, &[0.291238510, -0.103720684]);
    }

    #[test]
    fn device_fallback_matches_host_update() {
        let dev = Device::Cpu;
        let host = Var::new(&[0.5f32, -1.5, 2.0], &dev).unwrap();
        let g = Tensor::new(&[0.3f32, -0.7, 0.1], &dev).unwrap();
        let s = scalars(&AdamWConfig::with_weight_decay(0.01), true, 1, 0.1, 0.5);
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        host_update(&host, &g, &mut m, &mut v, s).unwrap();
        let other = Var::new(&[0.5f32, -1.5, 2.0], &dev).unwrap();
        let zeros = Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap();
        let (m2, _) = device_update(&other, &g, &zeros, &zeros, s).unwrap();
        assert_close(&other, &host.to_vec1::<f32>().unwrap().iter().map(|&x| x as f64).collect::<Vec<_>>());
        assert_eq!(m2.to_vec1::<f32>().unwrap(), m);
    }

    #[test]
    fn host_step_matches_tensor_step() {
        let dev = Device::Cpu;
        let make = || Params::new(vec![("w".into(), Var::new(&[1.0f32, -2.0, 0.5], &dev).unwrap())]);
        let (a, b) = (make(), make());
        let (mut oa, mut ob) = (
            AdamW::new(&a, AdamWConfig::with_weight_decay(0.1)).unwrap(),
            AdamW::new(&b, AdamWConfig::with_weight_decay(0.1)).unwrap(),
        );
        for g in [[0.1f32, -0.2, 0.3], [0.5, 0.1, -0.7]] {
            oa.step(&[Some(Tensor::new(&g, &dev).unwrap())], 0.01, 0.5).unwrap();
            let mut grads = [g.to_vec()];
            ob.step_host(&mut grads, 0.01, 0.5).unwrap();
            assert_eq!(grads[0], [0.0; 3], "step_host leaves the gradients zero for the next step");
        }
        assert_eq!(a.get("w").to_vec1::<f32>().unwrap(), b.get("w").to_vec1::<f32>().unwrap());
    }

    #[test]
    fn gradient_scale_is_applied() {
        let dev = Device::Cpu;
        // With eps negligible the first step moves by lr * sign(g), whatever the scale: use
        // the second moment instead, which sees the scaled gradient squared.
        let s = scalars(&AdamWConfig::with_weight_decay(0.0), false, 1, 0.1, 0.5);
        let p = Var::new(&[0.0f32], &dev).unwrap();
        let (mut m, mut v) = (vec![0.0], vec![0.0]);
        host_update(&p, &Tensor::new(&[2.0f32], &dev).unwrap(), &mut m, &mut v, s).unwrap();
        assert!((m[0] - 0.1).abs() < 1e-7, "{m:?}");
        assert!((v[0] - 0.001).abs() < 1e-9, "{v:?}");
    }

    fn assert_close(var: &Var, expected: &[f64]) {
        let got = var.to_vec1::<f32>().unwrap();
        for (g, e) in got.iter().zip(expected) {
            assert!((*g as f64 - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }
}
