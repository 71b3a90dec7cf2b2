//! How long a step waits before it is tried again after a transient error:
//! exponential backoff, capped, with random jitter so that many jobs hit by
//! the same outage do not all come back at the same instant.

use std::time::Duration;

/// When and how often a step that failed transiently is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first run included); after the last one the job fails.
    pub max_attempts: u32,
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
    /// Each further delay is this many times the one before.
    pub factor: f64,
    /// Fraction of each delay that is random (0.0: none, 1.0: anywhere from 0
    /// to the full delay): the delay is `base * (1 - jitter * r)`, `r` in [0, 1).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Attempts in all, at least one however the policy was filled in.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// Whether a step whose attempt number `attempt` (1 for the first run)
    /// failed transiently gets another one.
    pub fn retries_after(&self, attempt: u32) -> bool {
        attempt < self.attempts()
    }

    /// The delay without jitter after failed attempt `attempt` (1-based):
    /// `initial * factor^(attempt-1)`, capped at `max`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1024) as i32;
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        // In whole nanoseconds, so that 40 ms times 2 is 80 ms, not a hair less.
        let nanos = self.initial.as_nanos() as f64 * factor.powi(exponent);
        let cap = self.max.max(self.initial).as_nanos() as f64;
        // `min` also catches an overflow to infinity.
        Duration::from_nanos(nanos.min(cap).max(0.0).round() as u64)
    }

    /// The delay after failed attempt `attempt`, jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter == 0.0 {
            return base;
        }
        base.mul_f64(1.0 - jitter * unit_random())
    }
}

/// A random number in [0, 1). Jitter needs no cryptographic quality, only
/// different values in different processes and calls; the system generator
/// is used because it is already linked, and a failure means no jitter.
fn unit_random() -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.0;
    }
    // 53 random bits make every double in [0, 1) with a uniform spacing.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
