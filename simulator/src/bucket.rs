//! The cost bucket: Shopify's leaky bucket of query-cost points, one per (app, shop).
//!
//! A request is admitted only if the bucket holds its *requested* (static, worst-case) cost;
//! that much is taken, and the difference to the *actual* cost is refunded after execution.
//! Points come back continuously at `restoreRate` per second, up to `maximumAvailable`.
//! A single query may not request more than [`MAX_QUERY_COST`] points, whatever the bucket.

use std::time::Instant;

use serde::Serialize;

/// Shopify's limit on the requested cost of a single query, on every plan.
pub const MAX_QUERY_COST: u32 = 1000;

/// Size and restore rate of a bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketConfig {
    /// Bucket size in points (`maximumAvailable`).
    pub maximum_available: f64,
    /// Points restored per second (`restoreRate`): 100 Standard, 200 Advanced, 1,000 Plus,
    /// 2,000 Enterprise.
    pub restore_rate: f64,
}

impl BucketConfig {
    /// The Standard plan: 100 points/s; the bucket holds 20 s of restore (2,000 points).
    pub const STANDARD: BucketConfig = BucketConfig {
        maximum_available: 2000.0,
        restore_rate: 100.0,
    };
}

impl Default for BucketConfig {
    fn default() -> Self {
        Self::STANDARD
    }
}

/// `extensions.cost.throttleStatus` as Shopify reports it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    /// Bucket size.
    pub maximum_available: f64,
    /// Points available now (whole points, rounded down).
    pub currently_available: u64,
    /// Points restored per second.
    pub restore_rate: f64,
}

/// A leaky bucket whose clock is passed in, so its arithmetic is testable.
#[derive(Clone, Debug)]
pub struct Bucket {
    config: BucketConfig,
    available: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn new(config: BucketConfig, now: Instant) -> Self {
        Bucket {
            config,
            available: config.maximum_available,
            at: now,
        }
    }

    /// The bucket's configuration.
    pub fn config(&self) -> BucketConfig {
        self.config
    }

    /// Points available at `now` (restored since the last call, capped at the maximum).
    pub fn available(&mut self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.available =
            (self.available + dt * self.config.restore_rate).min(self.config.maximum_available);
        self.at = now.max(self.at);
        self.available
    }

    /// Takes `requested` points if the bucket holds them; otherwise leaves it untouched and
    /// returns the points available.
    pub fn take(&mut self, requested: u32, now: Instant) -> Result<(), f64> {
        let available = self.available(now);
        if f64::from(requested) > available {
            return Err(available);
        }
        self.available -= f64::from(requested);
        Ok(())
    }

    /// Gives back points taken for a request that cost less than requested.
    pub fn refund(&mut self, points: u32) {
        self.available = (self.available + f64::from(points)).min(self.config.maximum_available);
    }

    /// The status to report at `now`.
    pub fn status(&mut self, now: Instant) -> ThrottleStatus {
        ThrottleStatus {
            maximum_available: self.config.maximum_available,
            currently_available: self.available(now).floor() as u64,
            restore_rate: self.config.restore_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn takes_requested_refunds_the_difference_and_restores_over_time() {
        let t0 = Instant::now();
        let cfg = BucketConfig {
            maximum_available: 100.0,
            restore_rate: 10.0,
        };
        let mut b = Bucket::new(cfg, t0);
        b.take(60, t0).unwrap();
        b.refund(20); // requested 60, actual 40
        assert_eq!(b.status(t0).currently_available, 60);
        assert_eq!(b.take(61, t0), Err(60.0));
        // 2.5 s later: 60 + 25.
        let t1 = t0 + Duration::from_millis(2500);
        assert_eq!(b.status(t1).currently_available, 85);
        // Never above the maximum.
        assert_eq!(
            b.status(t1 + Duration::from_secs(60)).currently_available,
            100
        );
    }

    #[test]
    fn refused_take_leaves_the_bucket_untouched() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            BucketConfig {
                maximum_available: 50.0,
                restore_rate: 1.0,
            },
            t0,
        );
        assert!(b.take(51, t0).is_err());
        assert_eq!(b.status(t0).currently_available, 50);
    }
}
