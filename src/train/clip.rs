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

/// The L2 norm of gradients in host memory.
pub fn global_norm_host(grads: &[Vec<f32>]) -> f64 {
    grads.iter().map(|g| host_squared_sum(g)).sum::<f64>().sqrt()
}

// Chunk sums are collected in order and added sequentially: a parallel reduction tree
// would make the norm, and so the run, depend on thread scheduling. Within a chunk, element i
// goes into partial sum i % 8 and the eight are added in order: the same on every machine,
// and vectorised (one running sum would wait on every add: 110 M of them for BERT-base).
fn host_squared_sum(xs: &[f32]) -> f64 {
    const LANES: usize = 8;
    let chunk_sum = |c: &[f32]| {
        crate::model::kernels::vectorised(
            #[inline(always)]
            || {
                let mut lanes = [0.0f64; LANES];
                let mut whole = c.chunks_exact(LANES);
                for x in &mut whole {
                    for l in 0..LANES {
                        lanes[l] += (x[l] as f64) * (x[l] as f64);
                    }
                }
                for (lane, &x) in lanes.iter_mut().zip(whole.remainder()) {
                    *lane += (x as f64) * (x as f64);
                }
                lanes.iter().sum::<f64>()
            },
        )
    };
    let chunks: Vec<f64> = xs.par_chunks(1 << 15).map(chunk_sum).collect();
    chunks.iter().sum::<f64>()
}

fn squared_sum(g: &Tensor) -> Result<f64> {
    if let Some(sum) = crate::model::host::with_host_slice(g, host_squared_sum)? {
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
        assert_eq!(global_norm_host(&[vec![3.0, 0.0], vec![0.0, 4.0]]), 5.0);
        let strided = b.t().unwrap();
        assert!((global_norm(&[&strided]).unwrap() - 4.0).abs() < 1e-12);
    }

    /// The eight-lane sum against one running f64 sum, over lengths with and without a
    /// remainder and across chunks.
    #[test]
    fn lane_sums_equal_the_running_sum() {
        for n in [0, 1, 7, 8, 9, 1000, (1 << 15) + 13, 3 * (1 << 15)] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2003) as f32 / 1001.0 - 1.0).collect();
            let want: f64 = xs.iter().map(|&x| (x as f64) * (x as f64)).sum();
            let got = host_squared_sum(&xs);
            assert!((got - want).abs() <= 1e-12 * want.max(1.0), "n {n}: {got} vs {want}");
        }
    }
}
