//! Choosing the epoch whose weights are restored for the test evaluation: the best
//! validation score by the chosen metric, the earliest on ties (transformers keeps the first
//! checkpoint that reached the best value).

use super::outcome::EpochRecord;

pub use crate::spec::SelectMetric;

/// The value of `metric` in `record`, oriented so that larger is better.
fn score(record: &EpochRecord, metric: SelectMetric) -> f64 {
    match metric {
        SelectMetric::F1 => record.val.f1,
        SelectMetric::Precision => record.val.precision,
        SelectMetric::Recall => record.val.recall,
        SelectMetric::Accuracy => record.val.accuracy,
        SelectMetric::Loss => -record.val_loss,
    }
}

/// The epoch number (as recorded) of the best record; `None` for no records. NaN scores
/// never win.
pub fn best_epoch(records: &[EpochRecord], metric: SelectMetric) -> Option<usize> {
    let mut best: Option<(&EpochRecord, f64)> = None;
    for record in records {
        let s = score(record, metric);
        let better = match best {
            None => true,
            Some((_, b)) => s > b || (b.is_nan() && !s.is_nan()),
        };
        if better {
            best = Some((record, s));
        }
    }
    best.map(|(r, _)| r.epoch)
}

/// transformers' `EarlyStoppingCallback` replayed over the evaluations so far: whether training
/// stops after the last one. The callback runs before the Trainer updates its best metric, so
/// each evaluation is compared with the best of the earlier ones (`-inf` once the first has
/// run, raised by any larger value; NaN never raises it). An evaluation that beats it by more
/// than `threshold` resets the patience counter, any other adds one; training stops when the
/// counter reaches `patience`. `patience` 0 is off.
pub fn stops_early(records: &[EpochRecord], metric: SelectMetric, patience: usize, threshold: f64) -> bool {
    if patience == 0 {
        return false;
    }
    let mut best: Option<f64> = None;
    let mut counter = 0;
    for record in records {
        let value = score(record, metric);
        let improved = best.is_none_or(|b| value > b && (value - b).abs() > threshold);
        counter = if improved { 0 } else { counter + 1 };
        let so_far = best.unwrap_or(f64::NEG_INFINITY);
        best = Some(if value > so_far { value } else { so_far });
    }
    counter >= patience
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::outcome::EvalScores;

    fn rec(epoch: usize, f1: f64, loss: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 0.0,
            val: EvalScores { precision: f1, recall: f1, f1, accuracy: f1 },
            val_loss: loss,
            learning_rate: 0.0,
            seconds: 0.0,
            eval_seconds: 0.0,
            tokens_per_sec: 0.0,
        }
    }

    #[test]
    fn earliest_best_wins_ties() {
        let r = [rec(1, 0.5, 1.0), rec(2, 0.7, 0.9), rec(3, 0.7, 0.8), rec(4, 0.6, 0.7)];
        assert_eq!(best_epoch(&r, SelectMetric::F1), Some(2));
        assert_eq!(best_epoch(&r, SelectMetric::Loss), Some(4));
        assert_eq!(best_epoch(&[], SelectMetric::F1), None);
    }

    #[test]
    fn nan_never_wins() {
        let r = [rec(1, f64::NAN, 1.0), rec(2, 0.1, 1.0), rec(3, f64::NAN, 1.0)];
        assert_eq!(best_epoch(&r, SelectMetric::F1), Some(2));
    }

    /// The first epoch after which each prefix of `f1s` stops, as the trainer would see it.
    fn stop_epoch(f1s: &[f64], patience: usize, threshold: f64) -> Option<usize> {
        let records: Vec<EpochRecord> = f1s.iter().enumerate().map(|(i, &f)| rec(i + 1, f, 0.0)).collect();
        (1..=records.len()).find(|&n| stops_early(&records[..n], SelectMetric::F1, patience, threshold))
    }

    #[test]
    fn early_stopping_follows_the_transformers_callback() {
        // Patience 1 stops at the first epoch that does not improve on the best so far.
        assert_eq!(stop_epoch(&[0.5, 0.6, 0.55, 0.7], 1, 0.0), Some(3));
        // Patience 2 needs two in a row without improvement; an improvement resets the count.
        assert_eq!(stop_epoch(&[0.5, 0.4, 0.6, 0.5, 0.7], 2, 0.0), None);
        assert_eq!(stop_epoch(&[0.5, 0.4, 0.45, 0.6], 2, 0.0), Some(3));
        // An equal score is no improvement (strictly greater, as np.greater).
        assert_eq!(stop_epoch(&[0.5, 0.5], 1, 0.0), Some(2));
        // The threshold: +0.25 is not more than 0.25, so it counts against patience.
        assert_eq!(stop_epoch(&[0.5, 0.75, 1.0], 1, 0.25), Some(2));
        assert_eq!(stop_epoch(&[0.5, 0.875, 0.9], 1, 0.25), Some(3));
        // Compared with the best so far, not the previous epoch.
        assert_eq!(stop_epoch(&[0.7, 0.5, 0.6], 2, 0.0), Some(3));
        // Off at patience 0; NaN never improves and never becomes the best.
        assert_eq!(stop_epoch(&[0.5, 0.4, 0.3], 0, 0.0), None);
        assert_eq!(stop_epoch(&[0.5, f64::NAN], 1, 0.0), Some(2));
        assert_eq!(stop_epoch(&[f64::NAN, 0.1, 0.2], 1, 0.0), None);
        // Loss is better when lower.
        let losses = [rec(1, 0.0, 1.0), rec(2, 0.0, 0.8), rec(3, 0.0, 0.9)];
        assert!(!stops_early(&losses[..2], SelectMetric::Loss, 1, 0.0));
        assert!(stops_early(&losses, SelectMetric::Loss, 1, 0.0));
    }

    #[test]
    fn zero_scores_select_the_first_epoch() {
        let r = [rec(1, 0.0, 1.0), rec(2, 0.0, 1.0)];
        assert_eq!(best_epoch(&r, SelectMetric::F1), Some(1));
    }
}
