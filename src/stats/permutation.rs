//! Sign-flip permutation test over seeds: under "A and B are exchangeable", each matched pair's
//! difference is as likely to have either sign. Two-sided, statistic |Σ dᵢ|.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Below this many pairs the test is not run: with 2 pairs the smallest p is 0.5.
pub const MIN_SEEDS_FOR_PERMUTATION: usize = 3;
/// Up to this many pairs all 2ⁿ sign vectors are enumerated; above, random ones are drawn.
pub const EXACT_SIGN_FLIP_MAX: usize = 16;
/// Random sign vectors drawn above [`EXACT_SIGN_FLIP_MAX`] pairs.
pub const SIGN_FLIP_DRAWS: usize = 100_000;

/// The outcome of a sign-flip test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignFlipTest {
    /// Two-sided p-value.
    pub p_value: f64,
    /// True when all 2ⁿ sign vectors were enumerated.
    pub exact: bool,
    /// The smallest p-value this many pairs can give (2 / 2ⁿ when exact).
    pub smallest_p: f64,
}

/// The test on paired differences; `None` below [`MIN_SEEDS_FOR_PERMUTATION`] pairs.
/// Exact p = #{s : |Σ sᵢdᵢ| ≥ |Σ dᵢ|} / 2ⁿ; above [`EXACT_SIGN_FLIP_MAX`] pairs the Monte Carlo
/// estimate (1 + hits) / (1 + draws) from a ChaCha8 stream seeded with `seed`.
pub fn sign_flip_test(diffs: &[f64], seed: u64) -> Option<SignFlipTest> {
    let n = diffs.len();
    if n < MIN_SEEDS_FOR_PERMUTATION {
        return None;
    }
    let observed = diffs.iter().sum::<f64>().abs();
    // Sums of the same numbers in another order can differ in the last bits: count those as ties.
    let tolerance = 1e-12 * diffs.iter().map(|d| d.abs()).sum::<f64>();
    let extreme = |signs: &dyn Fn(usize) -> bool| {
        let sum: f64 = diffs.iter().enumerate().map(|(i, d)| if signs(i) { -d } else { *d }).sum();
        sum.abs() >= observed - tolerance
    };
    if n <= EXACT_SIGN_FLIP_MAX {
        let total = 1_u64 << n;
        let hits = (0..total).filter(|mask| extreme(&|i| mask >> i & 1 == 1)).count();
        return Some(SignFlipTest { p_value: hits as f64 / total as f64, exact: true, smallest_p: 2.0 / total as f64 });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hits = 0_usize;
    for _ in 0..SIGN_FLIP_DRAWS {
        let signs: Vec<bool> = (0..n).map(|_| rng.random::<bool>()).collect();
        hits += usize::from(extreme(&|i| signs[i]));
    }
    let draws = SIGN_FLIP_DRAWS as f64;
    Some(SignFlipTest { p_value: (1.0 + hits as f64) / (1.0 + draws), exact: false, smallest_p: 1.0 / (1.0 + draws) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second implementation: recursion over sign choices, counting sums at least as extreme.
    fn brute_force(diffs: &[f64]) -> f64 {
        fn walk(rest: &[f64], sum: f64, observed: f64, hits: &mut u64, total: &mut u64) {
            match rest.split_first() {
                None => {
                    *total += 1;
                    *hits += u64::from(sum.abs() >= observed - 1e-12);
                }
                Some((d, tail)) => {
                    walk(tail, sum + d, observed, hits, total);
                    walk(tail, sum - d, observed, hits, total);
                }
            }
        }
        let (mut hits, mut total) = (0, 0);
        walk(diffs, 0.0, diffs.iter().sum::<f64>().abs(), &mut hits, &mut total);
        hits as f64 / total as f64
    }

    #[test]
    fn same_sign_differences_give_the_smallest_p() {
        // Only the all-plus and all-minus vectors reach |Σd|: p = 2 / 2ⁿ.
        let t = sign_flip_test(&[0.01, 0.02, 0.03], 0).unwrap();
        assert_eq!((t.p_value, t.exact, t.smallest_p), (0.25, true, 0.25));
        assert_eq!(sign_flip_test(&[0.01, 0.02, 0.015, 0.03, 0.02], 0).unwrap().p_value, 2.0 / 32.0);
    }

    #[test]
    fn hand_enumerated_case() {
        // d = (0.03, −0.01, 0.02, 0.005), Σ = 0.045. Keeping +0.03, the other signs reach
        // |Σ| ≥ 0.045 in three ways: as given (0.045), flipping −0.01 (0.065), flipping −0.01 and
        // 0.005 (0.055). With their mirror images: 6 of 16.
        let t = sign_flip_test(&[0.03, -0.01, 0.02, 0.005], 0).unwrap();
        assert!((t.p_value - 0.375).abs() < 1e-15, "{t:?}");
        // Zero differences: every vector ties, p = 1.
        assert_eq!(sign_flip_test(&[0.0, 0.0, 0.0], 0).unwrap().p_value, 1.0);
    }

    #[test]
    fn matches_brute_force_on_many_inputs() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in 3..=10 {
            for _ in 0..20 {
                let diffs: Vec<f64> = (0..n).map(|_| rng.random_range(-0.05..0.08)).collect();
                let got = sign_flip_test(&diffs, 0).unwrap().p_value;
                assert!((got - brute_force(&diffs)).abs() < 1e-15, "{diffs:?}");
            }
        }
    }

    #[test]
    fn too_few_pairs_give_no_p_value() {
        assert!(sign_flip_test(&[], 0).is_none());
        assert!(sign_flip_test(&[0.1, 0.2], 0).is_none());
    }

    #[test]
    fn monte_carlo_above_16_pairs_approximates_the_exact_value() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let diffs: Vec<f64> = (0..18).map(|_| rng.random_range(-0.04..0.05)).collect();
        let t = sign_flip_test(&diffs, 3).unwrap();
        let exact = brute_force(&diffs);
        assert!(!t.exact);
        // Binomial standard error at 1e5 draws is below 0.0016.
        assert!((t.p_value - exact).abs() < 0.006, "monte carlo {} vs exact {exact}", t.p_value);
        assert_eq!(t, sign_flip_test(&diffs, 3).unwrap(), "seeded, so reproducible");
    }
}
