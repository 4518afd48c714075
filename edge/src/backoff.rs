//! How long a message waits before its next delivery when origin did not confirm it.

use std::time::Duration;

use wholesail_backoff::Backoff;

/// Exponential backoff with equal jitter: the ceiling is `base · 2^(attempt−1)` seconds,
/// capped at `max`; the delay is drawn uniformly from its upper half, `[⌈ceiling/2⌉, ceiling]`
/// whole seconds. The jitter spreads the retries of messages that failed together (one batch,
/// one origin outage) so they do not return to origin at the same second; keeping the lower
/// half out keeps the backoff growing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the delay after the first failed delivery, in seconds.
    pub base_secs: u64,
    /// The longest delay, in seconds.
    pub max_secs: u64,
}

/// Cloudflare Queues refuse retry delays over 24 hours.
pub const MAX_QUEUE_DELAY_SECS: u64 = 24 * 60 * 60;

impl RetryPolicy {
    /// The shared backoff with this policy's seconds, capped at the queue's limit.
    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_secs(self.base_secs),
            Duration::from_secs(self.max_secs.min(MAX_QUEUE_DELAY_SECS)),
        )
    }

    /// The delay ceiling for a message that has been delivered `attempts` times (Cloudflare
    /// counts the first delivery as 1).
    pub fn ceiling_secs(&self, attempts: u32) -> u32 {
        let capped = self.backoff().ceiling(attempts).as_secs();
        u32::try_from(capped).expect("capped at 24 hours")
    }

    /// The delay before the next delivery, with `unit` a uniform random number in `[0, 1)`
    /// (the worker passes `Math.random()`); see [`RetryPolicy`]. Whole seconds, rounded up.
    pub fn delay_secs(&self, attempts: u32, unit: f64) -> u32 {
        let delay = self
            .backoff()
            .equal_jitter(attempts, unit)
            .as_secs_f64()
            .ceil();
        (delay as u32).min(self.ceiling_secs(attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_per_attempt_until_the_cap() {
        let p = RetryPolicy {
            base_secs: 30,
            max_secs: 600,
        };
        let delays: Vec<u32> = (1..=7).map(|a| p.ceiling_secs(a)).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 600, 600]);
    }

    #[test]
    fn huge_attempt_counts_stay_within_the_queue_limit() {
        let p = RetryPolicy {
            base_secs: 60,
            max_secs: u64::MAX,
        };
        assert_eq!(p.ceiling_secs(u32::MAX), MAX_QUEUE_DELAY_SECS as u32);
        assert_eq!(p.ceiling_secs(0), 60);
        assert!(p.delay_secs(u32::MAX, 0.999_999) <= MAX_QUEUE_DELAY_SECS as u32);
    }

    /// Fails before the jitter: every message got exactly the ceiling.
    #[test]
    fn delays_vary_within_the_upper_half_of_the_ceiling() {
        let p = RetryPolicy {
            base_secs: 30,
            max_secs: 3600,
        };
        // A fixed spread of unit draws (a low-discrepancy sequence), as Math.random() gives.
        let units: Vec<f64> = (0..200)
            .map(|i| (f64::from(i) * 0.618_033_988_75) % 1.0)
            .collect();
        for attempts in 1..=9 {
            let ceiling = p.ceiling_secs(attempts);
            let delays: Vec<u32> = units.iter().map(|&u| p.delay_secs(attempts, u)).collect();
            let (lo, hi) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
            assert!(
                *lo >= ceiling.div_ceil(2),
                "attempt {attempts}: {lo} below half of {ceiling}"
            );
            assert!(*hi <= ceiling, "attempt {attempts}: {hi} above {ceiling}");
            let floor = ceiling.div_ceil(2);
            assert!(
                hi - lo >= (ceiling - floor) * 3 / 4,
                "attempt {attempts}: delays {lo}..={hi} barely vary"
            );
            assert_eq!(p.delay_secs(attempts, 0.0), floor);
            assert_eq!(p.delay_secs(attempts, 0.999_999_9), ceiling);
        }
        // Out-of-range draws stay in bounds.
        for u in [-1.0, 1.0, 7.5, f64::NAN, f64::INFINITY] {
            let d = p.delay_secs(3, u);
            assert!((60..=120).contains(&d), "{u}: {d}");
        }
    }

    #[test]
    fn a_one_second_ceiling_stays_one_second() {
        let p = RetryPolicy {
            base_secs: 1,
            max_secs: 1,
        };
        assert!([0.0, 0.5, 0.99].iter().all(|&u| p.delay_secs(4, u) == 1));
    }
}
