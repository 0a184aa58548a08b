//! Statistics for the report, pure and without I/O: summaries over seeds with Student's t
//! intervals, a paired bootstrap over test sentences, a sign-flip permutation test over seeds,
//! and the entity counts per sentence the bootstrap resamples (entities from `crate::metrics`).

mod bootstrap;
mod counts;
mod describe;
mod permutation;
mod student_t;

pub use bootstrap::{
    paired_bootstrap, percentile, BootstrapConfig, BootstrapResult, Counts, PairedRun, BOOTSTRAP_SEED,
};
pub use counts::sentence_counts;
pub use describe::{mean, sample_std, summarize, t_interval, Interval, SeedSummary, MIN_SEEDS_FOR_CI};
pub use permutation::{sign_flip_test, SignFlipTest, EXACT_SIGN_FLIP_MAX, MIN_SEEDS_FOR_PERMUTATION, SIGN_FLIP_DRAWS};
pub use student_t::{regularized_incomplete_beta, t_cdf, t_quantile};
