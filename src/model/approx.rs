//! Branch-free f32 `exp` and `erf` for the fused kernels: written so that the compiler can
//! vectorise loops over them (libm's `expf`/`erff` are scalar calls), accurate to a few
//! units in the last place, the same on every machine (no fused multiply-adds).

/// e^x, relative error below 3e-7 on [-87, 88]; 0 below, +inf above.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a call.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 88.0);
    let n = (clamped * LOG2E + ROUND) - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    // Cephes' polynomial for e^r on [-ln2/2, ln2/2].
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) << 23) as u32);
    let y = er * scale;
    if x < -87.0 {
        0.0
    } else if x > 88.0 {
        f32::INFINITY
    } else {
        y
    }
}

/// erf(x) as a rational function of x on [-4, 4] (±1 beyond, as in f32), with the
/// coefficients of Eigen's `generic_fast_erf_float`: no exponential, odd, so accurate near 0
/// (relative error below 5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -1.609_603_3e-2,
        -2.954_6e-3,
        -7.349_906_3e-4,
        -5.692_506_4e-5,
        -2.101_024e-6,
        2.770_681_4e-8,
        -2.726_142_3e-10,
    ];
    const BETA: [f32; 5] = [-1.426_473_9e-2, -7.373_329e-3, -1.682_827e-3, -2.133_740_6e-4, -1.456_607_2e-5];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ALPHA[6] * x2 + ALPHA[5];
    for a in ALPHA[..5].iter().rev() {
        p = p * x2 + a;
    }
    let mut q = BETA[4] * x2 + BETA[3];
    for b in BETA[..3].iter().rev() {
        q = q * x2 + b;
    }
    x * p / q
}

/// GELU with erf: 0.5 x (1 + erf(x / sqrt 2)).
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// d GELU / dx = Phi(x) + x phi(x).
#[inline(always)]
pub fn gelu_derivative(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    cdf + x * exp(-0.5 * x * x) * INV_SQRT_2PI
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    #[test]
    fn exp_is_accurate() {
        for x in grid(-87.0, 88.0, 200_000) {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_is_accurate() {
        for x in grid(-6.0, 6.0, 100_000) {
            let want = candle_core::cpu::erf::erf_f64(x as f64);
            let got = erf(x) as f64;
            assert!((got - want).abs() < 5e-7 * want.abs().max(1e-3), "erf({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn gelu_derivative_matches_finite_differences() {
        for x in grid(-5.0, 5.0, 1000) {
            let x = x as f64;
            let h = 1e-3;
            let g = |x: f64| 0.5 * x * (1.0 + candle_core::cpu::erf::erf_f64(x / 2f64.sqrt()));
            let want = (g(x + h) - g(x - h)) / (2.0 * h);
            let got = gelu_derivative(x as f32) as f64;
            assert!((got - want).abs() < 1e-5, "gelu'({x}) = {got}, want {want}");
            assert!((gelu(x as f32) as f64 - g(x)).abs() < 1e-6 * (1.0 + x.abs()));
        }
    }
}
