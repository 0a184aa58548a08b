//! The worker side: one process runs one attempt of one run. It claims the run's lock, checks
//! that the result is still what the scheduler saw (else another process finished it), keeps
//! the lock's heartbeat going while the trainer runs, and reports to the scheduler.

use std::time::{Duration, Instant};

use super::devices::{device_note, trainer_device, CudaAvailability};
use super::events::SweepEvent;
use super::host::slurm_facts;
use super::lock::{claim, Claim, LockConfig, LockError};
use super::protocol::WorkerReport;
use super::sweep::{execute_attempt, result_fingerprint, Attempt};
use super::trainer::{micro_batch, RunProgress, Trainer};
use crate::plan::{expand, RunSpec};
use crate::spec::Spec;
use crate::store::{Store, StoreError};

/// Progress reports are sent at most this often, besides epoch ends and new validation scores.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What the scheduler asked a worker to do.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerTask {
    pub index: usize,
    pub id: String,
    /// The scheduler's name for the device (`cpu`, `cuda:2`).
    pub device: String,
    pub attempt: u32,
    pub grad_accum: usize,
    /// Fingerprint of the result the scheduler saw (`sweep::result_fingerprint`).
    pub expect: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("run {index} of the plan is not {id} (the spec changed since the sweep started)")]
    UnknownRun { index: usize, id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// Runs `task` if this process can claim it. `on_lost` is called if the lock is taken over
/// mid-run (the caller should then exit without a result).
pub fn run_worker(
    spec: &Spec,
    task: &WorkerTask,
    trainer: &dyn Trainer,
    lock_config: &LockConfig,
    on_lost: Box<dyn Fn() + Send>,
    report: &mut dyn FnMut(&WorkerReport),
) -> Result<(), WorkerError> {
    let plan = expand(spec);
    let run = plan.runs.get(task.index).filter(|r| r.id == task.id);
    let run = run.ok_or_else(|| WorkerError::UnknownRun { index: task.index, id: task.id.clone() })?;
    let store = Store::new(&spec.experiment.output_dir);
    let mut lock = match claim(&store.lock_path(&run.id), &run.id, lock_config)? {
        Claim::Claimed(lock) => lock,
        Claim::Held(holder) => {
            report(&WorkerReport::Held { holder });
            return Ok(());
        }
    };
    if result_fingerprint(&store, &run.id) != task.expect {
        report(&WorkerReport::FinishedElsewhere);
        return Ok(lock.release()?);
    }
    lock.start_heartbeat(lock_config.heartbeat_every, on_lost);
    let cvd = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
    store.log(&run.id, &device_note(&task.device, &cvd, CudaAvailability::detect()))?;
    report(&WorkerReport::Running { micro_batch: micro_batch(run.typed.train.batch_size, task.grad_accum) });
    execute(spec, run, &store, trainer, &attempt_of(task), report)?;
    Ok(lock.release()?)
}

fn attempt_of(task: &WorkerTask) -> Attempt {
    let mut details = serde_json::Map::new();
    let cvd = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
    details.insert("cuda_visible_devices".into(), cvd.into());
    details.insert("trainer_device".into(), trainer_device(&task.device).into());
    details.insert("worker_pid".into(), std::process::id().into());
    if let Some(slurm) = slurm_facts(|k| std::env::var(k).ok()) {
        details.insert("slurm".into(), slurm.into());
    }
    if let Some(threads) = std::env::var("RAYON_NUM_THREADS").ok().and_then(|t| t.parse::<u64>().ok()) {
        details.insert("threads".into(), threads.into());
    }
    Attempt {
        device: task.device.clone(),
        trainer_device: trainer_device(&task.device).into(),
        attempt: task.attempt,
        grad_accum: task.grad_accum,
        details,
    }
}

/// Executes the attempt, turning its events into reports.
fn execute(
    spec: &Spec,
    run: &RunSpec,
    store: &Store,
    trainer: &dyn Trainer,
    attempt: &Attempt,
    report: &mut dyn FnMut(&WorkerReport),
) -> Result<(), StoreError> {
    let mut last: Option<(Instant, RunProgress)> = None;
    execute_attempt(spec, run, store, trainer, attempt, &mut |event| match event {
        SweepEvent::Progress { progress, .. } if worth_sending(last.as_ref(), Instant::now(), &progress) => {
            report(&WorkerReport::Progress(progress.clone()));
            last = Some((Instant::now(), progress));
        }
        SweepEvent::RunFinished { status, seconds, test_f1, error, failure_kind, .. } => {
            report(&WorkerReport::Finished { status, failure_kind, error, test_f1, seconds })
        }
        _ => {}
    })?;
    Ok(())
}

/// Throttles progress: an epoch end, a new validation score, or enough time since the last one.
fn worth_sending(last: Option<&(Instant, RunProgress)>, now: Instant, p: &RunProgress) -> bool {
    match last {
        None => true,
        Some((at, prev)) => {
            p.step == p.steps || p.epoch != prev.epoch || p.val_f1 != prev.val_f1 || now - *at >= PROGRESS_EVERY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(epoch: usize, step: usize, val_f1: Option<f64>) -> RunProgress {
        RunProgress { epoch, epochs: 3, step, steps: 100, loss: 0.5, val_f1 }
    }

    #[test]
    fn progress_is_throttled_but_keeps_what_matters() {
        let t0 = Instant::now();
        let last = (t0, progress(1, 10, None));
        assert!(worth_sending(None, t0, &progress(1, 1, None)));
        assert!(!worth_sending(Some(&last), t0 + Duration::from_millis(10), &progress(1, 11, None)));
        assert!(worth_sending(Some(&last), t0 + PROGRESS_EVERY, &progress(1, 11, None)));
        assert!(worth_sending(Some(&last), t0, &progress(1, 100, None)), "epoch end");
        assert!(worth_sending(Some(&last), t0, &progress(2, 1, None)), "new epoch");
        assert!(worth_sending(Some(&last), t0, &progress(1, 11, Some(0.8))), "new validation score");
    }
}
