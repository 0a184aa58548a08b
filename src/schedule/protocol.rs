//! What a worker tells its scheduler: one JSON object per line on the report pipe (the fd named
//! by `NERGRID_REPORT_FD`). The scheduler treats a worker that exits without `finished` as crashed.

use serde::{Deserialize, Serialize};

use super::failure::FailureKind;
use super::trainer::RunProgress;
use crate::store::RunStatus;

/// Environment variable naming the fd a worker writes its reports to.
pub const REPORT_FD_ENV: &str = "NERGRID_REPORT_FD";
/// The fd number the scheduler gives its workers.
pub const REPORT_FD: i32 = 3;
/// Worker exit status when its lock was taken over mid-run (it wrote no result).
pub const EXIT_LOST_LOCK: i32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum WorkerReport {
    /// The run is claimed and the trainer starts.
    Running {
        micro_batch: usize,
    },
    /// A live process holds the run's lock; nothing was done.
    Held {
        holder: String,
    },
    /// After claiming, the run's result was no longer what the scheduler saw: another process
    /// finished it. Nothing was done.
    FinishedElsewhere,
    Progress(RunProgress),
    /// The result is written.
    Finished {
        status: RunStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_kind: Option<FailureKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_f1: Option<f64>,
        seconds: f64,
    },
    /// The worker could not start the run (bad spec, unknown run, store error).
    Error {
        message: String,
    },
}

impl WorkerReport {
    /// One line of the protocol, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_one_per_line() {
        let reports = [
            WorkerReport::Running { micro_batch: 8 },
            WorkerReport::Held { holder: "pid 1 on h".into() },
            WorkerReport::FinishedElsewhere,
            WorkerReport::Progress(RunProgress { epoch: 1, epochs: 3, step: 5, steps: 10, loss: 0.5, val_f1: None }),
            WorkerReport::Finished {
                status: RunStatus::Failed,
                failure_kind: Some(FailureKind::NonFiniteLoss),
                error: Some("loss is NaN\nat step 3".into()),
                test_f1: None,
                seconds: 1.5,
            },
            WorkerReport::Error { message: "x".into() },
        ];
        for r in reports {
            let line = r.to_line();
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert_eq!(WorkerReport::parse(&line).unwrap(), r);
        }
        let line = WorkerReport::Running { micro_batch: 4 }.to_line();
        assert_eq!(line, "{\"report\":\"running\",\"micro_batch\":4}\n");
    }
}
