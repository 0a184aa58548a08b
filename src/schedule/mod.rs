//! Schedule: which runs execute, where, in what order, and what happens to their results.
//!
//! `run_schedule` (the `nergrid run` scheduler) starts one `nergrid worker` process per run
//! attempt on a pool of device slots; `run_worker` is what such a process does. `execute_run`
//! runs one attempt in the calling process.

mod child;
mod cost;
mod devices;
mod dry_run;
mod events;
mod failure;
mod host;
mod lock;
mod protocol;
mod retry;
mod scheduler;
mod signals;
mod sweep;
#[cfg(any(test, feature = "test-trainer"))]
mod test_trainer;
mod trainer;
mod worker;

pub use child::{TrainerChoice, WorkerLaunch};
pub use devices::{cuda_worker_exe, layout, DeviceEnv, DeviceLayout, DeviceSlot};
pub use dry_run::{dry_scores, DryRunTrainer};
pub use events::{SweepEvent, SweepSummary};
pub use failure::{failure_kind, FailureKind, RunFailure};
pub use host::{hostname, peak_rss_bytes};
pub use lock::LockConfig;
pub use protocol::{WorkerReport, EXIT_LOST_LOCK, REPORT_FD_ENV};
pub use scheduler::{run_schedule, ScheduleError, ScheduleOptions};
pub use sweep::{decide, execute_run, Action};
#[cfg(any(test, feature = "test-trainer"))]
pub use test_trainer::TestTrainer;
pub use trainer::{micro_batch, RunContext, RunOutput, RunProgress, Trainer};
pub use worker::{run_worker, WorkerError, WorkerTask};
