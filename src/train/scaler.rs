//! Dynamic loss scaling for float16 training, with torch's `GradScaler` rules: the loss is
//! multiplied by the scale before the backward pass (so small gradients survive float16),
//! gradients are divided by it before clipping and the update; a step whose gradients hold an
//! inf or NaN is skipped and halves the scale, and 2000 clean steps in a row double it.

/// torch's defaults: `init_scale`, `growth_factor`, `backoff_factor`, `growth_interval`.
const INIT_SCALE: f64 = 65536.0;
const GROWTH: f64 = 2.0;
const BACKOFF: f64 = 0.5;
const GROWTH_INTERVAL: u32 = 2000;

/// The scale and its history.
#[derive(Debug, Clone, PartialEq)]
pub struct GradScaler {
    scale: f64,
    clean_steps: u32,
    skipped: usize,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler { scale: INIT_SCALE, clean_steps: 0, skipped: 0 }
    }
}

impl GradScaler {
    /// The factor the next loss is multiplied by.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Steps skipped so far for non-finite gradients.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Records a step's gradients; returns whether the optimizer step is taken.
    pub fn update(&mut self, gradients_finite: bool) -> bool {
        if !gradients_finite {
            self.scale *= BACKOFF;
            self.clean_steps = 0;
            self.skipped += 1;
            return false;
        }
        self.clean_steps += 1;
        if self.clean_steps == GROWTH_INTERVAL {
            self.scale *= GROWTH;
            self.clean_steps = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_two_to_the_sixteen() {
        assert_eq!(GradScaler::default().scale(), 65536.0);
    }

    #[test]
    fn an_overflow_skips_the_step_and_halves_the_scale() {
        let mut s = GradScaler::default();
        assert!(!s.update(false));
        assert_eq!((s.scale(), s.skipped()), (32768.0, 1));
        assert!(!s.update(false));
        assert_eq!((s.scale(), s.skipped()), (16384.0, 2));
    }

    #[test]
    fn two_thousand_clean_steps_double_the_scale() {
        let mut s = GradScaler::default();
        for _ in 0..1999 {
            assert!(s.update(true));
        }
        assert_eq!(s.scale(), 65536.0);
        assert!(s.update(true));
        assert_eq!(s.scale(), 131072.0);
        assert_eq!(s.skipped(), 0);
    }

    #[test]
    fn an_overflow_restarts_the_count_of_clean_steps() {
        let mut s = GradScaler::default();
        for _ in 0..1500 {
            s.update(true);
        }
        s.update(false);
        for _ in 0..1999 {
            s.update(true);
        }
        assert_eq!(s.scale(), 32768.0, "1999 clean steps since the overflow");
        s.update(true);
        assert_eq!(s.scale(), 65536.0);
    }
}
