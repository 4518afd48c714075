//! Pacing by the cost bucket: a local model of the shop's bucket, fed by every response's
//! `throttleStatus`, that makes a request wait until the bucket can cover its estimated cost.
//!
//! The model is conservative so that requests sent concurrently through one client never
//! overdraw: a request *reserves* its estimate before it is sent; a response sets the model
//! to the reported `currentlyAvailable` minus the reservations still in flight (some of which
//! the server may already have charged — counted twice, never too few) unless the model is
//! already lower (responses can arrive out of the server's order, so a report can be stale);
//! a request that got no cost report (timeout, 5xx) keeps its points spent. The model
//! restores at `restoreRate` up to the bucket size, which also lets it recover from its own
//! conservatism while idle.
//! Until the first response the bucket is unknown and requests go one at a time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// `extensions.cost.throttleStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    /// Bucket size.
    pub maximum_available: f64,
    /// Points available when the response was produced.
    pub currently_available: f64,
    /// Points restored per second.
    pub restore_rate: f64,
}

/// `extensions.cost`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryCost {
    /// The static cost the bucket had to cover.
    pub requested_query_cost: u32,
    /// What the query cost once run (`null` when throttled).
    pub actual_query_cost: Option<u32>,
    /// The bucket after the request.
    pub throttle_status: ThrottleStatus,
}

#[derive(Debug)]
struct Model {
    known: Option<ThrottleStatus>,
    /// Points the next request may use, net of in-flight reservations, at `at`.
    available: f64,
    at: Instant,
    reserved: f64,
    in_flight: usize,
    /// Highest requested cost seen per operation name.
    learned: HashMap<String, u32>,
}

/// The pacer shared by every request of one client.
#[derive(Debug)]
pub struct Pacer {
    model: Mutex<Model>,
}

/// Points reserved for one request in flight.
#[derive(Debug)]
pub struct Reservation {
    points: f64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            model: Mutex::new(Model {
                known: None,
                available: 0.0,
                at: Instant::now(),
                reserved: 0.0,
                in_flight: 0,
                learned: HashMap::new(),
            }),
        }
    }
}

impl Pacer {
    /// The cost to reserve for `operation`: the caller's estimate or, if higher, the largest
    /// `requestedQueryCost` Shopify reported for it.
    pub fn estimate(&self, operation: &str, estimate: u32) -> u32 {
        let m = self.model.lock().unwrap();
        m.learned
            .get(operation)
            .map_or(estimate, |l| estimate.max(*l))
    }

    /// The bucket's size, once known.
    pub fn maximum(&self) -> Option<f64> {
        self.model
            .lock()
            .unwrap()
            .known
            .map(|s| s.maximum_available)
    }

    /// Waits until the modelled bucket covers `cost`, then reserves it.
    pub async fn acquire(&self, cost: u32) -> Reservation {
        let cost = f64::from(cost);
        loop {
            let wait = {
                let mut m = self.model.lock().unwrap();
                let now = Instant::now();
                let wait = match m.known {
                    None if m.in_flight == 0 => None,
                    None => Some(Duration::from_millis(5)),
                    Some(s) => {
                        let dt = now.saturating_duration_since(m.at).as_secs_f64();
                        m.available = (m.available + dt * s.restore_rate)
                            .min(s.maximum_available - m.reserved);
                        m.at = now;
                        if m.available >= cost {
                            m.available -= cost;
                            None
                        } else {
                            let secs = (cost - m.available) / s.restore_rate.max(1e-3);
                            Some(Duration::from_secs_f64(secs.min(60.0)) + Duration::from_millis(1))
                        }
                    }
                };
                if wait.is_none() {
                    m.reserved += cost;
                    m.in_flight += 1;
                }
                wait
            };
            match wait {
                None => return Reservation { points: cost },
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Ends a reservation. With the response's cost report the model is reset from it;
    /// without one the reserved points stay spent.
    pub fn settle(&self, r: Reservation, operation: &str, cost: Option<&QueryCost>) {
        let mut m = self.model.lock().unwrap();
        m.reserved = (m.reserved - r.points).max(0.0);
        m.in_flight = m.in_flight.saturating_sub(1);
        if let Some(c) = cost {
            let s = c.throttle_status;
            let now = Instant::now();
            let reported = s.currently_available - m.reserved;
            // Responses can arrive out of the order the server handled them, so a report may
            // predate charges the model already holds: keep the lower of the two.
            m.available = match m.known {
                None => reported,
                Some(_) => {
                    let dt = now.saturating_duration_since(m.at).as_secs_f64();
                    let restored =
                        (m.available + dt * s.restore_rate).min(s.maximum_available - m.reserved);
                    restored.min(reported)
                }
            };
            m.known = Some(s);
            m.at = now;
            let l = m.learned.entry(operation.to_owned()).or_insert(0);
            *l = (*l).max(c.requested_query_cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(available: f64) -> QueryCost {
        QueryCost {
            requested_query_cost: 10,
            actual_query_cost: Some(10),
            throttle_status: ThrottleStatus {
                maximum_available: 100.0,
                currently_available: available,
                restore_rate: 100.0,
            },
        }
    }

    #[tokio::test]
    async fn waits_for_the_restore_when_the_bucket_is_short() {
        let p = Pacer::default();
        let r = p.acquire(10).await;
        p.settle(r, "op", Some(&cost(5.0)));
        let t = Instant::now();
        let r = p.acquire(30).await; // 25 points short at 100/s: ~250 ms
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(240), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        p.settle(r, "op", None);
    }

    #[tokio::test]
    async fn in_flight_reservations_are_subtracted_from_a_report() {
        let p = Pacer::default();
        let first = p.acquire(10).await;
        p.settle(first, "op", Some(&cost(100.0)));
        let a = p.acquire(40).await;
        let b = p.acquire(40).await;
        // `a` answers: 60 left on the server, `b` (40) still in flight → 20 usable.
        p.settle(a, "op", Some(&cost(60.0)));
        assert!(p.model.lock().unwrap().available <= 20.5);
        p.settle(b, "op", None);
        assert_eq!(p.estimate("op", 1), 10);
    }

    #[tokio::test]
    async fn a_stale_report_arriving_late_does_not_raise_the_model() {
        let p = Pacer::default();
        let first = p.acquire(10).await;
        p.settle(first, "op", Some(&cost(100.0)));
        let a = p.acquire(40).await;
        let b = p.acquire(40).await;
        // The server ran `b` then `a`, but `b`'s answer (60 left, before `a`) arrives last.
        p.settle(a, "op", Some(&cost(20.0)));
        p.settle(b, "op", Some(&cost(60.0)));
        assert!(p.model.lock().unwrap().available <= 21.0);
    }
}
