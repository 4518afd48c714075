//! The per-shop circuit breaker against the simulator: a 5xx storm or an uninstalled app
//! (401) opens it and requests stop reaching Shopify; after the cool-down one probe goes, and
//! closes it once the shop answers again. Also: no `Retry-After` value can break the retries.

mod common;

use std::time::{Duration, Instant};

use common::{client, client_config, simulator};
use secrecy::SecretString;
use shopify_simulator::{FaultConfig, Simulator};
use wholesail_shopify_admin::{AdminClient, AdminError, BreakerConfig, BreakerState};

fn breaker_client(sim: &Simulator, threshold: u32) -> AdminClient {
    let mut cfg = client_config(sim);
    cfg.max_retries = 2;
    cfg.breaker = BreakerConfig {
        failure_threshold: threshold,
        cool_down: Duration::from_millis(300),
        max_cool_down: Duration::from_secs(5),
    };
    AdminClient::new(cfg).unwrap()
}

/// Waits until the breaker's cool-down has passed (the next request is the probe).
async fn until_half_open(client: &AdminClient) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.breaker().state() != BreakerState::HalfOpen {
        assert!(Instant::now() < deadline, "{:?}", client.breaker().state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn open_for(client: &AdminClient) -> Duration {
    match client.breaker().state() {
        BreakerState::Open { retry_in } => retry_in,
        other => panic!("breaker {other:?}, expected open"),
    }
}

#[tokio::test]
async fn a_5xx_storm_opens_the_breaker_requests_stop_and_a_probe_closes_it_on_recovery() {
    let sim = simulator(|_| {}).await;
    let client = breaker_client(&sim, 4);
    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::default()
    });

    // 3 attempts (2 retries), then the 4th failure opens the breaker mid-call.
    let first = client.shop_name().await.unwrap_err();
    assert!(
        matches!(first, AdminError::Http { status: 503, .. }),
        "{first:?}"
    );
    let second = client.shop_name().await.unwrap_err();
    assert!(
        matches!(second, AdminError::CircuitOpen { .. }),
        "{second:?}"
    );
    assert_eq!(sim.requests(), 4);
    open_for(&client);

    // While open nothing reaches Shopify.
    for _ in 0..20 {
        let e = client.shop_name().await.unwrap_err();
        assert!(matches!(e, AdminError::CircuitOpen { .. }), "{e:?}");
    }
    assert_eq!(sim.requests(), 4, "no request while the breaker is open");

    // Still failing: the probe fails, and the next cool-down is longer.
    until_half_open(&client).await;
    let probe = client.shop_name().await.unwrap_err();
    assert!(matches!(probe, AdminError::CircuitOpen { .. }), "{probe:?}");
    assert_eq!(sim.requests(), 5, "exactly one probe");
    assert!(
        open_for(&client) > Duration::from_millis(300),
        "the cool-down grows"
    );

    // The shop recovers: the next probe closes the breaker.
    sim.set_faults(FaultConfig::default());
    until_half_open(&client).await;
    assert_eq!(client.shop_name().await.unwrap(), "wholesail-test");
    assert_eq!(client.breaker().state(), BreakerState::Closed);
    assert_eq!(client.shop_name().await.unwrap(), "wholesail-test");
    assert_eq!(sim.requests(), 7);
}

#[tokio::test]
async fn repeated_401s_after_an_uninstall_open_it_too() {
    let sim = simulator(|_| {}).await;
    let mut cfg = client_config(&sim);
    cfg.access_token = SecretString::from("shpat_revoked_by_uninstall");
    cfg.breaker.failure_threshold = 3;
    let client = AdminClient::new(cfg).unwrap();
    for _ in 0..3 {
        let e = client.shop_name().await.unwrap_err();
        assert!(
            matches!(
                e,
                AdminError::AccessDenied {
                    status: Some(401),
                    ..
                }
            ),
            "{e:?}"
        );
    }
    for _ in 0..5 {
        let e = client.shop_name().await.unwrap_err();
        assert!(matches!(e, AdminError::CircuitOpen { .. }), "{e:?}");
    }
    assert_eq!(sim.requests(), 3);
    open_for(&client);
}

#[tokio::test]
async fn throttling_and_single_failures_do_not_open_it() {
    let sim = simulator(|_| {}).await;
    let client = breaker_client(&sim, 3);
    for _ in 0..5 {
        sim.fail_next(2, 502);
        assert_eq!(client.shop_name().await.unwrap(), "wholesail-test");
        sim.fail_next(3, 429);
        assert!(client.shop_name().await.is_err());
    }
    assert_eq!(client.breaker().state(), BreakerState::Closed);
}

/// Failed before the shared parser: `Duration::from_secs_f64` panicked on these values.
#[tokio::test]
async fn negative_nan_huge_or_dated_retry_after_values_never_panic_the_retries() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    for value in [
        "-1",
        "NaN",
        "inf",
        "1e30",
        "-0.5",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "soon",
    ] {
        sim.fail_next_with_retry_after(429, value);
        assert_eq!(
            client.shop_name().await.unwrap(),
            "wholesail-test",
            "{value}"
        );
    }
    assert_eq!(sim.requests(), 14);
}

#[tokio::test]
async fn a_retry_after_in_whole_seconds_is_honoured() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    sim.fail_next_with_retry_after(503, "1");
    let started = Instant::now();
    assert_eq!(client.shop_name().await.unwrap(), "wholesail-test");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
