//! Terminal bars: one for the grid (runs done and failed of the total, elapsed, ETA) and one
//! per active run (id, device, epoch, step of steps, loss, last validation F1). Events that
//! deserve a line (finished runs, retries, warnings) are printed above the bars.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::plain::PlainProgress;
use super::Render;
use crate::schedule::{RunProgress, SweepEvent};
use crate::store::RunStatus;

pub struct BarProgress {
    multi: MultiProgress,
    grid: ProgressBar,
    runs: HashMap<String, ProgressBar>,
    /// The last validation F1 of each run, shown until the next epoch's.
    last_val: HashMap<String, f64>,
    run_style: ProgressStyle,
    lines: PlainProgress,
    done: usize,
    failed: usize,
}

impl BarProgress {
    pub fn new(colors: bool) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let (grid_template, run_template) = if colors {
            (
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {msg} {elapsed_precise} ETA {eta}",
                "  {prefix:.dim} [{bar:20.green/white}] {pos}/{len} {msg}",
            )
        } else {
            (
                "{prefix} [{bar:30}] {pos}/{len} {msg} {elapsed_precise} ETA {eta}",
                "  {prefix} [{bar:20}] {pos}/{len} {msg}",
            )
        };
        let style = |t: &str| ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_bar());
        let grid = multi.add(ProgressBar::new(0).with_style(style(grid_template)).with_prefix("grid"));
        grid.enable_steady_tick(Duration::from_millis(500));
        BarProgress {
            multi,
            grid,
            runs: HashMap::new(),
            last_val: HashMap::new(),
            run_style: style(run_template),
            lines: PlainProgress::new(),
            done: 0,
            failed: 0,
        }
    }

    fn println(&self, line: Option<String>) {
        if let Some(line) = line {
            let _ = self.multi.println(line);
        }
    }

    fn finished(&mut self, id: &str, status: RunStatus) {
        if let Some(bar) = self.runs.remove(id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        match status {
            RunStatus::Done => self.done += 1,
            RunStatus::Failed => self.failed += 1,
        }
        self.grid.inc(1);
        self.grid.set_message(format!("done {} failed {}", self.done, self.failed));
    }
}

impl Render for BarProgress {
    fn event(&mut self, event: &SweepEvent) {
        let line = self.lines.line(event);
        match event {
            SweepEvent::Planned { to_run, .. } => {
                self.grid.set_length(*to_run as u64);
                self.grid.set_message("done 0 failed 0");
                self.println(line);
            }
            SweepEvent::RunStarted { id, device, .. } => {
                let bar = self.multi.add(ProgressBar::new(0).with_style(self.run_style.clone()));
                bar.set_prefix(format!("{id} {device}"));
                bar.set_message("starting");
                if let Some(old) = self.runs.insert(id.clone(), bar) {
                    old.finish_and_clear();
                }
            }
            SweepEvent::Progress { id, progress } => {
                if let Some(bar) = self.runs.get(id) {
                    if let Some(f1) = progress.val_f1 {
                        self.last_val.insert(id.clone(), f1);
                    }
                    let shown = RunProgress { val_f1: self.last_val.get(id).copied(), ..progress.clone() };
                    bar.set_length(progress.steps as u64);
                    bar.set_position(progress.step as u64);
                    bar.set_message(run_message(&shown));
                }
            }
            SweepEvent::RunFinished { id, status, .. } | SweepEvent::FinishedElsewhere { id, status, .. } => {
                self.finished(id, *status);
                self.println(line);
            }
            SweepEvent::RunStopped { id, .. } => {
                if let Some(bar) = self.runs.remove(id) {
                    bar.finish_and_clear();
                }
                self.println(line);
            }
            _ => self.println(line),
        }
    }

    fn finish(&mut self) {
        for (_, bar) in self.runs.drain() {
            bar.finish_and_clear();
        }
        self.grid.finish();
    }
}

/// The text of a run's bar: `epoch 2/5 loss 0.1234 val_f1 0.8123` (the last validation F1).
pub fn run_message(p: &RunProgress) -> String {
    let f1 = p.val_f1.map_or("-".into(), |f| format!("{f:.4}"));
    format!("epoch {}/{} loss {:.4} val_f1 {f1}", p.epoch, p.epochs, p.loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_line_shows_epoch_loss_and_f1() {
        let mut p = RunProgress { epoch: 2, epochs: 5, step: 3, steps: 9, loss: 0.123456, val_f1: None };
        assert_eq!(run_message(&p), "epoch 2/5 loss 0.1235 val_f1 -");
        p.val_f1 = Some(0.8);
        assert_eq!(run_message(&p), "epoch 2/5 loss 0.1235 val_f1 0.8000");
    }
}
