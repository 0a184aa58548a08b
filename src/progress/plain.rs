//! One line of plain text per sweep event that matters (no step-by-step progress).

use std::collections::BTreeMap;

use crate::schedule::SweepEvent;
use crate::store::RunStatus;

/// Turns events into lines; counts finished runs for the `[k/n]` prefix.
#[derive(Debug, Default)]
pub struct PlainProgress {
    finished: usize,
    to_run: usize,
    /// Last epoch shown per run.
    epochs: BTreeMap<String, usize>,
}

impl PlainProgress {
    pub fn new() -> Self {
        PlainProgress::default()
    }

    /// The line for `event`, if it deserves one; never contains control characters.
    pub fn line(&mut self, event: &SweepEvent) -> Option<String> {
        self.text(event).map(|t| sanitize(&t))
    }

    fn text(&mut self, event: &SweepEvent) -> Option<String> {
        match event {
            SweepEvent::Planned { selected, to_run, done, failed } => {
                self.to_run = *to_run;
                Some(format!(
                    "{selected} runs selected: {to_run} to run, {done} already done, {failed} failed earlier (skipped)"
                ))
            }
            SweepEvent::Layout { slots, threads_per_run } => {
                Some(format!("devices: {}; {threads_per_run} thread(s) per run", slot_summary(slots)))
            }
            SweepEvent::Warning(w) => Some(format!("warning: {w}")),
            SweepEvent::RunStarted { index, id, device, attempt, micro_batch, grad_accum } => {
                let retry = if *attempt > 1 {
                    format!(" (attempt {attempt}, micro-batch {micro_batch}, accumulation {grad_accum})")
                } else {
                    String::new()
                };
                Some(format!("{} start #{index} {id} on {device}{retry}", self.counter()))
            }
            SweepEvent::Progress { id, progress: p } => {
                let f1 = p.val_f1?;
                let last = self.epochs.entry(id.clone()).or_insert(0);
                (p.epoch > *last).then(|| {
                    *last = p.epoch;
                    format!("  {id} epoch {}/{} loss {:.4} val_f1 {f1:.4}", p.epoch, p.epochs, p.loss)
                })
            }
            SweepEvent::RunFinished { id, status, seconds, test_f1, error, failure_kind, .. } => {
                self.finished += 1;
                self.epochs.remove(id);
                let n = self.counter();
                Some(match status {
                    RunStatus::Done => {
                        let f1 = test_f1.map_or("-".into(), |f| format!("{f:.4}"));
                        format!("{n} done {id} test_f1={f1} in {seconds:.1}s")
                    }
                    RunStatus::Failed => {
                        let kind = failure_kind.map_or(String::new(), |k| format!(" ({k})"));
                        format!("{n} FAILED{kind} {id}: {}", error.clone().unwrap_or_default())
                    }
                })
            }
            SweepEvent::Retrying { id, attempt, kind, error, micro_batch, grad_accum, .. } => Some(format!(
                "retry {id} (attempt {attempt}, micro-batch {micro_batch}, accumulation {grad_accum}) after {kind}: {}",
                error.clone().unwrap_or_default()
            )),
            SweepEvent::HeldElsewhere { id, holder, .. } => {
                Some(format!("{id} is held by {holder}; waiting for it before finishing"))
            }
            SweepEvent::FinishedElsewhere { id, status, .. } => {
                self.finished += 1;
                let word = if *status == RunStatus::Done { "done" } else { "failed" };
                Some(format!("{} {id} {word} by another process", self.counter()))
            }
            SweepEvent::Waiting { ids } => Some(waiting_line(ids)),
            SweepEvent::Interrupted { second: false, running } => Some(format!(
                "interrupt: starting no new runs; waiting for {running} running run(s) (interrupt again to stop them)"
            )),
            SweepEvent::Interrupted { second: true, running } => {
                Some(format!("second interrupt: stopping {running} running run(s); they stay pending"))
            }
            SweepEvent::RunStopped { id, .. } => Some(format!("stopped {id}; left pending")),
        }
    }

    fn counter(&self) -> String {
        format!("[{}/{}]", self.finished, self.to_run)
    }
}

/// `cuda:0 x2, cuda:1 x2` from one label per slot, in first-seen order.
fn slot_summary(slots: &[String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for s in slots {
        match counts.iter_mut().find(|(l, _)| l == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    counts.iter().map(|(l, n)| format!("{l} x{n}")).collect::<Vec<_>>().join(", ")
}

fn waiting_line(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
    let more = if ids.len() > 5 { format!(" and {} more", ids.len() - 5) } else { String::new() };
    format!("waiting for {} run(s) held by other processes: {}{more}", ids.len(), shown.join(", "))
}

/// Replaces control characters (newlines, escapes) by spaces.
pub fn sanitize(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{FailureKind, RunProgress};

    fn finished(id: &str, status: RunStatus, error: Option<&str>) -> SweepEvent {
        SweepEvent::RunFinished {
            index: 0,
            id: id.into(),
            status,
            seconds: 1.25,
            test_f1: (status == RunStatus::Done).then_some(0.8123),
            error: error.map(String::from),
            failure_kind: error.map(|_| FailureKind::NonFiniteLoss),
        }
    }

    #[test]
    fn lines_of_a_small_sweep() {
        let mut p = PlainProgress::new();
        let events = [
            SweepEvent::Planned { selected: 3, to_run: 2, done: 1, failed: 0 },
            SweepEvent::Layout { slots: vec!["cuda:0".into(), "cuda:1".into(), "cuda:0".into()], threads_per_run: 4 },
            SweepEvent::RunStarted {
                index: 0,
                id: "a".into(),
                device: "cuda:0".into(),
                attempt: 2,
                micro_batch: 8,
                grad_accum: 2,
            },
            SweepEvent::Progress {
                id: "a".into(),
                progress: RunProgress { epoch: 1, epochs: 2, step: 5, steps: 10, loss: 0.5, val_f1: None },
            },
            SweepEvent::Progress {
                id: "a".into(),
                progress: RunProgress { epoch: 1, epochs: 2, step: 5, steps: 10, loss: 0.25, val_f1: Some(0.7) },
            },
            SweepEvent::Progress {
                id: "a".into(),
                progress: RunProgress { epoch: 2, epochs: 2, step: 8, steps: 10, loss: 0.2, val_f1: None },
            },
            SweepEvent::Progress {
                id: "a".into(),
                progress: RunProgress { epoch: 2, epochs: 2, step: 10, steps: 10, loss: 0.125, val_f1: Some(0.75) },
            },
            SweepEvent::Progress {
                id: "a".into(),
                progress: RunProgress { epoch: 2, epochs: 2, step: 10, steps: 10, loss: 0.125, val_f1: Some(0.75) },
            },
            finished("a", RunStatus::Done, None),
            finished("b", RunStatus::Failed, Some("loss is NaN\n\x1b[31mat step 3")),
        ];
        let lines: Vec<String> = events.iter().filter_map(|e| p.line(e)).collect();
        assert_eq!(
            lines,
            [
                "3 runs selected: 2 to run, 1 already done, 0 failed earlier (skipped)",
                "devices: cuda:0 x2, cuda:1 x1; 4 thread(s) per run",
                "[0/2] start #0 a on cuda:0 (attempt 2, micro-batch 8, accumulation 2)",
                "  a epoch 1/2 loss 0.2500 val_f1 0.7000",
                "  a epoch 2/2 loss 0.1250 val_f1 0.7500",
                "[1/2] done a test_f1=0.8123 in 1.2s",
                "[2/2] FAILED (non_finite_loss) b: loss is NaN  [31mat step 3",
            ]
        );
        assert!(lines.iter().all(|l| !l.chars().any(char::is_control)));
    }

    #[test]
    fn waiting_lists_at_most_five() {
        let ids: Vec<String> = (0..7).map(|i| format!("r{i}")).collect();
        assert_eq!(waiting_line(&ids), "waiting for 7 run(s) held by other processes: r0, r1, r2, r3, r4 and 2 more");
    }
}
