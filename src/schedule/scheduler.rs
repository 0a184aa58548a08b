//! The sweep scheduler: runs the selected runs of a plan as worker processes on a pool of
//! device slots, longest-estimated first, retrying what the retry rule allows, and records a
//! failed result for a worker that died without one. Each worker claims its run (see `lock`),
//! so several schedulers on one results directory run every run once: a run another process
//! holds is waited for before the sweep ends.
//!
//! Interrupts: the first SIGINT/SIGTERM stops starting runs and lets running ones finish; the
//! second kills them, and their runs are left pending (no result), so `run` again redoes them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use super::child::{signal_worker, spawn_worker, ChildMessage, TrainerChoice, WorkerLaunch, WorkerOrder};
use super::cost::CostModel;
use super::devices::{trainer_device, DeviceLayout, DeviceSlot};
use super::events::{SweepEvent, SweepSummary};
use super::failure::{classify_end, FailureKind, WorkerEnd};
use super::lock::{claim, lock_state, Claim, LockConfig, LockError, LockState};
use super::protocol::{WorkerReport, EXIT_LOST_LOCK};
use super::retry::{decide_retry, FailedAttempt, RetryDecision};
use super::signals::SignalWatch;
use super::sweep::{decide, failed_result, finished_event, result_failure_kind, result_fingerprint, Action, Attempt};
use super::trainer::micro_batch;
use crate::plan::RunSpec;
use crate::spec::Spec;
use crate::store::{now_rfc3339, RunResult, RunState, RunStatus, Store, StoreError};

/// How often the scheduler wakes without news (timeouts, interrupts).
const TICK: Duration = Duration::from_millis(50);
/// How often runs held by other processes are looked at.
const HELD_POLL: Duration = Duration::from_millis(200);
/// How often the list of held runs is repeated while waiting.
const WAITING_REPEAT: Duration = Duration::from_secs(30);

/// Everything `run_schedule` needs besides the runs.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    pub force: bool,
    pub rerun_failed: bool,
    pub layout: DeviceLayout,
    pub retries: usize,
    pub timeout: Option<Duration>,
    pub launch: WorkerLaunch,
    pub lock: LockConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{exe}: cannot start a worker", exe = exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the SIGINT/SIGTERM handlers")]
    Signals(#[source] std::io::Error),
}

/// Runs `runs` as worker processes; returns when every one is finished (here or elsewhere),
/// or after an interrupt.
pub fn run_schedule(
    spec: &Spec,
    runs: &[&RunSpec],
    store: &Store,
    opts: &ScheduleOptions,
    on_event: &mut dyn FnMut(SweepEvent),
) -> Result<SweepSummary, ScheduleError> {
    store.write_spec(&spec.source)?;
    let signals = SignalWatch::install().map_err(ScheduleError::Signals)?;
    let mut scheduler = Scheduler::new(spec, store, opts, signals);
    scheduler.plan(runs, on_event);
    on_event(SweepEvent::Layout {
        slots: scheduler.slots.iter().map(|s| s.device.label()).collect(),
        threads_per_run: opts.layout.threads_per_run,
    });
    scheduler.run(on_event)?;
    Ok(scheduler.summary)
}

/// One attempt of a run waiting for a slot.
#[derive(Debug, Clone)]
struct Job<'r> {
    run: &'r RunSpec,
    attempt: u32,
    grad_accum: usize,
    retries_used: usize,
    /// Fingerprint of the run's result when this attempt was decided.
    expect: String,
}

impl<'r> Job<'r> {
    fn first(run: &'r RunSpec, expect: String) -> Self {
        Job { run, attempt: 1, grad_accum: 1, retries_used: 0, expect }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Timeout,
    Interrupt,
}

/// A worker running a job.
struct Active<'r> {
    job: Job<'r>,
    token: u64,
    pid: u32,
    started: Instant,
    started_at: String,
    held: Option<String>,
    elsewhere: bool,
    error: Option<String>,
    kill: Option<Kill>,
}

struct Slot<'r> {
    device: DeviceSlot,
    active: Option<Active<'r>>,
}

struct Scheduler<'a, 'r> {
    spec: &'a Spec,
    store: &'a Store,
    opts: &'a ScheduleOptions,
    signals: SignalWatch,
    signals_seen: usize,
    slots: Vec<Slot<'r>>,
    queue: VecDeque<Job<'r>>,
    held: Vec<Job<'r>>,
    waiting_since: Option<Instant>,
    tx: Sender<(u64, ChildMessage)>,
    rx: Receiver<(u64, ChildMessage)>,
    next_token: u64,
    summary: SweepSummary,
}

impl<'a, 'r> Scheduler<'a, 'r> {
    fn new(spec: &'a Spec, store: &'a Store, opts: &'a ScheduleOptions, signals: SignalWatch) -> Self {
        let (tx, rx) = mpsc::channel();
        let slots = opts.layout.slots().into_iter().map(|device| Slot { device, active: None }).collect();
        Scheduler {
            spec,
            store,
            opts,
            signals,
            signals_seen: 0,
            slots,
            queue: VecDeque::new(),
            held: Vec::new(),
            waiting_since: None,
            tx,
            rx,
            next_token: 0,
            summary: SweepSummary::default(),
        }
    }

    /// Applies the resume rule and queues the runs to execute, longest-estimated first.
    fn plan(&mut self, runs: &[&'r RunSpec], on_event: &mut dyn FnMut(SweepEvent)) {
        let mut todo = Vec::new();
        for &run in runs {
            let state = self.store.state(&run.id);
            if let RunState::Corrupt(msg) = &state {
                on_event(SweepEvent::Warning(format!("{msg}; running it again")));
            }
            match decide(&state, self.opts.force, self.opts.rerun_failed) {
                Action::Run => todo.push(run),
                Action::SkipDone => self.summary.skipped_done += 1,
                Action::SkipFailed => self.summary.skipped_failed += 1,
            }
        }
        on_event(SweepEvent::Planned {
            selected: runs.len(),
            to_run: todo.len(),
            done: self.summary.skipped_done,
            failed: self.summary.skipped_failed,
        });
        let ordered = CostModel::new(self.spec).order(&todo);
        self.queue = ordered.into_iter().map(|r| Job::first(r, result_fingerprint(self.store, &r.id))).collect();
    }

    fn stopping(&self) -> bool {
        self.signals_seen > 0
    }

    fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.active.is_some()).count()
    }

    fn run(&mut self, on_event: &mut dyn FnMut(SweepEvent)) -> Result<(), ScheduleError> {
        loop {
            self.check_signals(on_event);
            if !self.stopping() {
                self.fill_slots(on_event)?;
            }
            if self.running() == 0 {
                if self.stopping() || (self.queue.is_empty() && self.held.is_empty()) {
                    break;
                }
                if self.queue.is_empty() {
                    self.poll_held(on_event)?;
                }
                continue;
            }
            if let Ok((token, msg)) = self.rx.recv_timeout(TICK) {
                self.on_message(token, msg, on_event)?;
            }
            self.enforce_timeouts();
        }
        self.summary.not_started = self.queue.len();
        self.summary.still_held = self.held.iter().map(|j| j.run.id.clone()).collect();
        Ok(())
    }

    fn check_signals(&mut self, on_event: &mut dyn FnMut(SweepEvent)) {
        let count = self.signals.count();
        if count == self.signals_seen {
            return;
        }
        if self.signals_seen == 0 {
            on_event(SweepEvent::Interrupted { second: false, running: self.running() });
        }
        if count >= 2 && self.signals_seen < 2 {
            on_event(SweepEvent::Interrupted { second: true, running: self.running() });
            for active in self.slots.iter_mut().filter_map(|s| s.active.as_mut()) {
                active.kill = Some(Kill::Interrupt);
                signal_worker(active.pid, libc::SIGKILL);
            }
        }
        self.signals_seen = count;
    }

    fn fill_slots(&mut self, on_event: &mut dyn FnMut(SweepEvent)) -> Result<(), ScheduleError> {
        while let Some(slot) = self.slots.iter().position(|s| s.active.is_none()) {
            let Some(job) = self.queue.pop_front() else { break };
            if let Some(job) = self.settle(job, on_event)? {
                self.start(slot, job)?;
            }
        }
        Ok(())
    }

    /// Looks at a run before starting it: `None` when another process finished it or holds it
    /// (then it is counted or waited for); otherwise the job with the result as it is now.
    fn settle(
        &mut self,
        mut job: Job<'r>,
        on_event: &mut dyn FnMut(SweepEvent),
    ) -> Result<Option<Job<'r>>, ScheduleError> {
        let id = &job.run.id;
        let now = result_fingerprint(self.store, id);
        if now != job.expect {
            if let RunState::Done(r) | RunState::Failed(r) = self.store.state(id) {
                self.finished_elsewhere(job.run, r.status, on_event);
                return Ok(None);
            }
        }
        job.expect = now;
        if let LockState::Live(holder) = lock_state(&self.store.lock_path(id), &self.opts.lock)? {
            self.hold(job, holder, on_event);
            return Ok(None);
        }
        Ok(Some(job))
    }

    fn start(&mut self, slot: usize, job: Job<'r>) -> Result<(), ScheduleError> {
        let device = &self.slots[slot].device;
        let order = WorkerOrder {
            run: job.run,
            device,
            attempt: job.attempt,
            grad_accum: job.grad_accum,
            expect: &job.expect,
            threads: self.opts.layout.threads_per_run,
        };
        let token = self.next_token;
        self.next_token += 1;
        let log = self.store.log_path(&job.run.id);
        let pid = spawn_worker(&self.opts.launch, &order, &log, token, self.tx.clone())
            .map_err(|source| ScheduleError::Spawn { exe: self.opts.launch.exe.clone(), source })?;
        self.slots[slot].active = Some(Active {
            job,
            token,
            pid,
            started: Instant::now(),
            started_at: now_rfc3339(),
            held: None,
            elsewhere: false,
            error: None,
            kill: None,
        });
        Ok(())
    }

    fn on_message(
        &mut self,
        token: u64,
        msg: ChildMessage,
        on_event: &mut dyn FnMut(SweepEvent),
    ) -> Result<(), ScheduleError> {
        let Some(slot) = self.slots.iter().position(|s| s.active.as_ref().is_some_and(|a| a.token == token)) else {
            return Ok(());
        };
        let label = self.slots[slot].device.label();
        let Some(active) = self.slots[slot].active.as_mut() else { return Ok(()) };
        match msg {
            ChildMessage::Report(report) => on_report(active, report, label, on_event),
            ChildMessage::Garbled(line) => {
                on_event(SweepEvent::Warning(format!("{}: unreadable worker report: {line}", active.job.run.id)))
            }
            ChildMessage::Exited(end) => {
                if let Some(active) = self.slots[slot].active.take() {
                    let device = self.slots[slot].device.clone();
                    self.conclude(active, &device, end, on_event)?;
                }
            }
        }
        Ok(())
    }

    fn enforce_timeouts(&mut self) {
        let Some(limit) = self.opts.timeout else { return };
        for active in self.slots.iter_mut().filter_map(|s| s.active.as_mut()) {
            if active.kill.is_none() && active.started.elapsed() > limit {
                active.kill = Some(Kill::Timeout);
                signal_worker(active.pid, libc::SIGKILL);
            }
        }
    }

    /// Decides what a worker's end means for its run.
    fn conclude(
        &mut self,
        active: Active<'r>,
        device: &DeviceSlot,
        end: WorkerEnd,
        on_event: &mut dyn FnMut(SweepEvent),
    ) -> Result<(), ScheduleError> {
        let written = self.result_of(&active);
        if written.is_none() {
            if active.kill == Some(Kill::Interrupt) {
                return self.leave_pending(active, on_event);
            }
            if let Some(holder) = active.held.clone() {
                self.hold(active.job, holder, on_event);
                return Ok(());
            }
            if active.elsewhere || end == WorkerEnd::Exited(EXIT_LOST_LOCK) {
                self.queue.push_front(active.job);
                return Ok(());
            }
        }
        let result = match written {
            Some(r) => r,
            None => match self.record_crash(&active, device, end)? {
                Some(r) => r,
                None => {
                    self.hold(active.job, "another process".into(), on_event);
                    return Ok(());
                }
            },
        };
        self.after_attempt(active.job, &result, on_event);
        Ok(())
    }

    /// The result this worker wrote, if it wrote one (it may have died right after).
    fn result_of(&self, active: &Active<'r>) -> Option<RunResult> {
        match self.store.state(&active.job.run.id) {
            RunState::Done(r) | RunState::Failed(r) if written_by(&r, active.pid, active.job.attempt) => Some(*r),
            _ => None,
        }
    }

    /// Counts a finished attempt, or queues the next one.
    fn after_attempt(&mut self, job: Job<'r>, result: &RunResult, on_event: &mut dyn FnMut(SweepEvent)) {
        let decision = match (result.status, result_failure_kind(result)) {
            (RunStatus::Done, _) => RetryDecision::GiveUp,
            _ if self.stopping() => RetryDecision::GiveUp,
            (RunStatus::Failed, kind) => {
                let failed = FailedAttempt {
                    kind: kind.unwrap_or(FailureKind::Error),
                    batch_size: job.run.typed.train.batch_size,
                    grad_accum: job.grad_accum,
                    retries_used: job.retries_used,
                };
                decide_retry(&failed, self.opts.retries)
            }
        };
        match decision {
            RetryDecision::Retry { grad_accum, uses_retry } => {
                on_event(SweepEvent::Retrying {
                    index: job.run.index,
                    id: job.run.id.clone(),
                    attempt: job.attempt + 1,
                    kind: result_failure_kind(result).unwrap_or(FailureKind::Error),
                    error: super::sweep::error_headline(&result.error),
                    micro_batch: micro_batch(job.run.typed.train.batch_size, grad_accum),
                    grad_accum,
                });
                self.queue.push_front(Job {
                    run: job.run,
                    attempt: job.attempt + 1,
                    grad_accum,
                    retries_used: job.retries_used + usize::from(uses_retry),
                    expect: result_fingerprint(self.store, &job.run.id),
                });
            }
            RetryDecision::GiveUp => {
                self.summary.executed += 1;
                match result.status {
                    RunStatus::Done => self.summary.succeeded += 1,
                    RunStatus::Failed => self.summary.failed += 1,
                }
                on_event(finished_event(job.run, result));
            }
        }
    }

    /// Writes the failed result of a worker that ended without one, under the run's lock (taken
    /// over from the dead worker). `None` when another live process holds the run.
    fn record_crash(
        &self,
        active: &Active<'r>,
        device: &DeviceSlot,
        end: WorkerEnd,
    ) -> Result<Option<RunResult>, ScheduleError> {
        let run = active.job.run;
        let timeout = (active.kill == Some(Kill::Timeout)).then(|| self.opts.timeout.unwrap_or_default().as_secs());
        let (kind, reason) = match &active.error {
            Some(message) => (FailureKind::Error, message.clone()),
            None => classify_end(end, timeout),
        };
        let lock = match claim(&self.store.lock_path(&run.id), &run.id, &self.opts.lock)? {
            Claim::Claimed(lock) => lock,
            Claim::Held(_) => return Ok(None),
        };
        let attempt = Attempt {
            device: device.label(),
            trainer_device: trainer_device(&device.label()).into(),
            attempt: active.job.attempt,
            grad_accum: active.job.grad_accum,
            details: worker_details(device, active.pid),
        };
        let dry_run = self.opts.launch.trainer == TrainerChoice::DryRun;
        let mut result =
            failed_result(self.spec, run, &attempt, dry_run, active.started_at.clone(), vec![reason], kind);
        result.timings.seconds = active.started.elapsed().as_secs_f64();
        self.store.write_result(&result)?;
        self.store.log(&run.id, &format!("scheduler: {} ({kind}); recorded as failed", result.error[0]))?;
        lock.release()?;
        Ok(Some(result))
    }

    /// A run whose worker the second interrupt killed: no result, lock removed, pending.
    fn leave_pending(&mut self, active: Active<'r>, on_event: &mut dyn FnMut(SweepEvent)) -> Result<(), ScheduleError> {
        let run = active.job.run;
        if let Claim::Claimed(lock) = claim(&self.store.lock_path(&run.id), &run.id, &self.opts.lock)? {
            lock.release()?;
        }
        self.store.log(&run.id, "scheduler: interrupted; the run is left pending")?;
        self.summary.interrupted += 1;
        on_event(SweepEvent::RunStopped { index: run.index, id: run.id.clone() });
        Ok(())
    }

    fn hold(&mut self, job: Job<'r>, holder: String, on_event: &mut dyn FnMut(SweepEvent)) {
        on_event(SweepEvent::HeldElsewhere { index: job.run.index, id: job.run.id.clone(), holder });
        self.held.push(job);
    }

    fn finished_elsewhere(&mut self, run: &RunSpec, status: RunStatus, on_event: &mut dyn FnMut(SweepEvent)) {
        match status {
            RunStatus::Done => self.summary.elsewhere_done += 1,
            RunStatus::Failed => self.summary.elsewhere_failed += 1,
        }
        on_event(SweepEvent::FinishedElsewhere { index: run.index, id: run.id.clone(), status });
    }

    /// With nothing else to do, waits for runs held by other processes: each one finished
    /// elsewhere is counted, each one whose holder is gone is queued again.
    fn poll_held(&mut self, on_event: &mut dyn FnMut(SweepEvent)) -> Result<(), ScheduleError> {
        if self.waiting_since.is_none_or(|t| t.elapsed() > WAITING_REPEAT) {
            on_event(SweepEvent::Waiting { ids: self.held.iter().map(|j| j.run.id.clone()).collect() });
            self.waiting_since = Some(Instant::now());
        }
        std::thread::sleep(HELD_POLL);
        for job in std::mem::take(&mut self.held) {
            let now = result_fingerprint(self.store, &job.run.id);
            let state = self.store.state(&job.run.id);
            match (&state, lock_state(&self.store.lock_path(&job.run.id), &self.opts.lock)?) {
                (RunState::Done(r) | RunState::Failed(r), _) if now != job.expect => {
                    self.finished_elsewhere(job.run, r.status, on_event)
                }
                (_, LockState::Live(_)) => self.held.push(job),
                _ => self.queue.push_back(Job { expect: now, ..job }),
            }
        }
        Ok(())
    }
}

fn on_report(active: &mut Active<'_>, report: WorkerReport, device: String, on_event: &mut dyn FnMut(SweepEvent)) {
    let run = active.job.run;
    match report {
        WorkerReport::Running { micro_batch } => on_event(SweepEvent::RunStarted {
            index: run.index,
            id: run.id.clone(),
            device,
            attempt: active.job.attempt,
            micro_batch,
            grad_accum: active.job.grad_accum,
        }),
        WorkerReport::Progress(progress) => on_event(SweepEvent::Progress { id: run.id.clone(), progress }),
        WorkerReport::Held { holder } => active.held = Some(holder),
        WorkerReport::FinishedElsewhere => active.elsewhere = true,
        // The result file is the truth; `result_of` reads it.
        WorkerReport::Finished { .. } => {}
        WorkerReport::Error { message } => active.error = Some(message),
    }
}

/// Facts about a worker recorded in `result.json` details.
pub fn worker_details(device: &DeviceSlot, pid: u32) -> serde_json::Map<String, serde_json::Value> {
    let mut details = serde_json::Map::new();
    details.insert("cuda_visible_devices".into(), device.cuda_visible_devices().into());
    details.insert("trainer_device".into(), trainer_device(&device.label()).into());
    details.insert("worker_pid".into(), pid.into());
    details
}

/// Whether `result` was written by the worker `pid` for `attempt`.
fn written_by(result: &RunResult, pid: u32, attempt: u32) -> bool {
    result.attempt == attempt && result.details.get("worker_pid").and_then(|p| p.as_u64()) == Some(u64::from(pid))
}
