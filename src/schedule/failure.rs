//! Why a run failed: the kinds the scheduler tells apart, how a trainer reports one, and how a
//! worker's exit status is read when it died without writing a result.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The failure kinds recorded in `result.json` as `details.failure_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The device ran out of memory; retried with half the micro-batch.
    #[serde(rename = "oom")]
    OutOfMemory,
    /// The training loss became NaN or infinite; never retried.
    NonFiniteLoss,
    /// The trainer panicked (or the worker aborted).
    Panic,
    /// Any other error.
    Error,
    /// The run exceeded `[schedule] timeout` and was killed.
    Timeout,
    /// The worker was killed by a signal it did not ask for (e.g. the kernel's OOM killer).
    Killed,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::OutOfMemory => "oom",
            FailureKind::NonFiniteLoss => "non_finite_loss",
            FailureKind::Panic => "panic",
            FailureKind::Error => "error",
            FailureKind::Timeout => "timeout",
            FailureKind::Killed => "killed",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A trainer's failure with a kind the scheduler acts on. Return it inside an `anyhow::Error`
/// (context may be added around it): `Err(RunFailure::out_of_memory("cuda: 2 GiB requested").into())`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RunFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl RunFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        RunFailure { kind, message: message.into() }
    }

    pub fn out_of_memory(message: impl Into<String>) -> Self {
        RunFailure::new(FailureKind::OutOfMemory, message)
    }

    pub fn non_finite_loss(message: impl Into<String>) -> Self {
        RunFailure::new(FailureKind::NonFiniteLoss, message)
    }
}

/// The kind of a trainer error: the first `RunFailure` in its chain, else `Error`.
pub fn failure_kind(err: &anyhow::Error) -> FailureKind {
    err.chain().find_map(|e| e.downcast_ref::<RunFailure>()).map_or(FailureKind::Error, |f| f.kind)
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEnd {
    Exited(i32),
    Signaled(i32),
}

impl WorkerEnd {
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => WorkerEnd::Exited(code),
            (None, Some(sig)) => WorkerEnd::Signaled(sig),
            (None, None) => WorkerEnd::Exited(-1),
        }
    }
}

/// The failure of a worker that ended without a result. `timeout_secs` is set when the
/// scheduler killed it for running too long.
pub fn classify_end(end: WorkerEnd, timeout_secs: Option<u64>) -> (FailureKind, String) {
    if let Some(secs) = timeout_secs {
        return (FailureKind::Timeout, format!("killed after the {secs} s timeout"));
    }
    match end {
        WorkerEnd::Exited(101) => (FailureKind::Panic, "the worker panicked (exit status 101)".into()),
        WorkerEnd::Exited(code) => {
            (FailureKind::Error, format!("the worker exited with status {code} without writing a result"))
        }
        WorkerEnd::Signaled(libc::SIGABRT) => (FailureKind::Panic, "the worker aborted (signal 6, SIGABRT)".into()),
        WorkerEnd::Signaled(sig) => {
            (FailureKind::Killed, format!("the worker was killed by signal {sig} ({})", signal_name(sig)))
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL: out of host memory, or killed from outside",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kind_is_found_through_context() {
        let err: anyhow::Result<()> = Err(RunFailure::out_of_memory("cuda alloc").into());
        let err = err.context("epoch 2").context("training").unwrap_err();
        assert_eq!(failure_kind(&err), FailureKind::OutOfMemory);
        assert_eq!(failure_kind(&anyhow::anyhow!("disk full")), FailureKind::Error);
        let nan = anyhow::Error::new(RunFailure::non_finite_loss("loss is NaN at step 7"));
        assert_eq!(failure_kind(&nan), FailureKind::NonFiniteLoss);
        assert_eq!(nan.to_string(), "loss is NaN at step 7");
    }

    #[test]
    fn kinds_serialise_as_documented() {
        let names: Vec<String> = [
            FailureKind::OutOfMemory,
            FailureKind::NonFiniteLoss,
            FailureKind::Panic,
            FailureKind::Error,
            FailureKind::Timeout,
            FailureKind::Killed,
        ]
        .iter()
        .map(|k| {
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json.as_str().unwrap(), k.as_str());
            k.to_string()
        })
        .collect();
        assert_eq!(names, ["oom", "non_finite_loss", "panic", "error", "timeout", "killed"]);
    }

    #[test]
    fn worker_ends_are_classified() {
        assert_eq!(classify_end(WorkerEnd::Signaled(9), Some(30)).0, FailureKind::Timeout);
        assert_eq!(classify_end(WorkerEnd::Exited(101), None).0, FailureKind::Panic);
        assert_eq!(classify_end(WorkerEnd::Signaled(libc::SIGABRT), None).0, FailureKind::Panic);
        assert_eq!(classify_end(WorkerEnd::Exited(1), None).0, FailureKind::Error);
        let (kind, reason) = classify_end(WorkerEnd::Signaled(9), None);
        assert_eq!(kind, FailureKind::Killed);
        assert!(reason.contains("signal 9"), "{reason}");
    }
}
