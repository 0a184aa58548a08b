//! One attempt of one run in this process: the trainer's output (or its failure, panics
//! included) becomes `result.json`, written last and atomically, so a run killed at any point
//! has no result and is simply pending. Also the resume rule.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::events::SweepEvent;
use super::failure::{failure_kind, FailureKind};
use super::host::{hostname, peak_rss_bytes};
use super::trainer::{micro_batch, RunContext, RunOutput, RunProgress, Trainer};
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

/// How one attempt of a run executes.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The device as the scheduler names it, recorded in `result.json`: `cpu`, `cuda:1`.
    pub device: String,
    /// The device the trainer uses (`RunContext.device`): a worker sees only its GPU, `cuda:0`.
    pub trainer_device: String,
    /// 1 for the first try.
    pub attempt: u32,
    pub grad_accum: usize,
    /// Extra facts for `result.json` `details`.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Attempt {
    /// An attempt on `device`, used as named.
    pub fn local(device: &str, attempt: u32, grad_accum: usize) -> Self {
        Attempt {
            device: device.to_string(),
            trainer_device: device.to_string(),
            attempt,
            grad_accum,
            details: Default::default(),
        }
    }
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
    execute_attempt(spec, run, store, trainer, &Attempt::local(device, attempt, grad_accum), on_event)
}

/// Executes one attempt of a run; a failure is recorded (with its kind), not returned.
pub fn execute_attempt(
    spec: &Spec,
    run: &RunSpec,
    store: &Store,
    trainer: &dyn Trainer,
    attempt: &Attempt,
    on_event: &mut dyn FnMut(SweepEvent),
) -> Result<RunResult, StoreError> {
    store.clear_result(&run.id)?;
    store.write_run_spec(run)?;
    let started_at = now_rfc3339();
    let clock = Instant::now();
    let micro = micro_batch(run.typed.train.batch_size, attempt.grad_accum);
    on_event(SweepEvent::RunStarted {
        index: run.index,
        id: run.id.clone(),
        device: attempt.device.clone(),
        attempt: attempt.attempt,
        micro_batch: micro,
        grad_accum: attempt.grad_accum,
    });
    store.log(
        &run.id,
        &format!(
            "{started_at} start {} on {} (attempt {}, micro-batch {micro}, accumulation {})",
            run.id, attempt.device, attempt.attempt, attempt.grad_accum
        ),
    )?;
    let outcome = train_catching_panics(spec, run, store, trainer, attempt, on_event);
    let mut result = new_result(spec, run, attempt, trainer.is_dry_run(), started_at);
    match outcome {
        Ok(output) => store_output(store, &run.id, output, &mut result)?,
        Err((e, kind)) => {
            result.error = e.chain().map(|c| c.to_string()).collect();
            result.details.insert("failure_kind".into(), kind.as_str().into());
            store.log(&run.id, &format!("failed ({kind}): {}", result.error.join(": ")))?;
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
    on_event(finished_event(run, &result));
    Ok(result)
}

fn train_catching_panics(
    spec: &Spec,
    run: &RunSpec,
    store: &Store,
    trainer: &dyn Trainer,
    attempt: &Attempt,
    on_event: &mut dyn FnMut(SweepEvent),
) -> Result<RunOutput, (anyhow::Error, FailureKind)> {
    let ctx = RunContext {
        spec,
        store,
        device: attempt.trainer_device.clone(),
        attempt: attempt.attempt,
        grad_accum: attempt.grad_accum,
    };
    let mut progress = |p: RunProgress| on_event(SweepEvent::Progress { id: run.id.clone(), progress: p });
    match catch_unwind(AssertUnwindSafe(|| trainer.train(run, &ctx, &mut progress))) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => {
            let kind = failure_kind(&e);
            Err((e, kind))
        }
        Err(panic) => Err((anyhow::anyhow!("the trainer panicked: {}", panic_message(&panic)), FailureKind::Panic)),
    }
}

/// A failed `result.json` for an attempt that produced nothing (a worker that crashed, was
/// killed or timed out): `error` is the reason, outermost first.
pub fn failed_result(
    spec: &Spec,
    run: &RunSpec,
    attempt: &Attempt,
    dry_run: bool,
    started_at: String,
    error: Vec<String>,
    kind: FailureKind,
) -> RunResult {
    let mut result = new_result(spec, run, attempt, dry_run, started_at);
    result.error = error;
    result.timings.finished_at = now_rfc3339();
    result.details.insert("failure_kind".into(), kind.as_str().into());
    result
}

/// A failed result carrying everything known before training: parameters, device, attempt.
fn new_result(spec: &Spec, run: &RunSpec, attempt: &Attempt, dry_run: bool, started_at: String) -> RunResult {
    let mut details = attempt.details.clone();
    details.insert("attempt".into(), attempt.attempt.into());
    details.insert("grad_accum".into(), attempt.grad_accum.into());
    details.insert("micro_batch".into(), micro_batch(run.typed.train.batch_size, attempt.grad_accum).into());
    RunResult {
        id: run.id.clone(),
        index: run.index,
        experiment: spec.experiment.name.clone(),
        status: RunStatus::Failed,
        dry_run,
        params: run.params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
        test: None,
        validation: None,
        best_epoch: None,
        report: Default::default(),
        errors: None,
        timings: Timings { started_at, ..Timings::default() },
        device: attempt.device.clone(),
        host: hostname(),
        attempt: attempt.attempt,
        tool: ToolInfo::current(),
        error: Vec::new(),
        details,
    }
}

/// Identifies the bytes of a run's `result.json` ("absent" without one), so a process can tell
/// whether another one changed the result since it looked.
pub fn result_fingerprint(store: &Store, id: &str) -> String {
    match std::fs::read(store.result_path(id)) {
        Ok(bytes) => Sha256::digest(&bytes)[..8].iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => "absent".into(),
    }
}

/// The event announcing a stored result.
pub fn finished_event(run: &RunSpec, result: &RunResult) -> SweepEvent {
    SweepEvent::RunFinished {
        index: run.index,
        id: run.id.clone(),
        status: result.status,
        seconds: result.timings.seconds,
        test_f1: result.test.map(|t| t.f1),
        error: error_headline(&result.error),
        failure_kind: result_failure_kind(result),
    }
}

/// A failed run's error for one progress line: the outermost context and the root cause
/// (`loading dataset d: No such file or directory (os error 2)`), as `result.json` has them.
pub fn error_headline(chain: &[String]) -> Option<String> {
    match chain {
        [] => None,
        [only] => Some(only.clone()),
        [outer, .., root] => Some(format!("{outer}: {root}")),
    }
}

/// `details.failure_kind` of a failed result.
pub fn result_failure_kind(result: &RunResult) -> Option<FailureKind> {
    let kind = result.details.get("failure_kind")?;
    serde_json::from_value(kind.clone()).ok()
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
    result.errors = output.errors;
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
            errors: None,
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
    fn the_finished_event_of_a_failed_run_shows_the_root_cause() {
        let mut failed = result(RunStatus::Failed);
        failed.error = vec!["loading dataset d".into(), "d.jsonl: i/o error".into(), "No such file".into()];
        let run = crate::plan::tests_support::run_spec(&[]);
        let SweepEvent::RunFinished { error, .. } = finished_event(&run, &failed) else { panic!() };
        assert_eq!(error.as_deref(), Some("loading dataset d: No such file"));
        assert_eq!(error_headline(&["only".into()]).as_deref(), Some("only"));
        assert_eq!(error_headline(&[]), None);
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
