//! The retry rule: what the scheduler does after an attempt of a run failed. Pure.
//!
//! - Out of memory: retried with the micro-batch halved (gradient accumulation doubled, so the
//!   effective batch stays the recipe's) while the micro-batch is above 1. These retries do not
//!   use up `[schedule] retries`: they change the attempt, not just repeat it.
//! - Non-finite loss and timeout: never retried (the same recipe would fail again).
//! - Panic, error, killed: retried while fewer than `retries` retries were made.

use super::failure::FailureKind;
use super::trainer::micro_batch;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Run again with this gradient accumulation; `uses_retry` says whether it counts
    /// against `[schedule] retries`.
    Retry { grad_accum: usize, uses_retry: bool },
    /// Record the failure and move on.
    GiveUp,
}

/// Where a run stands after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAttempt {
    pub kind: FailureKind,
    pub batch_size: usize,
    pub grad_accum: usize,
    /// Retries that counted against the limit so far.
    pub retries_used: usize,
}

pub fn decide_retry(failed: &FailedAttempt, retries: usize) -> RetryDecision {
    match failed.kind {
        FailureKind::OutOfMemory => halve_micro_batch(failed.batch_size, failed.grad_accum),
        FailureKind::NonFiniteLoss | FailureKind::Timeout => RetryDecision::GiveUp,
        FailureKind::Panic | FailureKind::Error | FailureKind::Killed if failed.retries_used < retries => {
            RetryDecision::Retry { grad_accum: failed.grad_accum, uses_retry: true }
        }
        FailureKind::Panic | FailureKind::Error | FailureKind::Killed => RetryDecision::GiveUp,
    }
}

/// The accumulation that makes the micro-batch at most half (rounded up) of the current one.
fn halve_micro_batch(batch_size: usize, grad_accum: usize) -> RetryDecision {
    let current = micro_batch(batch_size, grad_accum);
    if current <= 1 {
        return RetryDecision::GiveUp;
    }
    let target = current.div_ceil(2);
    RetryDecision::Retry { grad_accum: batch_size.max(1).div_ceil(target), uses_retry: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: FailureKind, batch_size: usize, grad_accum: usize, retries_used: usize) -> FailedAttempt {
        FailedAttempt { kind, batch_size, grad_accum, retries_used }
    }

    #[test]
    fn oom_halves_the_micro_batch_until_one() {
        let mut ga = 1;
        let mut seen = vec![micro_batch(16, ga)];
        while let RetryDecision::Retry { grad_accum, uses_retry } =
            decide_retry(&failed(FailureKind::OutOfMemory, 16, ga, 0), 0)
        {
            assert!(!uses_retry);
            assert_eq!(grad_accum, 2 * ga, "accumulation doubles for a power-of-two batch");
            ga = grad_accum;
            seen.push(micro_batch(16, ga));
        }
        assert_eq!(seen, [16, 8, 4, 2, 1]);
    }

    #[test]
    fn oom_on_an_odd_batch_still_shrinks_strictly() {
        let mut ga = 1;
        let mut seen = vec![micro_batch(12, ga)];
        while let RetryDecision::Retry { grad_accum, .. } =
            decide_retry(&failed(FailureKind::OutOfMemory, 12, ga, 0), 0)
        {
            ga = grad_accum;
            seen.push(micro_batch(12, ga));
        }
        assert_eq!(seen, [12, 6, 3, 2, 1]);
        assert_eq!(ga, 12);
    }

    #[test]
    fn deterministic_failures_are_not_retried() {
        for kind in [FailureKind::NonFiniteLoss, FailureKind::Timeout] {
            assert_eq!(decide_retry(&failed(kind, 16, 1, 0), 5), RetryDecision::GiveUp, "{kind}");
        }
    }

    #[test]
    fn other_failures_use_the_retry_budget() {
        for kind in [FailureKind::Panic, FailureKind::Error, FailureKind::Killed] {
            assert_eq!(
                decide_retry(&failed(kind, 16, 4, 0), 2),
                RetryDecision::Retry { grad_accum: 4, uses_retry: true },
                "{kind}"
            );
            assert_eq!(decide_retry(&failed(kind, 16, 4, 2), 2), RetryDecision::GiveUp, "{kind}");
            assert_eq!(decide_retry(&failed(kind, 16, 1, 0), 0), RetryDecision::GiveUp, "{kind}");
        }
    }
}
