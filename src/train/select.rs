//! Choosing the epoch whose weights are restored for the test evaluation: the best
//! validation score by the chosen metric, the earliest on ties (transformers keeps the first
//! checkpoint that reached the best value).

use super::outcome::EpochRecord;

/// The validation quantity that selects the best epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectMetric {
    #[default]
    F1,
    Precision,
    Recall,
    Accuracy,
    /// Validation loss, lower is better.
    Loss,
}

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

    #[test]
    fn zero_scores_select_the_first_epoch() {
        let r = [rec(1, 0.0, 1.0), rec(2, 0.0, 1.0)];
        assert_eq!(best_epoch(&r, SelectMetric::F1), Some(1));
    }
}
