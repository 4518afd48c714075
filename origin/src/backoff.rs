//! Retry delays: exponential backoff with jitter.
//!
//! The delay for the n-th failed attempt is drawn from `[d/2, d]` with
//! `d = min(base · 2^(n-1), max)` ("equal jitter"): retries of events that failed together
//! spread out, and each attempt still waits at least as long as the previous one could have.
//! The delay is stored in the row's `run_at`, so it survives restarts.

use std::time::Duration;

use rand::Rng;

/// The retry policy of the workers.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// A policy starting at `base` and capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The ceiling `d` for the `attempt`-th failure (1-based).
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exp = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.base.saturating_mul(1 << exp).min(self.max)
    }

    /// A jittered delay for the `attempt`-th failure (1-based), in `[d/2, d]`.
    pub fn delay(&self, attempt: i32, rng: &mut impl Rng) -> Duration {
        let d = self.ceiling(attempt);
        let half = d / 2;
        half + half.mul_f64(rng.gen::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_bounds_and_stop_at_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut rng = rand::thread_rng();
        for attempt in 1..=10 {
            let d = b.ceiling(attempt);
            let expected =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert_eq!(d, expected);
            for _ in 0..100 {
                let got = b.delay(attempt, &mut rng);
                assert!(
                    got >= d / 2 && got <= d,
                    "{got:?} outside [{:?}, {d:?}]",
                    d / 2
                );
            }
        }
    }
}
