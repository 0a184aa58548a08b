//! Plain-text rendering of sweep events for terminals and logs (one line per event).

use crate::schedule::SweepEvent;
use crate::store::RunStatus;

/// Renders events as lines on stderr; `total` is the number of selected runs.
pub struct PlainProgress {
    finished: usize,
    to_run: usize,
}

impl PlainProgress {
    pub fn new() -> Self {
        PlainProgress { finished: 0, to_run: 0 }
    }

    pub fn line(&mut self, event: &SweepEvent) -> Option<String> {
        match event {
            SweepEvent::Planned { selected, to_run, done, failed } => {
                self.to_run = *to_run;
                Some(format!(
                    "{selected} runs selected: {to_run} to run, {done} already done, {failed} failed earlier (skipped)"
                ))
            }
            SweepEvent::Warning(w) => Some(format!("warning: {w}")),
            SweepEvent::RunStarted { index, id, device } => {
                Some(format!("[{}/{}] start #{index} {id} on {device}", self.finished + 1, self.to_run))
            }
            SweepEvent::Progress { .. } => None,
            SweepEvent::RunFinished { id, status, seconds, test_f1, error, .. } => {
                self.finished += 1;
                let n = format!("[{}/{}]", self.finished, self.to_run);
                Some(match status {
                    RunStatus::Done => {
                        format!(
                            "{n} done {id} test_f1={} in {seconds:.1}s",
                            test_f1.map_or("-".into(), |f| format!("{f:.4}"))
                        )
                    }
                    RunStatus::Failed => format!("{n} FAILED {id}: {}", error.clone().unwrap_or_default()),
                })
            }
        }
    }
}
