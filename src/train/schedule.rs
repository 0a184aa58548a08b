//! The Trainer's linear learning-rate schedule with warmup, as a pure function of the step.

/// Warmup length: `warmup_steps` when at least 1, else `ceil(total * warmup_ratio)`.
pub fn warmup_steps(total: usize, warmup_steps: usize, warmup_ratio: f64) -> usize {
    if warmup_steps >= 1 {
        warmup_steps
    } else {
        (total as f64 * warmup_ratio).ceil() as usize
    }
}

/// The multiplier of the base learning rate at optimizer step `step` (0-based):
/// `step / max(1, warmup)` during warmup, then `max(0, (total - step) / max(1, total - warmup))`.
pub fn lr_factor(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    let left = total.saturating_sub(step) as f64;
    (left / total.saturating_sub(warmup).max(1) as f64).max(0.0)
}

/// A linear schedule over `total` optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    pub base_lr: f64,
    pub warmup: usize,
    pub total: usize,
}

impl LinearSchedule {
    pub fn new(base_lr: f64, total: usize, warmup_steps_: usize, warmup_ratio: f64) -> Self {
        LinearSchedule { base_lr, warmup: warmup_steps(total, warmup_steps_, warmup_ratio), total }
    }

    /// The learning rate of optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        self.base_lr * lr_factor(step, self.warmup, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_warmup_starts_at_full_rate_and_ends_at_one_over_total() {
        let s = LinearSchedule::new(1e-4, 210, 0, 0.0);
        assert_eq!(s.warmup, 0);
        assert_eq!(s.lr(0), 1e-4);
        assert!((s.lr(209) - 1e-4 / 210.0).abs() < 1e-18);
        assert!((s.lr(105) - 0.5e-4).abs() < 1e-18);
        assert_eq!(s.lr(210), 0.0);
    }

    #[test]
    fn warmup_ratio_rounds_up() {
        assert_eq!(warmup_steps(210, 0, 0.1), 21);
        assert_eq!(warmup_steps(205, 0, 0.1), 21);
        assert_eq!(warmup_steps(210, 5, 0.1), 5);
        let s = LinearSchedule::new(2.0, 10, 0, 0.2);
        let lrs: Vec<f64> = (0..10).map(|i| s.lr(i)).collect();
        assert_eq!(lrs, vec![0.0, 1.0, 2.0, 1.75, 1.5, 1.25, 1.0, 0.75, 0.5, 0.25]);
    }

    #[test]
    fn warmup_longer_than_training_never_decays() {
        let lrs: Vec<f64> = (0..4).map(|i| lr_factor(i, 8, 4)).collect();
        assert_eq!(lrs, vec![0.0, 0.125, 0.25, 0.375]);
    }
}
