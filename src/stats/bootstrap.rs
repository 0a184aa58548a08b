//! Paired bootstrap over test sentences: resample sentence indices with replacement, rescore
//! both systems of every matched pair on the same resample, and take the percentile interval of
//! the mean F1 difference.

use std::ops::Add;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::describe::Interval;

/// The seed of every report bootstrap, so that a report is reproducible from its store.
pub const BOOTSTRAP_SEED: u64 = 67;

/// Entity counts of one system on one sentence (or summed over sentences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Predicted entities with the gold type and boundaries.
    pub correct: u64,
    pub predicted: u64,
    pub gold: u64,
}

impl Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts { correct: self.correct + o.correct, predicted: self.predicted + o.predicted, gold: self.gold + o.gold }
    }
}

impl Counts {
    /// Micro F1 as seqeval computes it, 0 when it is undefined (zero_division = 0).
    pub fn f1(&self) -> f64 {
        if self.correct == 0 {
            return 0.0;
        }
        let precision = self.correct as f64 / self.predicted as f64;
        let recall = self.correct as f64 / self.gold as f64;
        2.0 * precision * recall / (precision + recall)
    }
}

/// Two systems' per-sentence counts on the same test sentences (one matched pair of runs).
#[derive(Debug, Clone, PartialEq)]
pub struct PairedRun {
    /// Pairs with the same `test_set` were scored on the same sentences: each replicate resamples
    /// them with the same indices. Pairs on different test sets are resampled independently.
    pub test_set: usize,
    pub a: Vec<Counts>,
    pub b: Vec<Counts>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapConfig {
    pub replicates: usize,
    pub seed: u64,
    /// Coverage of the percentile interval (0.95).
    pub level: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig { replicates: 1000, seed: BOOTSTRAP_SEED, level: 0.95 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapResult {
    /// Mean over pairs of F1(A) − F1(B) on the full test sets.
    pub estimate: f64,
    pub interval: Interval,
    pub replicates: usize,
}

fn f1_on(counts: &[Counts], indices: &[usize]) -> f64 {
    indices.iter().map(|&i| counts[i]).fold(Counts::default(), Add::add).f1()
}

fn mean_difference(pairs: &[PairedRun], draws: &[Vec<usize>], slot: &[usize]) -> f64 {
    let total: f64 = pairs.iter().zip(slot).map(|(p, &g)| f1_on(&p.a, &draws[g]) - f1_on(&p.b, &draws[g])).sum();
    total / pairs.len() as f64
}

/// Test sets in order of first appearance, their sizes, and each pair's position among them.
/// `None` when the systems of a pair, or the pairs of one test set, differ in length.
fn test_sets(pairs: &[PairedRun]) -> Option<(Vec<usize>, Vec<usize>)> {
    let mut ids: Vec<usize> = Vec::new();
    let mut sizes = Vec::new();
    let mut slot = Vec::with_capacity(pairs.len());
    for p in pairs {
        if p.a.len() != p.b.len() || p.a.is_empty() {
            return None;
        }
        match ids.iter().position(|&id| id == p.test_set) {
            Some(g) if sizes[g] != p.a.len() => return None,
            Some(g) => slot.push(g),
            None => {
                ids.push(p.test_set);
                sizes.push(p.a.len());
                slot.push(ids.len() - 1);
            }
        }
    }
    Some((sizes, slot))
}

/// The paired bootstrap. Each replicate draws, for each test set in order of first appearance,
/// as many indices as it has sentences (`random_range(0..n)` on one ChaCha8 stream seeded with
/// `config.seed`), then computes the mean over pairs of F1(A) − F1(B) on the drawn sentences.
/// The interval is the percentile interval of the replicates (linear interpolation, numpy's
/// default). `None` without pairs or with mismatched lengths.
pub fn paired_bootstrap(pairs: &[PairedRun], config: &BootstrapConfig) -> Option<BootstrapResult> {
    if pairs.is_empty() || config.replicates == 0 {
        return None;
    }
    let (sizes, slot) = test_sets(pairs)?;
    let full: Vec<Vec<usize>> = sizes.iter().map(|&n| (0..n).collect()).collect();
    let estimate = mean_difference(pairs, &full, &slot);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut replicates = Vec::with_capacity(config.replicates);
    for _ in 0..config.replicates {
        let draws: Vec<Vec<usize>> = sizes.iter().map(|&n| (0..n).map(|_| rng.random_range(0..n)).collect()).collect();
        replicates.push(mean_difference(pairs, &draws, &slot));
    }
    replicates.sort_by(f64::total_cmp);
    let alpha = 1.0 - config.level;
    let interval =
        Interval { low: percentile(&replicates, alpha / 2.0), high: percentile(&replicates, 1.0 - alpha / 2.0) };
    Some(BootstrapResult { estimate, interval, replicates: config.replicates })
}

/// The q-quantile of sorted values with linear interpolation between order statistics
/// (numpy's default "linear" method): position (n − 1)·q.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(correct: u64, predicted: u64, gold: u64) -> Counts {
        Counts { correct, predicted, gold }
    }

    #[test]
    fn f1_is_seqeval_micro_f1() {
        // P = 3/4, R = 3/5: F1 = 2·0.75·0.6 / 1.35 = 2/3.
        assert!((c(3, 4, 5).f1() - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(c(0, 0, 0).f1(), 0.0);
        assert_eq!(c(0, 3, 2).f1(), 0.0);
        assert_eq!(c(2, 2, 2).f1(), 1.0);
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        // np.percentile([1, 2, 3, 4], 50) = 2.5; np.quantile(range(101), 0.025) = 2.5.
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        let hundred: Vec<f64> = (0..=100).map(f64::from).collect();
        assert!((percentile(&hundred, 0.025) - 2.5).abs() < 1e-12);
        assert!((percentile(&hundred, 0.975) - 97.5).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.3), 7.0);
        // np.quantile([0.1, 0.4, 0.5], [0.025, 0.975]) = [0.115, 0.495].
        assert!((percentile(&[0.1, 0.4, 0.5], 0.025) - 0.115).abs() < 1e-12);
        assert!((percentile(&[0.1, 0.4, 0.5], 0.975) - 0.495).abs() < 1e-12);
    }

    #[test]
    fn identical_and_dominating_systems_give_degenerate_intervals() {
        let same = vec![c(1, 1, 2), c(0, 1, 1), c(2, 2, 2)];
        let pair = PairedRun { test_set: 0, a: same.clone(), b: same };
        let r = paired_bootstrap(&[pair], &BootstrapConfig::default()).unwrap();
        assert_eq!((r.estimate, r.interval.low, r.interval.high), (0.0, 0.0, 0.0));
        // A perfect on every sentence, B never correct: every resample gives exactly 1.
        let pair = PairedRun { test_set: 0, a: vec![c(1, 1, 1), c(2, 2, 2)], b: vec![c(0, 1, 1), c(0, 0, 2)] };
        let r = paired_bootstrap(&[pair], &BootstrapConfig::default()).unwrap();
        assert_eq!((r.estimate, r.interval.low, r.interval.high), (1.0, 1.0, 1.0));
    }

    /// A second implementation of one replicate loop for a single pair: explicit index lists and
    /// F1 from precision and recall sums.
    #[test]
    fn matches_a_direct_recomputation() {
        let a = vec![c(2, 2, 3), c(0, 1, 1), c(1, 1, 1), c(3, 4, 3), c(0, 0, 1)];
        let b = vec![c(1, 2, 3), c(1, 1, 1), c(0, 1, 1), c(3, 3, 3), c(0, 1, 1)];
        let config = BootstrapConfig { replicates: 200, seed: 5, level: 0.9 };
        let got = paired_bootstrap(&[PairedRun { test_set: 9, a: a.clone(), b: b.clone() }], &config).unwrap();
        let micro = |xs: &[Counts], idx: &[usize]| {
            let (mut tp, mut np, mut ng) = (0.0, 0.0, 0.0);
            for &i in idx {
                tp += xs[i].correct as f64;
                np += xs[i].predicted as f64;
                ng += xs[i].gold as f64;
            }
            if tp == 0.0 {
                0.0
            } else {
                let (p, r) = (tp / np, tp / ng);
                2.0 * p * r / (p + r)
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut diffs = Vec::new();
        for _ in 0..200 {
            let idx: Vec<usize> = (0..5).map(|_| rng.random_range(0..5)).collect();
            diffs.push(micro(&a, &idx) - micro(&b, &idx));
        }
        diffs.sort_by(|x, y| x.partial_cmp(y).unwrap());
        // Position 199 · 0.05 = 9.95 and 199 · 0.95 = 189.05.
        let low = diffs[9] + 0.95 * (diffs[10] - diffs[9]);
        let high = diffs[189] + 0.05 * (diffs[190] - diffs[189]);
        assert!((got.interval.low - low).abs() < 1e-12 && (got.interval.high - high).abs() < 1e-12, "{got:?}");
        let all: Vec<usize> = (0..5).collect();
        assert!((got.estimate - (micro(&a, &all) - micro(&b, &all))).abs() < 1e-15);
        assert!(got.interval.low < got.interval.high);
    }

    #[test]
    fn pairs_on_one_test_set_share_draws() {
        // Two copies of the same pair on one test set average to the single pair's replicates;
        // on two test sets they are resampled independently, which narrows the interval.
        let a = vec![c(1, 1, 1), c(0, 1, 1), c(1, 2, 1), c(2, 2, 2)];
        let b = vec![c(0, 1, 1), c(1, 1, 1), c(0, 1, 1), c(1, 2, 2)];
        let one = PairedRun { test_set: 0, a, b };
        let config = BootstrapConfig::default();
        let single = paired_bootstrap(std::slice::from_ref(&one), &config).unwrap();
        let shared = paired_bootstrap(&[one.clone(), one.clone()], &config).unwrap();
        assert!((single.interval.low - shared.interval.low).abs() < 1e-15);
        assert!((single.interval.high - shared.interval.high).abs() < 1e-15);
        let apart = paired_bootstrap(&[one.clone(), PairedRun { test_set: 1, ..one.clone() }], &config).unwrap();
        assert!(apart.interval.high - apart.interval.low < shared.interval.high - shared.interval.low);
    }

    #[test]
    fn mismatched_inputs_give_none() {
        let config = BootstrapConfig::default();
        assert!(paired_bootstrap(&[], &config).is_none());
        let bad = PairedRun { test_set: 0, a: vec![c(1, 1, 1)], b: vec![] };
        assert!(paired_bootstrap(&[bad], &config).is_none());
        let p1 = PairedRun { test_set: 0, a: vec![c(1, 1, 1)], b: vec![c(1, 1, 1)] };
        let p2 = PairedRun { test_set: 0, a: vec![c(1, 1, 1); 2], b: vec![c(1, 1, 1); 2] };
        assert!(paired_bootstrap(&[p1, p2], &config).is_none());
    }
}
