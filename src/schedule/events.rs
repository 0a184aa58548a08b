//! What a sweep reports while it runs. The library emits these; `progress` renders them.

use super::failure::FailureKind;
use super::trainer::RunProgress;
use crate::store::RunStatus;

#[derive(Debug, Clone, PartialEq)]
pub enum SweepEvent {
    Planned {
        selected: usize,
        to_run: usize,
        done: usize,
        failed: usize,
    },
    /// Where runs go: one label per concurrent slot (`cuda:0`, `cpu`, ...).
    Layout {
        slots: Vec<String>,
        threads_per_run: usize,
    },
    Warning(String),
    RunStarted {
        index: usize,
        id: String,
        device: String,
        attempt: u32,
        micro_batch: usize,
        grad_accum: usize,
    },
    Progress {
        id: String,
        progress: RunProgress,
    },
    RunFinished {
        index: usize,
        id: String,
        status: RunStatus,
        seconds: f64,
        test_f1: Option<f64>,
        error: Option<String>,
        failure_kind: Option<FailureKind>,
    },
    /// A failed attempt is retried (`attempt` is the next one).
    Retrying {
        index: usize,
        id: String,
        attempt: u32,
        kind: FailureKind,
        error: Option<String>,
        micro_batch: usize,
        grad_accum: usize,
    },
    /// Another process holds the run; this sweep waits for it before finishing.
    HeldElsewhere {
        index: usize,
        id: String,
        holder: String,
    },
    /// Another process finished the run.
    FinishedElsewhere {
        index: usize,
        id: String,
        status: RunStatus,
    },
    /// Nothing left to start; these runs are held by other live processes.
    Waiting {
        ids: Vec<String>,
    },
    /// A SIGINT/SIGTERM arrived. First: no new runs start. Second: running runs are stopped.
    Interrupted {
        second: bool,
        running: usize,
    },
    /// A run stopped by the second interrupt; it is left pending.
    RunStopped {
        index: usize,
        id: String,
    },
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSummary {
    /// Runs this sweep brought to a result (done or failed).
    pub executed: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped_done: usize,
    pub skipped_failed: usize,
    /// Runs another process finished while this sweep ran.
    pub elsewhere_done: usize,
    pub elsewhere_failed: usize,
    /// Runs left pending by an interrupt: stopped mid-way, or never started.
    pub interrupted: usize,
    pub not_started: usize,
    /// Runs still held by other processes when this sweep stopped (after an interrupt).
    pub still_held: Vec<String>,
}

impl SweepSummary {
    /// True when every selected run ends done.
    pub fn all_done(&self) -> bool {
        self.failed == 0
            && self.skipped_failed == 0
            && self.elsewhere_failed == 0
            && self.interrupted == 0
            && self.not_started == 0
            && self.still_held.is_empty()
    }
}
