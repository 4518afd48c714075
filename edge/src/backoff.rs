//! How long a message waits before its next delivery when origin did not confirm it.

/// Exponential backoff: `base · 2^(attempt−1)` seconds, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failed delivery, in seconds.
    pub base_secs: u64,
    /// The longest delay, in seconds.
    pub max_secs: u64,
}

/// Cloudflare Queues refuse retry delays over 24 hours.
pub const MAX_QUEUE_DELAY_SECS: u64 = 24 * 60 * 60;

impl RetryPolicy {
    /// The delay before the next delivery of a message that has been delivered `attempts`
    /// times (Cloudflare counts the first delivery as 1).
    pub fn delay_secs(&self, attempts: u32) -> u32 {
        let doublings = attempts.saturating_sub(1).min(32);
        let delay = self.base_secs.saturating_mul(1u64 << doublings);
        let capped = delay.min(self.max_secs).min(MAX_QUEUE_DELAY_SECS);
        u32::try_from(capped).expect("capped at 24 hours")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_per_attempt_until_the_cap() {
        let p = RetryPolicy {
            base_secs: 30,
            max_secs: 600,
        };
        let delays: Vec<u32> = (1..=7).map(|a| p.delay_secs(a)).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 600, 600]);
    }

    #[test]
    fn huge_attempt_counts_stay_within_the_queue_limit() {
        let p = RetryPolicy {
            base_secs: 60,
            max_secs: u64::MAX,
        };
        assert_eq!(p.delay_secs(u32::MAX), MAX_QUEUE_DELAY_SECS as u32);
        assert_eq!(p.delay_secs(0), 60);
    }
}
