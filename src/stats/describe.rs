//! Summaries of one metric over seeds: mean, sample standard deviation and a Student's t
//! confidence interval for the mean.

use super::student_t::t_quantile;

/// The fewest seeds a confidence interval (and a standard deviation) needs.
pub const MIN_SEEDS_FOR_CI: usize = 2;

/// A closed interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// One metric over the seeds of a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedSummary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); `None` below [`MIN_SEEDS_FOR_CI`] seeds.
    pub std: Option<f64>,
    /// Two-sided 95% interval for the mean; `None` below [`MIN_SEEDS_FOR_CI`] seeds.
    pub ci95: Option<Interval>,
}

pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sample standard deviation (divisor n − 1), two-pass; `None` for fewer than 2 values.
pub fn sample_std(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    let squares: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((squares / (xs.len() - 1) as f64).sqrt())
}

/// mean ± t(1 − α/2, n − 1) · s / √n, with `level` = 1 − α (0.95 for a 95% interval).
pub fn t_interval(xs: &[f64], level: f64) -> Option<Interval> {
    let s = sample_std(xs)?;
    let m = mean(xs)?;
    let n = xs.len() as f64;
    let half = t_quantile(0.5 + level / 2.0, n - 1.0) * s / n.sqrt();
    Some(Interval { low: m - half, high: m + half })
}

/// Mean, sample std and 95% interval; `None` for no values.
pub fn summarize(xs: &[f64]) -> Option<SeedSummary> {
    Some(SeedSummary { n: xs.len(), mean: mean(xs)?, std: sample_std(xs), ci95: t_interval(xs, 0.95) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_match_hand_computation() {
        // Mean 5, squared deviations 9+1+1+1+0+0+4+16 = 32, s = √(32/7).
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), Some(5.0));
        assert!((sample_std(&xs).unwrap() - (32.0_f64 / 7.0).sqrt()).abs() < 1e-15);
        assert_eq!(mean(&[]), None);
        assert_eq!(sample_std(&[0.7]), None);
        assert_eq!(sample_std(&[0.7, 0.7]), Some(0.0));
    }

    #[test]
    fn interval_uses_student_t_with_n_minus_1_df() {
        // F1 over 3 seeds: mean 0.8, s = 0.01 (deviations −0.01, 0, 0.01), t(0.975, 2) = 4.302653.
        let xs = [0.79, 0.80, 0.81];
        let ci = t_interval(&xs, 0.95).unwrap();
        let t = 0.95 / 0.048_75_f64.sqrt(); // closed form for df = 2
        let half = t * 0.01 / 3.0_f64.sqrt();
        assert!((ci.low - (0.8 - half)).abs() < 1e-12 && (ci.high - (0.8 + half)).abs() < 1e-12, "{ci:?}");
        // 5 seeds: mean 0.62, s = √(0.001/4) ≈ 0.0158, t(0.975, 4) = 2.776445.
        let xs = [0.6, 0.61, 0.62, 0.63, 0.64];
        let ci = t_interval(&xs, 0.95).unwrap();
        let half = 2.776_445_105_197_799 * (0.001_f64 / 4.0).sqrt() / 5.0_f64.sqrt();
        assert!((ci.high - ci.low - 2.0 * half).abs() < 1e-12, "{ci:?}");
        assert!(((ci.low + ci.high) / 2.0 - 0.62).abs() < 1e-12);
    }

    #[test]
    fn one_seed_has_a_mean_but_no_spread() {
        let s = summarize(&[0.9]).unwrap();
        assert_eq!((s.n, s.mean, s.std, s.ci95), (1, 0.9, None, None));
        assert!(summarize(&[]).is_none());
        let s = summarize(&[0.5, 0.7]).unwrap();
        assert_eq!(s.n, 2);
        // t(0.975, 1) = 12.7062; s = √0.02; half = 12.7062 · √0.02 / √2 = 1.27062.
        let ci = s.ci95.unwrap();
        assert!((ci.high - 0.6 - 1.270_620_473_617_470_7).abs() < 1e-9, "{ci:?}");
    }
}
