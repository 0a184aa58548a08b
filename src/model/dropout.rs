//! Seeded dropout for training, two ways:
//!
//! - On the host (the fused CPU engine): masks from a ChaCha stream. Each call takes one `u64`
//!   from the master stream and fills its mask in fixed-size chunks, chunk `i` from ChaCha
//!   stream `i` of that sub-seed: the mask does not depend on how many threads fill it.
//! - On the tensor's device (the graph engine): a counter-based generator computed with
//!   tensor operations, so no mask is ever copied to a device. Element `c` of the mask of
//!   dropout site `site` at optimizer step `step` is a hash of `(c, key(seed, step, site))`
//!   modulo the prime 2^31 - 1 ([`counter_hash`]); candle's own random numbers cannot be
//!   seeded on the CPU and CUDA's refuse half precision.

use candle_core::{DType, Device, Result, Tensor};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// The training-time source of dropout masks.
#[derive(Debug, Clone)]
pub struct Dropout {
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Host(Box<ChaCha8Rng>),
    Device(DeviceMasks),
}

impl Dropout {
    /// A host dropout stream for a run seed.
    pub fn new(seed: u64) -> Dropout {
        // A distinct stream from the initialisation draws of the same seed.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        Dropout { source: Source::Host(Box::new(rng)) }
    }

    /// Masks computed on `device` for a run seed, for tensors of up to `capacity` elements
    /// (larger ones grow the counter, one more upload). Copies the counter to the device once.
    pub fn on_device(seed: u64, capacity: usize, device: &Device) -> Result<Dropout> {
        Ok(Dropout { source: Source::Device(DeviceMasks::new(seed, capacity, device)?) })
    }

    /// Starts optimizer step `step` (device masks are keyed by it; host streams ignore it).
    pub fn start_step(&mut self, step: u64) {
        if let Source::Device(d) = &mut self.source {
            (d.step, d.site) = (step, 0);
        }
    }

    /// Zeroes each element of `xs` with probability `p` and scales the rest by 1/(1-p).
    pub fn apply(&mut self, xs: &Tensor, p: f64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(xs.clone());
        }
        match &mut self.source {
            Source::Host(rng) => {
                let mask = keep_mask(rng.next_u64(), xs.elem_count(), p);
                let mask = Tensor::from_vec(mask, xs.shape(), &candle_core::Device::Cpu)?;
                xs.mul(&mask.to_device(xs.device())?.to_dtype(xs.dtype())?)
            }
            Source::Device(d) => xs.mul(&d.next_mask(xs, p)?),
        }
    }

    /// The next mask for `n` elements, drawn exactly as [`Dropout::apply`] draws it; `None`
    /// (and no draw) when `p` is 0.
    pub fn mask(&mut self, n: usize, p: f64) -> Option<Vec<f32>> {
        if p <= 0.0 {
            return None;
        }
        Some(match &mut self.source {
            Source::Host(rng) => keep_mask(rng.next_u64(), n, p),
            Source::Device(d) => {
                let key = d.next_key();
                (0..n as u64).map(|c| keep_value(counter_hash(c, key), p)).collect()
            }
        })
    }
}

/// The prime modulus of the device generator: every intermediate fits an i64.
const PRIME: i64 = (1 << 31) - 1;
/// Multipliers and increments of the three rounds (odd, below the prime).
const ROUNDS: [(i64, i64); 3] = [(1_103_515_245, 12_345), (69_069, 1_013_904_223), (1_664_525, 907_633_385)];

/// The device generator's state: the run's seed, the position in the run, and a counter.
#[derive(Debug, Clone)]
struct DeviceMasks {
    seed: u64,
    step: u64,
    site: u64,
    /// [capacity] i64: 0, 1, 2, ... on the device.
    counter: Tensor,
    /// The scalar [`PRIME`] on the device.
    prime: Tensor,
}

impl DeviceMasks {
    fn new(seed: u64, capacity: usize, device: &Device) -> Result<DeviceMasks> {
        Ok(DeviceMasks { seed, step: 0, site: 0, counter: counter(capacity, device)?, prime: constant(PRIME, device)? })
    }

    fn next_key(&mut self) -> i64 {
        self.site += 1;
        site_key(self.seed, self.step, self.site)
    }

    /// A mask shaped like `xs` in its dtype: 0 with probability `p`, 1/(1-p) otherwise.
    fn next_mask(&mut self, xs: &Tensor, p: f64) -> Result<Tensor> {
        let key = self.next_key();
        let n = xs.elem_count();
        if n > self.counter.elem_count() {
            self.counter = counter(n, xs.device())?;
        }
        let mut x = modulo(&self.counter.narrow(0, 0, n)?.affine(1.0, key as f64)?, &self.prime)?;
        for (a, b) in ROUNDS {
            x = modulo(&x.affine(a as f64, b as f64)?, &self.prime)?;
            x = modulo(&x.mul(&x)?, &self.prime)?;
        }
        let threshold = constant(drop_threshold(p), xs.device())?;
        let keep = x.broadcast_ge(&threshold)?.to_dtype(DType::F32)?.affine(1.0 / (1.0 - p), 0.0)?;
        keep.reshape(xs.shape())?.to_dtype(xs.dtype())
    }
}

/// 0, 1, .., n-1 as i64 on `device` (the one upload of the device generator).
fn counter(n: usize, device: &Device) -> Result<Tensor> {
    if n as i64 >= PRIME {
        candle_core::bail!("dropout over {n} elements exceeds the generator's 2^31 - 1 counters");
    }
    let values: Vec<i64> = (0..n as i64).collect();
    super::transfer::upload(&values, n, device)
}

/// A scalar i64 made on the device itself (a fill, no copy).
fn constant(value: i64, device: &Device) -> Result<Tensor> {
    Tensor::zeros((), DType::I64, device)?.affine(0.0, value as f64)
}

/// `x mod prime` for 0 <= x < 2^63.
fn modulo(x: &Tensor, prime: &Tensor) -> Result<Tensor> {
    let quotient = x.broadcast_div(prime)?;
    x.sub(&quotient.affine(PRIME as f64, 0.0)?)
}

/// Values at or above this are kept: the dropped share of [0, prime) is `p`.
fn drop_threshold(p: f64) -> i64 {
    (p * PRIME as f64).round() as i64
}

/// The key of a dropout site: a splitmix64 mix of the run's seed, the step and the site.
pub fn site_key(seed: u64, step: u64, site: u64) -> i64 {
    let mixed = splitmix64(seed ^ splitmix64(step ^ splitmix64(site ^ 0x9e37_79b9_7f4a_7c15)));
    (mixed % PRIME as u64) as i64
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The device generator's value for counter `c` under `key`, computed on the host: the
/// reference the tensor version is tested against.
pub fn counter_hash(c: u64, key: i64) -> i64 {
    let mut x = (c as i64 + key) % PRIME;
    for (a, b) in ROUNDS {
        x = (x * a + b) % PRIME;
        x = (x * x) % PRIME;
    }
    x
}

fn keep_value(hash: i64, p: f64) -> f32 {
    match hash >= drop_threshold(p) {
        true => (1.0 / (1.0 - p)) as f32,
        false => 0.0,
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
        // The chunk's draws in one go (the same words, in order, as `next_u32` one at a time),
        // then a branch-free select that vectorises.
        let mut draws = [0u32; CHUNK];
        let draws = &mut draws[..chunk.len()];
        rng.fill(draws);
        crate::model::kernels::vectorised(
            #[inline(always)]
            || {
                for (m, &d) in chunk.iter_mut().zip(draws.iter()) {
                    *m = if d >= threshold { scale } else { 0.0 };
                }
            },
        )
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

    /// The chunked draws are the words `next_u32` gives one at a time, stream by stream (the
    /// masks of earlier runs stay as they were).
    #[test]
    fn masks_are_the_streams_words_in_order() {
        let (seed, p) = (11, 0.1);
        let n = 2 * CHUNK + 77;
        let threshold = (p * 4_294_967_296.0) as u32;
        let scale = (1.0 / (1.0 - p)) as f32;
        let want: Vec<f32> = (0..n.div_ceil(CHUNK))
            .flat_map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(i as u64);
                (0..CHUNK.min(n - i * CHUNK)).map(move |_| if rng.next_u32() >= threshold { scale } else { 0.0 })
            })
            .collect();
        assert_eq!(keep_mask(seed, n, p), want);
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

    #[test]
    fn device_masks_equal_the_host_reference_and_make_no_copies() {
        let xs = Tensor::ones((7, 301), DType::F32, &Device::Cpu).unwrap();
        let mut d = Dropout::on_device(9, 100, &Device::Cpu).unwrap();
        d.start_step(3);
        let before = crate::model::transfer::counts();
        let got = d.apply(&xs, 0.25).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // The counter grew once (2107 > 100 elements); the next mask of the size copies nothing.
        assert_eq!(crate::model::transfer::counts().since(before).to_device, 1);
        let key = site_key(9, 3, 1);
        let want: Vec<f32> = (0..got.len() as u64).map(|c| keep_value(counter_hash(c, key), 0.25)).collect();
        assert_eq!(got, want);
        let before = crate::model::transfer::counts();
        let second = d.apply(&xs, 0.25).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(crate::model::transfer::counts().since(before), Default::default());
        assert_ne!(got, second, "each site draws its own mask");
        let mut again = Dropout::on_device(9, 4096, &Device::Cpu).unwrap();
        again.start_step(3);
        let mask = again.mask(got.len(), 0.25).unwrap();
        assert_eq!(mask, want, "host and device draw the same mask for the same seed, step and site");
        let half = Tensor::ones((7, 301), DType::BF16, &Device::Cpu).unwrap();
        let mut d16 = Dropout::on_device(9, 4096, &Device::Cpu).unwrap();
        d16.start_step(3);
        let masked = d16.apply(&half, 0.25).unwrap();
        assert_eq!(masked.dtype(), DType::BF16);
    }

    #[test]
    fn device_masks_keep_one_minus_p_without_neighbour_correlation() {
        for p in [0.1, 0.5] {
            let key = site_key(1, 1, 1);
            let keep: Vec<bool> = (0..200_000u64).map(|c| counter_hash(c, key) >= drop_threshold(p)).collect();
            let kept = keep.iter().filter(|&&k| k).count() as f64 / keep.len() as f64;
            assert!((kept - (1.0 - p)).abs() < 0.005, "p {p}: kept {kept}");
            // Both neighbours kept as often as independence predicts.
            let pairs = keep.windows(2).filter(|w| w[0] && w[1]).count() as f64 / (keep.len() - 1) as f64;
            assert!((pairs - kept * kept).abs() < 0.005, "p {p}: pairs {pairs} vs {}", kept * kept);
        }
        assert_ne!(site_key(1, 1, 1), site_key(1, 2, 1));
        assert_ne!(site_key(1, 1, 1), site_key(1, 1, 2));
        assert_ne!(site_key(1, 1, 1), site_key(2, 1, 1));
    }
}
