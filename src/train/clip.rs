//! Global gradient-norm clipping as torch's `clip_grad_norm_` does it: one L2 norm over all
//! gradients, then every gradient scaled by `min(1, max_norm / (norm + 1e-6))`.
//!
//! The scale is returned rather than applied: the optimizer folds it into its update and so
//! saves a pass over every gradient.

use candle_core::{Result, Tensor};
use rayon::prelude::*;

/// The factor gradients are multiplied by; 1 when `max_norm` is not positive (no clipping).
pub fn clip_coefficient(total_norm: f64, max_norm: f64) -> f64 {
    if max_norm <= 0.0 {
        return 1.0;
    }
    (max_norm / (total_norm + 1e-6)).min(1.0)
}

/// The L2 norm of all gradients together.
pub fn global_norm(grads: &[&Tensor]) -> Result<f64> {
    let mut sum = 0.0;
    for g in grads {
        sum += squared_sum(g)?;
    }
    Ok(sum.sqrt())
}

fn squared_sum(g: &Tensor) -> Result<f64> {
    // Chunk sums are collected in order and added sequentially: a parallel reduction tree
    // would make the norm, and so the run, depend on thread scheduling.
    if let Some(sum) = crate::model::host::with_host_slice(g, |xs| {
        let chunks: Vec<f64> =
            xs.par_chunks(1 << 15).map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>()).collect();
        chunks.iter().sum::<f64>()
    })? {
        return Ok(sum);
    }
    g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn coefficient_clips_only_above_the_limit() {
        assert_eq!(clip_coefficient(0.5, 1.0), 1.0);
        assert!((clip_coefficient(4.0, 1.0) - 1.0 / (4.0 + 1e-6)).abs() < 1e-15);
        assert_eq!(clip_coefficient(100.0, 0.0), 1.0);
    }

    #[test]
    fn norm_spans_all_tensors() {
        let a = Tensor::new(&[3.0f32, 0.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[0.0f32], [4.0]], &Device::Cpu).unwrap();
        assert!((global_norm(&[&a, &b]).unwrap() - 5.0).abs() < 1e-12);
        let strided = b.t().unwrap();
        assert!((global_norm(&[&strided]).unwrap() - 4.0).abs() < 1e-12);
    }
}
