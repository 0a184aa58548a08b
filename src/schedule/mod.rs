//! Schedule: which runs execute, where, and what happens to their results.

mod dry_run;
mod host;
mod sweep;
mod trainer;

pub use dry_run::{dry_scores, DryRunTrainer};
pub use host::{hostname, peak_rss_bytes};
pub use sweep::{decide, execute_run, run_sweep, Action, SweepEvent, SweepOptions, SweepSummary};
pub use trainer::{RunContext, RunOutput, RunProgress, Trainer};
