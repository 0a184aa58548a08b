//! The dry-run trainer: metrics are a deterministic function of the run id, so the whole
//! pipeline (plan, store, resume, report) can be exercised without ML. Never the default.

use sha2::{Digest, Sha256};

use super::trainer::{RunContext, RunOutput, RunProgress, Trainer};
use crate::plan::RunSpec;
use crate::store::{EpochRow, Scores};

/// `NERGRID_DRY_RUN_SLEEP_MS` makes each dry run sleep, so tests can interrupt a sweep.
pub struct DryRunTrainer {
    pub sleep_ms: u64,
}

impl DryRunTrainer {
    pub fn from_env() -> Self {
        let sleep_ms = std::env::var("NERGRID_DRY_RUN_SLEEP_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        DryRunTrainer { sleep_ms }
    }
}

/// Fractions in [0, 1) drawn from the run id.
fn fractions(id: &str) -> [f64; 4] {
    let d = Sha256::digest(id.as_bytes());
    let mut out = [0.0; 4];
    for (i, o) in out.iter_mut().enumerate() {
        let word = u32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]]);
        *o = f64::from(word) / (f64::from(u32::MAX) + 1.0);
    }
    out
}

/// Test scores of a dry run: F1 in [0.5, 0.9), precision above it, recall consistent with both.
pub fn dry_scores(id: &str) -> Scores {
    let [a, b, c, _] = fractions(id);
    let f1 = 0.5 + 0.4 * a;
    let precision = (f1 + 0.05 * b).min(1.0);
    let recall = precision * f1 / (2.0 * precision - f1);
    Scores { precision, recall, f1, accuracy: 0.9 + 0.09 * c }
}

impl Trainer for DryRunTrainer {
    fn is_dry_run(&self) -> bool {
        true
    }

    fn train(
        &self,
        run: &RunSpec,
        _ctx: &RunContext<'_>,
        progress: &mut dyn FnMut(RunProgress),
    ) -> anyhow::Result<RunOutput> {
        let test = dry_scores(&run.id);
        let epochs = run.typed.train.epochs.max(1);
        let mut rows = Vec::new();
        for epoch in 1..=epochs {
            if self.sleep_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(self.sleep_ms / epochs as u64));
            }
            let val_f1 = test.f1 * epoch as f64 / epochs as f64;
            rows.push(EpochRow {
                epoch,
                train_loss: 1.0 / epoch as f64,
                val_precision: val_f1,
                val_recall: val_f1,
                val_f1,
                learning_rate: run.typed.learning_rate * (epochs - epoch + 1) as f64 / epochs as f64,
                seconds: 0.0,
                tokens_per_sec: 0.0,
            });
            progress(RunProgress {
                epoch,
                epochs,
                step: epoch,
                steps: epochs,
                loss: 1.0 / epoch as f64,
                val_f1: Some(val_f1),
            });
        }
        let validation = Scores { precision: test.f1, recall: test.f1, f1: test.f1, accuracy: test.accuracy };
        Ok(RunOutput {
            test,
            validation: Some(validation),
            best_epoch: Some(epochs),
            epochs: rows,
            ..RunOutput::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_deterministic_consistent_and_id_dependent() {
        let s = dry_scores("kb-bio-lr2e-5-d-s1-0123abcd");
        assert_eq!(s, dry_scores("kb-bio-lr2e-5-d-s1-0123abcd"));
        assert_ne!(s.f1, dry_scores("kb-bio-lr2e-5-d-s2-89abcdef").f1);
        let f1 = 2.0 * s.precision * s.recall / (s.precision + s.recall);
        assert!((f1 - s.f1).abs() < 1e-12);
        assert!((0.5..0.9).contains(&s.f1) && s.precision <= 1.0 && s.recall <= 1.0);
    }
}
