//! AdamW over flat buffers for the graph engine: the parameters of each weight-decay group
//! are one f32 master vector with one first- and one second-moment vector, so an update is
//! about fifteen tensor operations per group instead of fifteen per parameter (about 200
//! parameters in BERT-base: ~3000 kernel launches per step became ~35 plus a gather and a
//! write-back copy per parameter). The masters stay f32 whatever dtype the model computes in.

use super::optimizer::{decays, AdamWConfig};
use crate::model::Params;
use candle_core::{DType, Result, Shape, Tensor};

/// One parameter's place in its group's flat vector.
#[derive(Debug, Clone)]
struct Member {
    index: usize,
    offset: usize,
    shape: Shape,
}

/// A weight-decay group: masters and moments as flat f32 vectors.
#[derive(Debug, Clone)]
struct Group {
    decay: bool,
    members: Vec<Member>,
    master: Tensor,
    m: Tensor,
    v: Tensor,
}

/// The optimizer state of every parameter, by weight-decay group.
pub struct FlatAdamW {
    cfg: AdamWConfig,
    groups: Vec<Group>,
    steps: u64,
}

/// Gradients gathered per group (f32, the groups' order), ready for the norm and the update.
pub struct FlatGrads(Vec<Tensor>);

impl FlatAdamW {
    /// Masters copied from `params` (on their device), zero moments.
    pub fn new(params: &Params, cfg: AdamWConfig) -> Result<FlatAdamW> {
        let mut groups = Vec::new();
        for decay in [true, false] {
            let mut members = Vec::new();
            let mut parts = Vec::new();
            let mut offset = 0;
            for (index, (_, var)) in params.iter().enumerate().filter(|(_, (n, _))| decays(n) == decay) {
                members.push(Member { index, offset, shape: var.shape().clone() });
                offset += var.elem_count();
                parts.push(var.as_tensor().flatten_all()?.to_dtype(DType::F32)?);
            }
            if members.is_empty() {
                continue;
            }
            // A copy: `cat` of one tensor returns it, which would alias the variable.
            let master = Tensor::cat(&parts, 0)?.copy()?;
            let (m, v) = (master.zeros_like()?, master.zeros_like()?);
            groups.push(Group { decay, members, master, m, v });
        }
        Ok(FlatAdamW { cfg, groups, steps: 0 })
    }

    /// Whether each parameter (in order) is in the weight-decay group (tests compare it with
    /// the per-parameter optimizer's).
    #[cfg(test)]
    pub fn decay_mask(&self, n_params: usize) -> Vec<bool> {
        let mut mask = vec![false; n_params];
        for g in &self.groups {
            for m in &g.members {
                mask[m.index] = g.decay;
            }
        }
        mask
    }

    /// The per-parameter gradients `grads` (any float dtype) as flat f32 group vectors. A
    /// parameter without a gradient contributes zeros.
    pub fn gather(&self, grads: &[Option<Tensor>]) -> Result<FlatGrads> {
        let mut out = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let parts = g
                .members
                .iter()
                .map(|m| match &grads[m.index] {
                    Some(t) => t.flatten_all(),
                    None => Tensor::zeros(m.shape.elem_count(), g.master.dtype(), g.master.device()),
                })
                .collect::<Result<Vec<_>>>()?;
            let parts = parts.iter().map(|p| p.to_dtype(DType::F32)).collect::<Result<Vec<_>>>()?;
            out.push(Tensor::cat(&parts, 0)?);
        }
        Ok(FlatGrads(out))
    }

    /// The sum of squares of all gradients: a scalar f32 tensor on the device (not copied).
    pub fn squared_norm(&self, grads: &FlatGrads) -> Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        for g in &grads.0 {
            let s = g.sqr()?.sum_all()?;
            sum = Some(match sum {
                Some(acc) => (acc + s)?,
                None => s,
            });
        }
        match sum {
            Some(s) => Ok(s),
            None => candle_core::bail!("no parameters"),
        }
    }

    /// One AdamW update with learning rate `lr` from gradients multiplied by `grad_scale`
    /// (the clipping coefficient over the loss scale), written back into `params` (the
    /// model's variables, in their dtype).
    pub fn step(&mut self, grads: &FlatGrads, lr: f64, grad_scale: f64, params: &Params) -> Result<()> {
        self.steps += 1;
        let (cfg, t) = (self.cfg, self.steps as i32);
        let (bias1, bias2) = (1.0 - cfg.beta1.powi(t), 1.0 - cfg.beta2.powi(t));
        for (group, g) in self.groups.iter_mut().zip(&grads.0) {
            let wd = if group.decay { cfg.weight_decay } else { 0.0 };
            let g = g.affine(grad_scale, 0.0)?;
            let m = (&group.m + (&g - &group.m)?.affine(1.0 - cfg.beta1, 0.0)?)?;
            let v = (group.v.affine(cfg.beta2, 0.0)? + g.sqr()?.affine(1.0 - cfg.beta2, 0.0)?)?;
            let denom = v.sqrt()?.affine(1.0 / bias2.sqrt(), cfg.eps)?;
            let update = (&m / denom)?.affine(-lr / bias1, 0.0)?;
            group.master = (group.master.affine(1.0 - lr * wd, 0.0)? + update)?;
            (group.m, group.v) = (m, v);
        }
        self.write_to(params)
    }

    /// Copies the masters into `params` (cast to each variable's dtype).
    pub fn write_to(&self, params: &Params) -> Result<()> {
        let vars: Vec<_> = params.iter().map(|(_, v)| v).collect();
        for g in &self.groups {
            for m in &g.members {
                let var = vars[m.index];
                let values = g.master.narrow(0, m.offset, m.shape.elem_count())?.reshape(&m.shape)?;
                var.set(&values.to_dtype(var.dtype())?)?;
            }
        }
        Ok(())
    }

    /// The masters as they are now (the tensors are immutable: no copy is made).
    pub fn snapshot(&self) -> Vec<Tensor> {
        self.groups.iter().map(|g| g.master.clone()).collect()
    }

    /// Puts back masters from [`FlatAdamW::snapshot`] and writes them into `params`.
    pub fn restore(&mut self, snapshot: &[Tensor], params: &Params) -> Result<()> {
        for (g, master) in self.groups.iter_mut().zip(snapshot) {
            g.master = master.clone();
        }
        self.write_to(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optimizer::AdamW;
    use candle_core::{Device, Var};

    fn params() -> Params {
        let dev = Device::Cpu;
        Params::new(vec![
            ("dense.weight".into(), Var::new(&[[1.0f32, -2.0], [0.5, 0.25]], &dev).unwrap()),
            ("dense.bias".into(), Var::new(&[0.3f32, -0.1], &dev).unwrap()),
            ("norm.weight".into(), Var::new(&[1.0f32, 1.5], &dev).unwrap()),
        ])
    }

    #[test]
    fn flat_steps_equal_per_parameter_steps() {
        let dev = Device::Cpu;
        let (a, b) = (params(), params());
        let cfg = AdamWConfig::with_weight_decay(0.1);
        let mut per_param = AdamW::new(&a, cfg).unwrap();
        let mut flat = FlatAdamW::new(&b, cfg).unwrap();
        assert_eq!(flat.decay_mask(3), per_param.decay_mask());
        let grads = [
            [vec![0.1f32, -0.2, 0.3, 0.05], vec![0.2, 0.0], vec![-0.3, 0.5]],
            [vec![0.5, 0.1, -0.7, 0.0], vec![-0.1, 0.4], vec![0.05, -0.02]],
        ];
        for (step, gs) in grads.iter().enumerate() {
            let shapes = [vec![2usize, 2], vec![2], vec![2]];
            let tensors: Vec<Option<Tensor>> =
                gs.iter().zip(&shapes).map(|(g, s)| Some(Tensor::from_slice(g, s.as_slice(), &dev).unwrap())).collect();
            let lr = 0.01 / (step + 1) as f64;
            per_param.step(&tensors, lr, 0.5).unwrap();
            let gathered = flat.gather(&tensors).unwrap();
            let norm = flat.squared_norm(&gathered).unwrap().to_scalar::<f32>().unwrap();
            let want: f32 = gs.iter().flatten().map(|x| x * x).sum();
            assert!((norm - want).abs() < 1e-6);
            flat.step(&gathered, lr, 0.5, &b).unwrap();
        }
        for ((name, x), (_, y)) in a.iter().zip(b.iter()) {
            let (x, y) = (
                x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            let worst = x.iter().zip(&y).fold(0f32, |w, (p, q)| w.max((p - q).abs()));
            assert!(worst < 1e-6, "{name}: {x:?} vs {y:?}");
        }
    }

    #[test]
    fn snapshots_restore_masters_and_half_precision_variables() {
        let dev = Device::Cpu;
        let f32_params = params();
        let half = Params::new(
            f32_params
                .iter()
                .map(|(n, v)| (n.to_string(), Var::from_tensor(&v.to_dtype(DType::BF16).unwrap()).unwrap()))
                .collect(),
        );
        let mut flat = FlatAdamW::new(&f32_params, AdamWConfig::with_weight_decay(0.0)).unwrap();
        let before = flat.snapshot();
        let g = |n: usize, s: &[usize]| {
            Some(Tensor::ones(s, DType::BF16, &dev).unwrap().affine(0.1, 0.0).unwrap().narrow(0, 0, n).unwrap())
        };
        let grads = vec![g(2, &[2, 2]), g(2, &[2]), g(2, &[2])];
        let gathered = flat.gather(&grads).unwrap();
        flat.step(&gathered, 0.1, 1.0, &half).unwrap();
        assert_eq!(half.get("dense.bias").dtype(), DType::BF16);
        let moved = half.get("dense.bias").to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
        assert!((moved[0] - 0.2).abs() < 2e-3, "{moved:?}");
        flat.restore(&before, &half).unwrap();
        flat.write_to(&f32_params).unwrap();
        assert_eq!(f32_params.get("dense.bias").to_vec1::<f32>().unwrap(), [0.3, -0.1]);
    }
}
