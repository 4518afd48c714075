//! The org's circuit breaker against the simulator: consecutive 5xx open it and calls stop
//! reaching Salesforce; after the cool-down one probe goes and closes it.

mod common;

use std::time::Duration;

use common::{config, simulator, wait_for};
use salesforce_simulator::CallKind;
use wholesail_salesforce::{BreakerConfig, BreakerState, Client, Error};

#[tokio::test]
async fn consecutive_5xx_open_the_breaker_and_a_half_open_probe_closes_it() {
    let sim = simulator(|_| {}).await;
    let mut cfg = config(&sim);
    cfg.breaker = BreakerConfig {
        failure_threshold: 3,
        cool_down: Duration::from_millis(200),
        max_cool_down: Duration::from_secs(5),
    };
    let client = Client::new(cfg).unwrap();
    sim.fail_next(3, 503);
    for _ in 0..3 {
        let err = client.limits().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Transient {
                    outcome_unknown: false,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert!(matches!(
        client.breaker().state(),
        BreakerState::Open { .. }
    ));
    let err = client.limits().await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(sim.calls().len(), 3, "nothing sent while open");

    wait_for("half-open", Duration::from_secs(5), || async {
        (client.breaker().state() == BreakerState::HalfOpen).then_some(())
    })
    .await;
    client.limits().await.unwrap();
    assert_eq!(client.breaker().state(), BreakerState::Closed);
    assert_eq!(sim.call_count(CallKind::Rest), 4);
}
