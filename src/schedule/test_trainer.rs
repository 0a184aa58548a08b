//! TEST ONLY: a trainer whose behaviour a test script controls, selected by a worker when
//! `NERGRID_TEST_TRAINER=/path/to/script.json` is set. It sleeps, fails, panics, reports out of
//! memory above a micro-batch, reports a non-finite loss or kills its own process, per run, and
//! appends one JSON line per execution start and end to the script's log (O_APPEND), so tests
//! count executions rather than files. Its metrics are the dry-run trainer's.
//!
//! ```json
//! { "log": "/tmp/t/exec.log",
//!   "default": { "sleep_ms": 50 },
//!   "runs": { "3": { "panic": "boom" }, "<run id>": { "oom_above_micro_batch": 4 } } }
//! ```
//! A run's behaviour is found by run id, then by plan index, else `default`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::dry_run::DryRunTrainer;
use super::failure::RunFailure;
use super::trainer::{RunContext, RunOutput, RunProgress, Trainer};
use crate::plan::RunSpec;

/// The environment variable that selects the test trainer in a worker.
pub const TEST_TRAINER_ENV: &str = "NERGRID_TEST_TRAINER";

/// What one run does.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    #[serde(default)]
    pub sleep_ms: u64,
    /// Return an error with this message.
    pub fail: Option<String>,
    /// Panic with this message.
    pub panic: Option<String>,
    /// Report out of memory while the micro-batch is above this.
    pub oom_above_micro_batch: Option<usize>,
    /// Report a NaN loss.
    #[serde(default)]
    pub non_finite_loss: bool,
    /// Kill the worker process with SIGKILL (no result written).
    #[serde(default)]
    pub kill_self: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestScript {
    pub log: PathBuf,
    #[serde(default)]
    pub default: Behaviour,
    #[serde(default)]
    pub runs: BTreeMap<String, Behaviour>,
}

#[derive(Debug, thiserror::Error)]
pub enum TestTrainerError {
    #[error("{path}: cannot read the test trainer script", path = path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid test trainer script", path = path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub struct TestTrainer {
    script: TestScript,
}

impl TestTrainer {
    pub fn load(path: &Path) -> Result<Self, TestTrainerError> {
        let text = std::fs::read(path).map_err(|source| TestTrainerError::Read { path: path.into(), source })?;
        let script =
            serde_json::from_slice(&text).map_err(|source| TestTrainerError::Parse { path: path.into(), source })?;
        Ok(TestTrainer { script })
    }

    /// The test trainer named by `NERGRID_TEST_TRAINER`, if set.
    pub fn from_env() -> Option<Result<Self, TestTrainerError>> {
        std::env::var_os(TEST_TRAINER_ENV).filter(|v| !v.is_empty()).map(|p| TestTrainer::load(Path::new(&p)))
    }

    fn behaviour(&self, run: &RunSpec) -> &Behaviour {
        let runs = &self.script.runs;
        runs.get(&run.id).or_else(|| runs.get(&run.index.to_string())).unwrap_or(&self.script.default)
    }

    fn log(&self, event: &str, run: &RunSpec, ctx: &RunContext<'_>, extra: serde_json::Value) {
        let mut line = serde_json::json!({
            "event": event,
            "id": run.id,
            "index": run.index,
            "pid": std::process::id(),
            "device": ctx.device,
            "cuda_visible_devices": std::env::var("CUDA_VISIBLE_DEVICES").ok(),
            "attempt": ctx.attempt,
            "micro_batch": ctx.micro_batch(run.typed.train.batch_size),
            "grad_accum": ctx.grad_accum,
            "t_us": SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64,
        });
        if let (Some(map), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
            map.extend(more);
        }
        let text = format!("{line}\n");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.script.log);
        // One write per line: O_APPEND keeps lines from concurrent workers whole.
        if let Ok(mut f) = file {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

impl Trainer for TestTrainer {
    fn is_dry_run(&self) -> bool {
        true
    }

    fn train(
        &self,
        run: &RunSpec,
        ctx: &RunContext<'_>,
        progress: &mut dyn FnMut(RunProgress),
    ) -> anyhow::Result<RunOutput> {
        let b = self.behaviour(run);
        self.log("start", run, ctx, serde_json::json!({}));
        let outcome = act(b, run, ctx, progress);
        let word = if outcome.is_ok() { "ok" } else { "error" };
        self.log("end", run, ctx, serde_json::json!({ "outcome": word }));
        outcome
    }
}

fn act(
    b: &Behaviour,
    run: &RunSpec,
    ctx: &RunContext<'_>,
    progress: &mut dyn FnMut(RunProgress),
) -> anyhow::Result<RunOutput> {
    let micro = ctx.micro_batch(run.typed.train.batch_size);
    if let Some(limit) = b.oom_above_micro_batch.filter(|&l| micro > l) {
        return Err(RunFailure::out_of_memory(format!(
            "test trainer: out of memory at micro-batch {micro} (> {limit})"
        ))
        .into());
    }
    for step in 1..=4 {
        std::thread::sleep(Duration::from_millis(b.sleep_ms / 4));
        progress(RunProgress { epoch: 1, epochs: 1, step, steps: 4, loss: 1.0 / step as f64, val_f1: None });
    }
    if b.kill_self {
        // SAFETY: raising a signal on our own process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    if let Some(msg) = &b.panic {
        panic!("{msg}");
    }
    if b.non_finite_loss {
        return Err(RunFailure::non_finite_loss("test trainer: loss is NaN at epoch 1 step 4").into());
    }
    if let Some(msg) = &b.fail {
        anyhow::bail!("test trainer: {msg}");
    }
    DryRunTrainer { sleep_ms: 0 }.train(run, ctx, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_parses_and_rejects_unknown_fields() {
        let s: TestScript =
            serde_json::from_str(r#"{"log": "/tmp/x", "default": {"sleep_ms": 5}, "runs": {"2": {"panic": "boom"}}}"#)
                .unwrap();
        assert_eq!(s.default.sleep_ms, 5);
        assert_eq!(s.runs["2"].panic.as_deref(), Some("boom"));
        assert!(serde_json::from_str::<TestScript>(r#"{"log": "/x", "default": {"sleep": 5}}"#).is_err());
    }
}
