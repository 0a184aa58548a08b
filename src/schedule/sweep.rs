//! Runs the selected runs of a plan in this process, one after another, skipping what the
//! store already has. Each run's `result.json` is written last, atomically, so a sweep killed
//! at any point resumes by running exactly the runs without one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::host::{hostname, peak_rss_bytes};
use super::trainer::{RunContext, RunOutput, RunProgress, Trainer};
use crate::plan::RunSpec;
use crate::spec::Spec;
use crate::store::{now_rfc3339, RunResult, RunState, RunStatus, Store, StoreError, Timings, ToolInfo};

/// What to do with one run given what the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Run,
    SkipDone,
    SkipFailed,
}

/// The resume rule: done runs are skipped unless forced, failed ones unless retried.
pub fn decide(state: &RunState, force: bool, rerun_failed: bool) -> Action {
    match state {
        _ if force => Action::Run,
        RunState::Done(_) => Action::SkipDone,
        RunState::Failed(_) if !rerun_failed => Action::SkipFailed,
        _ => Action::Run,
    }
}

#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    pub force: bool,
    pub rerun_failed: bool,
    pub device: String,
}

/// What happened, for progress display and logs.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepEvent {
    Planned {
        selected: usize,
        to_run: usize,
        done: usize,
        failed: usize,
    },
    Warning(String),
    RunStarted {
        index: usize,
        id: String,
        device: String,
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
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSummary {
    pub executed: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped_done: usize,
    pub skipped_failed: usize,
}

impl SweepSummary {
    /// True when every selected run ends done.
    pub fn all_done(&self) -> bool {
        self.failed == 0 && self.skipped_failed == 0
    }
}

/// Runs `runs` through `trainer`, persisting each result.
pub fn run_sweep(
    spec: &Spec,
    runs: &[&RunSpec],
    store: &Store,
    trainer: &dyn Trainer,
    opts: &SweepOptions,
    on_event: &mut dyn FnMut(SweepEvent),
) -> Result<SweepSummary, StoreError> {
    store.write_spec(&spec.source)?;
    let mut summary = SweepSummary::default();
    let mut todo = Vec::new();
    for run in runs {
        let state = store.state(&run.id);
        if let RunState::Corrupt(msg) = &state {
            on_event(SweepEvent::Warning(format!("{msg}; running it again")));
        }
        match decide(&state, opts.force, opts.rerun_failed) {
            Action::Run => todo.push(*run),
            Action::SkipDone => summary.skipped_done += 1,
            Action::SkipFailed => summary.skipped_failed += 1,
        }
    }
    on_event(SweepEvent::Planned {
        selected: runs.len(),
        to_run: todo.len(),
        done: summary.skipped_done,
        failed: summary.skipped_failed,
    });
    for run in todo {
        let result = execute_run(spec, run, store, trainer, &opts.device, 1, 1, on_event)?;
        summary.executed += 1;
        match result.status {
            RunStatus::Done => summary.succeeded += 1,
            RunStatus::Failed => summary.failed += 1,
        }
    }
    Ok(summary)
}

/// Executes one run and stores everything it produced; a failure is recorded, not returned.
#[allow(clippy::too_many_arguments)]
pub fn execute_run(
    spec: &Spec,
    run: &RunSpec,
    store: &Store,
    trainer: &dyn Trainer,
    device: &str,
    attempt: u32,
    grad_accum: usize,
    on_event: &mut dyn FnMut(SweepEvent),
) -> Result<RunResult, StoreError> {
    store.clear_result(&run.id)?;
    store.write_run_spec(run)?;
    let started_at = now_rfc3339();
    let clock = Instant::now();
    on_event(SweepEvent::RunStarted { index: run.index, id: run.id.clone(), device: device.to_string() });
    store.log(&run.id, &format!("{started_at} start {} on {device} (attempt {attempt})", run.id))?;
    let ctx = RunContext { spec, store, device: device.to_string(), attempt, grad_accum };
    let outcome = {
        let mut progress = |p: RunProgress| on_event(SweepEvent::Progress { id: run.id.clone(), progress: p });
        catch_unwind(AssertUnwindSafe(|| trainer.train(run, &ctx, &mut progress)))
    };
    let outcome = match outcome {
        Ok(result) => result,
        Err(panic) => Err(anyhow::anyhow!("the trainer panicked: {}", panic_message(&panic))),
    };
    let mut result = RunResult {
        id: run.id.clone(),
        index: run.index,
        experiment: spec.experiment.name.clone(),
        status: RunStatus::Failed,
        dry_run: trainer.is_dry_run(),
        params: run.params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
        test: None,
        validation: None,
        best_epoch: None,
        report: Default::default(),
        timings: Timings { started_at, ..Timings::default() },
        device: device.to_string(),
        host: hostname(),
        attempt,
        tool: ToolInfo::current(),
        error: Vec::new(),
        details: Default::default(),
    };
    match outcome {
        Ok(output) => store_output(store, &run.id, output, &mut result)?,
        Err(e) => {
            result.error = e.chain().map(|c| c.to_string()).collect();
            store.log(&run.id, &format!("failed: {}", result.error.join(": ")))?;
        }
    }
    result.timings.finished_at = now_rfc3339();
    result.timings.seconds = clock.elapsed().as_secs_f64();
    result.details.insert("peak_rss_bytes".into(), peak_rss_bytes().into());
    store.write_result(&result)?;
    store.log(
        &run.id,
        &format!("{} {} in {:.1}s", result.timings.finished_at, status_word(result.status), result.timings.seconds),
    )?;
    on_event(SweepEvent::RunFinished {
        index: run.index,
        id: run.id.clone(),
        status: result.status,
        seconds: result.timings.seconds,
        test_f1: result.test.map(|t| t.f1),
        error: result.error.first().cloned(),
    });
    Ok(result)
}

fn store_output(store: &Store, id: &str, output: RunOutput, result: &mut RunResult) -> Result<(), StoreError> {
    store.write_epochs(id, &output.epochs)?;
    if let Some(pred) = &output.predictions {
        store.write_predictions(id, pred)?;
    }
    result.status = RunStatus::Done;
    result.test = Some(output.test);
    result.validation = output.validation;
    result.best_epoch = output.best_epoch;
    result.report = output.report;
    result.timings.train_seconds = output.train_seconds;
    result.timings.train_tokens_per_sec = output.train_tokens_per_sec;
    result.details.extend(output.details);
    Ok(())
}

fn status_word(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Done => "done",
        RunStatus::Failed => "failed",
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: RunStatus) -> Box<RunResult> {
        Box::new(RunResult {
            id: "x".into(),
            index: 0,
            experiment: "e".into(),
            status,
            dry_run: true,
            params: Default::default(),
            test: None,
            validation: None,
            best_epoch: None,
            report: Default::default(),
            timings: Default::default(),
            device: "cpu".into(),
            host: "h".into(),
            attempt: 1,
            tool: ToolInfo::current(),
            error: vec![],
            details: Default::default(),
        })
    }

    #[test]
    fn resume_rule() {
        let done = RunState::Done(result(RunStatus::Done));
        let failed = RunState::Failed(result(RunStatus::Failed));
        assert_eq!(decide(&RunState::Pending, false, false), Action::Run);
        assert_eq!(decide(&RunState::Corrupt("x".into()), false, false), Action::Run);
        assert_eq!(decide(&done, false, false), Action::SkipDone);
        assert_eq!(decide(&done, false, true), Action::SkipDone);
        assert_eq!(decide(&done, true, false), Action::Run);
        assert_eq!(decide(&failed, false, false), Action::SkipFailed);
        assert_eq!(decide(&failed, false, true), Action::Run);
    }
}
