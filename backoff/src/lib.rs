//! Exponential backoff, the one implementation: a ceiling `base · 2^(attempt−1)` capped at
//! `max`, and a delay drawn under it from a uniform number in `[0, 1)` that the caller supplies
//! (origin and the Shopify client pass `rand`, the edge `Math.random()`), so this crate needs
//! no random source and runs in the edge's wasm.
//!
//! - [`Backoff::equal_jitter`], in `[d/2, d]`: retries of work that failed together spread
//!   out, and each waits at least as long as the previous one could have (origin's workers,
//!   draft-order jobs and callbacks, the edge's queue retries).
//! - [`Backoff::full_jitter`], in `[0, d]`: the most spread, for clients competing for one
//!   server's capacity (the Shopify client's retries).

use std::time::Duration;

/// A backoff policy: the first ceiling and the largest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// A policy whose ceiling starts at `base` and stops at `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The ceiling `d` after `attempt` failures (1-based; 0 counts as 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// A delay in `[d/2, d]` for `unit` in `[0, 1)` (out-of-range or non-finite draws are
    /// clamped, never a panic).
    pub fn equal_jitter(&self, attempt: u32, unit: f64) -> Duration {
        let d = self.ceiling(attempt);
        let half = d / 2;
        half + part(d - half, unit)
    }

    /// A delay in `[0, d]` for `unit` in `[0, 1)` (clamped as above).
    pub fn full_jitter(&self, attempt: u32, unit: f64) -> Duration {
        part(self.ceiling(attempt), unit)
    }
}

/// `span · unit`, with `unit` clamped to `[0, 1]` (non-finite: 0), never more than `span`.
fn part(span: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(span.as_secs_f64() * unit)
        .unwrap_or(span)
        .min(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A fixed spread of draws in `[0, 1)` (a low-discrepancy sequence).
    fn units() -> impl Iterator<Item = f64> {
        (0..200).map(|i| (f64::from(i) * 0.618_033_988_75) % 1.0)
    }

    #[test]
    fn the_ceiling_doubles_per_attempt_until_the_cap() {
        let b = Backoff::new(100 * MS, 1000 * MS);
        let ceilings: Vec<u128> = (0..=6).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 100, 200, 400, 800, 1000, 1000]);
        let huge = Backoff::new(Duration::from_secs(60), Duration::MAX);
        assert_eq!(huge.ceiling(u32::MAX), Duration::from_secs(60) * (1 << 31));
    }

    #[test]
    fn equal_jitter_stays_in_the_upper_half_and_varies() {
        let b = Backoff::new(100 * MS, Duration::from_secs(10));
        for attempt in 1..=9 {
            let d = b.ceiling(attempt);
            let delays: Vec<Duration> = units().map(|u| b.equal_jitter(attempt, u)).collect();
            let (lo, hi) = (*delays.iter().min().unwrap(), *delays.iter().max().unwrap());
            assert!(
                lo >= d / 2 && hi <= d,
                "{attempt}: {lo:?}..={hi:?} outside [d/2, {d:?}]"
            );
            assert!(
                hi - lo >= (d / 2) * 9 / 10,
                "{attempt}: {lo:?}..={hi:?} barely vary"
            );
        }
        assert_eq!(b.equal_jitter(1, 0.0), 50 * MS);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let b = Backoff::new(100 * MS, Duration::from_secs(10));
        let delays: Vec<Duration> = units().map(|u| b.full_jitter(3, u)).collect();
        assert!(delays.iter().all(|d| *d <= 400 * MS));
        assert!(*delays.iter().min().unwrap() < 10 * MS);
        assert!(*delays.iter().max().unwrap() > 390 * MS);
    }

    #[test]
    fn out_of_range_draws_and_huge_ceilings_never_panic() {
        let b = Backoff::new(Duration::from_secs(1), Duration::MAX);
        for u in [-1.0, 1.0, 7.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let d = b.equal_jitter(3, u);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{u}: {d:?}"
            );
            assert!(b.full_jitter(u32::MAX, u) <= b.ceiling(u32::MAX));
        }
    }
}
