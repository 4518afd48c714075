//! A circuit breaker for one remote API account — a Shopify shop, a Salesforce org — shared
//! by everything that calls it through one client. The client decides which answers are
//! failures ([`Outcome`]); this crate decides when to stop sending.
//!
//! **Closed**: requests go through; `failure_threshold` consecutive failed attempts open it.
//! **Open**: [`Breaker::permit`] refuses at once (nothing is sent) until the cool-down has
//! passed. **Half-open**: the next request is the one probe; while it is in flight the others
//! are refused. Its success closes the breaker (and resets the cool-down); its failure opens it
//! again for twice the previous cool-down, up to `max_cool_down`. [`Outcome::Neutral`] answers
//! (throttling) leave the count unchanged; healthy ones reset it.
//!
//! Written here rather than taken from a crate: `failsafe` (the maintained Rust breaker) lets
//! every request through while half-open instead of one probe, and does not tell how long
//! it stays open, which callers need to schedule their next attempt. Transitions are logged
//! and exported as the [`Gauge`] the client names (0 closed, 1 half-open, 2 open).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a request refused during the half-open probe should wait before trying again.
pub const PROBE_PENDING_WAIT: Duration = Duration::from_secs(1);

/// When the breaker opens and how long it stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// The first cool-down; doubled after each failed probe.
    pub cool_down: Duration,
    /// The longest cool-down.
    pub max_cool_down: Duration,
}

impl Default for BreakerConfig {
    /// 10 consecutive failures (more than one request's own retries), 10 s, up to 10 min.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 10,
            cool_down: Duration::from_secs(10),
            max_cool_down: Duration::from_secs(600),
        }
    }
}

/// What the breaker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// The cool-down has passed: the next request is the probe (or it is in flight).
    HalfOpen,
    /// Requests are refused for `retry_in` more.
    Open {
        /// Until the next probe may go.
        retry_in: Duration,
    },
}

impl BreakerState {
    /// The exported gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open { .. } => 2.0,
        }
    }
}

/// How an attempt went, for the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The API answered for the account.
    Healthy,
    /// The account's API is failing (5xx, timeouts, connection failures…).
    Failed,
    /// Says nothing about the account's health (throttling).
    Neutral,
}

/// The gauge a breaker exports its state to, `metric{label="value"}`; it also names the
/// breaker in logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gauge {
    /// The metric name, e.g. `wholesail_shop_breaker_state`.
    pub metric: &'static str,
    /// The label naming the account, e.g. `shop`.
    pub label: &'static str,
    /// The account, e.g. the shop's domain.
    pub value: String,
}

#[derive(Debug)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// The cool-down of the current (or next) opening.
    cool_down: Duration,
}

/// One account's breaker.
#[derive(Debug)]
pub struct Breaker {
    gauge: Gauge,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker whose state is exported to `gauge`.
    pub fn new(gauge: Gauge, config: BreakerConfig) -> Self {
        let b = Breaker {
            gauge,
            config,
            inner: Mutex::new(Inner {
                phase: Phase::Closed { failures: 0 },
                cool_down: config.cool_down,
            }),
        };
        b.export(BreakerState::Closed);
        b
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        let inner = self.inner.lock().expect("breaker lock");
        match inner.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
            Phase::Open { until } => match until.checked_duration_since(Instant::now()) {
                Some(retry_in) if !retry_in.is_zero() => BreakerState::Open { retry_in },
                _ => BreakerState::HalfOpen,
            },
        }
    }

    /// Lets one attempt go, or says how long to wait.
    pub fn permit(&self) -> Result<Permit<'_>, Duration> {
        let mut inner = self.inner.lock().expect("breaker lock");
        let now = Instant::now();
        match inner.phase {
            Phase::Closed { .. } => Ok(Permit {
                breaker: self,
                probe: false,
            }),
            Phase::Open { until } if now < until => Err(until - now),
            Phase::HalfOpen { probing: true } => Err(PROBE_PENDING_WAIT),
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                inner.phase = Phase::HalfOpen { probing: true };
                drop(inner);
                tracing::info!(breaker = self.gauge.metric, account = %self.gauge.value, "circuit half-open: probing");
                self.export(BreakerState::HalfOpen);
                Ok(Permit {
                    breaker: self,
                    probe: true,
                })
            }
        }
    }

    fn record(&self, probe: bool, outcome: Outcome) {
        let mut inner = self.inner.lock().expect("breaker lock");
        let outcome = match outcome {
            // A throttled probe still shows the API answering for the account.
            Outcome::Neutral if probe => Outcome::Healthy,
            o => o,
        };
        match (&mut inner.phase, outcome) {
            (_, Outcome::Neutral) => {}
            (Phase::Closed { failures }, Outcome::Healthy) => *failures = 0,
            (Phase::Closed { failures }, Outcome::Failed) => {
                *failures += 1;
                if *failures >= self.config.failure_threshold.max(1) {
                    let failures = *failures;
                    let cool_down = inner.cool_down;
                    inner.phase = Phase::Open {
                        until: Instant::now() + cool_down,
                    };
                    drop(inner);
                    tracing::warn!(breaker = self.gauge.metric, account = %self.gauge.value, failures, ?cool_down, "circuit open: requests stop for the cool-down");
                    self.export(BreakerState::Open {
                        retry_in: cool_down,
                    });
                }
            }
            (Phase::HalfOpen { .. }, Outcome::Healthy) if probe => {
                inner.phase = Phase::Closed { failures: 0 };
                inner.cool_down = self.config.cool_down;
                drop(inner);
                tracing::info!(breaker = self.gauge.metric, account = %self.gauge.value, "circuit closed: the probe succeeded");
                self.export(BreakerState::Closed);
            }
            (Phase::HalfOpen { .. }, Outcome::Failed) if probe => {
                let cool_down = inner
                    .cool_down
                    .saturating_mul(2)
                    .min(self.config.max_cool_down)
                    .max(self.config.cool_down);
                inner.cool_down = cool_down;
                inner.phase = Phase::Open {
                    until: Instant::now() + cool_down,
                };
                drop(inner);
                tracing::warn!(breaker = self.gauge.metric, account = %self.gauge.value, ?cool_down, "circuit open again: the probe failed");
                self.export(BreakerState::Open {
                    retry_in: cool_down,
                });
            }
            // Answers to requests let through before the breaker opened change nothing.
            _ => {}
        }
    }

    fn release_probe(&self) {
        let mut inner = self.inner.lock().expect("breaker lock");
        if let Phase::HalfOpen { probing } = &mut inner.phase {
            *probing = false;
        }
    }

    fn export(&self, state: BreakerState) {
        metrics::gauge!(self.gauge.metric, self.gauge.label => self.gauge.value.clone())
            .set(state.gauge());
    }
}

/// Leave to send one attempt; report how it went with [`Permit::record`]. A probe whose
/// permit is dropped unreported (its request was cancelled) lets the next request probe.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Permit<'_> {
    /// Reports the attempt's outcome.
    pub fn record(self, outcome: Outcome) {
        self.breaker.record(self.probe, outcome);
        std::mem::forget(self);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new(
            Gauge {
                metric: "test_breaker_state",
                label: "account",
                value: "test".into(),
            },
            BreakerConfig {
                failure_threshold: threshold,
                cool_down: Duration::from_millis(40),
                max_cool_down: Duration::from_millis(100),
            },
        )
    }

    fn wait_half_open(b: &Breaker) {
        while b.state() != BreakerState::HalfOpen {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn consecutive_failures_open_it_and_a_success_in_between_resets_the_count() {
        let b = breaker(3);
        for _ in 0..2 {
            b.permit().unwrap().record(Outcome::Failed);
        }
        b.permit().unwrap().record(Outcome::Healthy);
        for _ in 0..2 {
            b.permit().unwrap().record(Outcome::Failed);
        }
        b.permit().unwrap().record(Outcome::Neutral);
        assert_eq!(b.state(), BreakerState::Closed);
        b.permit().unwrap().record(Outcome::Failed);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        let wait = b.permit().unwrap_err();
        assert!(wait <= Duration::from_millis(40), "{wait:?}");
    }

    #[test]
    fn one_probe_after_the_cool_down_closes_it_on_success() {
        let b = breaker(1);
        b.permit().unwrap().record(Outcome::Failed);
        wait_half_open(&b);
        let probe = b.permit().unwrap();
        assert_eq!(
            b.permit().unwrap_err(),
            PROBE_PENDING_WAIT,
            "one probe at a time"
        );
        probe.record(Outcome::Healthy);
        assert_eq!(b.state(), BreakerState::Closed);
        b.permit().unwrap().record(Outcome::Healthy);
    }

    #[test]
    fn a_failed_probe_doubles_the_cool_down_up_to_the_max() {
        let b = breaker(1);
        b.permit().unwrap().record(Outcome::Failed);
        let mut cool_downs = Vec::new();
        for _ in 0..3 {
            wait_half_open(&b);
            b.permit().unwrap().record(Outcome::Failed);
            cool_downs.push(b.inner.lock().unwrap().cool_down);
        }
        assert_eq!(
            cool_downs,
            [80, 100, 100].map(Duration::from_millis).to_vec()
        );
        wait_half_open(&b);
        b.permit().unwrap().record(Outcome::Healthy);
        assert_eq!(b.inner.lock().unwrap().cool_down, Duration::from_millis(40));
    }

    #[test]
    fn a_cancelled_probe_lets_the_next_request_probe() {
        let b = breaker(1);
        b.permit().unwrap().record(Outcome::Failed);
        wait_half_open(&b);
        drop(b.permit().unwrap());
        b.permit().unwrap().record(Outcome::Healthy);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
