//! Seeded dropout for training: masks are drawn on the host from a ChaCha stream, so a run is
//! reproducible (candle's CPU random numbers cannot be seeded).
//!
//! Each call takes one `u64` from the master stream and fills its mask in fixed-size chunks,
//! chunk `i` from ChaCha stream `i` of that sub-seed: the mask does not depend on how many
//! threads fill it.

use candle_core::{Result, Tensor};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// The training-time source of dropout masks.
#[derive(Debug, Clone)]
pub struct Dropout {
    rng: ChaCha8Rng,
}

impl Dropout {
    /// A dropout stream for a run seed.
    pub fn new(seed: u64) -> Dropout {
        // A distinct stream from the initialisation draws of the same seed.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        Dropout { rng }
    }

    /// Zeroes each element of `xs` with probability `p` and scales the rest by 1/(1-p).
    pub fn apply(&mut self, xs: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(xs.clone());
        }
        let mask = keep_mask(self.rng.next_u64(), xs.elem_count(), p);
        let mask = Tensor::from_vec(mask, xs.shape(), &candle_core::Device::Cpu)?;
        xs.mul(&mask.to_device(xs.device())?)
    }
}

impl Dropout {
    /// The next mask for `n` elements, drawn exactly as [`Dropout::apply`] draws it; `None`
    /// (and no draw) when `p` is 0.
    pub fn mask(&mut self, n: usize, p: f64) -> Option<Vec<f32>> {
        (p > 0.0).then(|| keep_mask(self.rng.next_u64(), n, p))
    }
}

/// `n` values, each 0 with probability `p` and 1/(1-p) otherwise, from `seed`.
pub fn keep_mask(seed: u64, n: usize, p: f64) -> Vec<f32> {
    // An element is dropped when its u32 draw falls below p * 2^32.
    let threshold = (p * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut mask = vec![0f32; n];
    mask.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(i as u64);
        for m in chunk.iter_mut() {
            *m = if rng.next_u32() >= threshold { scale } else { 0.0 };
        }
    });
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_about_one_minus_p_scaled() {
        let mask = keep_mask(3, 100_000, 0.1);
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / mask.len() as f64;
        assert!((kept - 0.9).abs() < 0.01, "{kept}");
        assert!(mask.iter().all(|&m| m == 0.0 || (m - 1.0 / 0.9).abs() < 1e-6));
    }

    #[test]
    fn mask_is_a_function_of_the_seed() {
        assert_eq!(keep_mask(5, 50_000, 0.3), keep_mask(5, 50_000, 0.3));
        assert_ne!(keep_mask(5, 50_000, 0.3), keep_mask(6, 50_000, 0.3));
    }

    #[test]
    fn successive_calls_draw_new_masks() {
        let xs = Tensor::ones(1000, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let mut d = Dropout::new(1);
        let a = d.apply(&xs, 0.5).unwrap().to_vec1::<f32>().unwrap();
        let b = d.apply(&xs, 0.5).unwrap().to_vec1::<f32>().unwrap();
        assert_ne!(a, b);
        let mut again = Dropout::new(1);
        assert_eq!(again.apply(&xs, 0.5).unwrap().to_vec1::<f32>().unwrap(), a);
    }
}
