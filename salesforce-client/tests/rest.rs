//! REST against the simulator: login and session refresh, sObject Collections upserts and
//! their per-record outcomes, SOQL paging, limits.

mod common;

use std::time::Duration;

use common::{accounts, client, config, simulator, wait_for, AccountRow};
use salesforce_simulator::{AfterApply, CallKind};
use wholesail_salesforce::collections::{batches, MAX_RECORDS};
use wholesail_salesforce::{Client, Error, RecordOutcome};

const EXT: &str = "Shopify_Company_Id__c";

fn ids(outcomes: &[RecordOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| o.id().expect("saved").to_owned())
        .collect()
}

#[tokio::test]
async fn an_expired_token_mid_batch_is_refreshed_and_the_batch_succeeds() {
    let sim = simulator(|c| c.token_lifetime = Duration::from_secs(3600)).await;
    let client = client(&sim);
    let rows = accounts(0..450);
    let mut chunks = batches(&rows);
    let first = client
        .upsert("Account", EXT, chunks.next().unwrap())
        .await
        .unwrap();
    let token = client.session().await.unwrap();
    sim.advance_clock(Duration::from_secs(2 * 3600));
    let mut outcomes = first;
    for chunk in chunks {
        outcomes.extend(client.upsert("Account", EXT, chunk).await.unwrap());
    }
    assert_eq!(outcomes.len(), 450);
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, RecordOutcome::Created { .. })));
    assert_eq!(sim.count("Account"), 450);
    let fresh = client.session().await.unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&token, &fresh),
        "the client logged in again"
    );
}

#[tokio::test]
async fn a_401_with_a_fresh_token_is_refreshed_only_once() {
    // Every token is born expired: the call gets 401, logs in again once, gets 401 again.
    let sim = simulator(|c| c.token_lifetime = Duration::ZERO).await;
    let err = client(&sim).limits().await.unwrap_err();
    assert!(matches!(err, Error::SessionRejected), "{err:?}");
}

#[tokio::test]
async fn wrong_credentials_are_a_login_error_and_secrets_stay_out_of_debug() {
    let sim = simulator(|_| {}).await;
    let mut cfg = config(&sim);
    cfg.client_secret = "not-the-secret".to_owned().into();
    let client = Client::new(cfg).unwrap();
    let err = client.limits().await.unwrap_err();
    assert!(
        matches!(&err, Error::Login(m) if m.contains("invalid_client")),
        "{err:?}"
    );
    assert!(!format!("{client:?}").contains("not-the-secret"));

    let client = common::client(&sim);
    let session = client.session().await.unwrap();
    let token = secrecy::ExposeSecret::expose_secret(&session.access_token).to_owned();
    assert!(!format!("{client:?}{session:?}").contains(&token));
    assert!(!format!("{client:?}").contains(salesforce_simulator::DEFAULT_CLIENT_SECRET));
}

#[tokio::test]
async fn the_same_batch_twice_is_created_then_updated_with_the_same_ids() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let rows = accounts(0..50);
    let first = client.upsert("Account", EXT, &rows).await.unwrap();
    assert!(first
        .iter()
        .all(|o| matches!(o, RecordOutcome::Created { .. })));
    let second = client.upsert("Account", EXT, &rows).await.unwrap();
    assert!(second
        .iter()
        .all(|o| matches!(o, RecordOutcome::Updated { .. })));
    assert_eq!(ids(&first), ids(&second));
    assert_eq!(sim.count("Account"), 50);
}

#[tokio::test]
async fn a_write_answered_5xx_after_it_was_applied_is_outcome_unknown_and_safe_to_resend() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let rows = accounts(0..3);
    sim.fail_after_applying(1, AfterApply::Status(502));
    let err = client.upsert("Account", EXT, &rows).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transient {
                outcome_unknown: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(sim.count("Account"), 3, "the write happened");
    let again = client.upsert("Account", EXT, &rows).await.unwrap();
    assert!(again
        .iter()
        .all(|o| matches!(o, RecordOutcome::Updated { .. })));
    assert_eq!(sim.count("Account"), 3);
}

#[tokio::test]
async fn more_than_200_records_are_refused_before_sending() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let rows = accounts(0..MAX_RECORDS + 1);
    let err = client.upsert("Account", EXT, &rows).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyRecords {
                count: 201,
                max: 200
            }
        ),
        "{err:?}"
    );
    assert_eq!(sim.call_count(CallKind::Collections), 0);
    assert_eq!(batches(&rows).map(<[_]>::len).collect::<Vec<_>>(), [200, 1]);
}

#[tokio::test]
async fn a_partial_failure_fails_only_the_invalid_record_permanently() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let mut rows = accounts(0..5);
    rows[2].name = None;
    let outcomes = client.upsert("Account", EXT, &rows).await.unwrap();
    for (i, o) in outcomes.iter().enumerate() {
        if i == 2 {
            let RecordOutcome::Failed(f) = o else {
                panic!("{o:?}")
            };
            assert_eq!(f.codes, ["REQUIRED_FIELD_MISSING"]);
            assert_eq!(f.fields, ["Name"]);
            assert!(!f.retryable);
        } else {
            assert!(matches!(o, RecordOutcome::Created { .. }), "{o:?}");
        }
    }
    assert_eq!(sim.count("Account"), 4);
}

#[tokio::test]
async fn a_row_lock_conflict_is_retryable_and_succeeds_once_the_lock_is_gone() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let rows = accounts(0..2);
    client.upsert("Account", EXT, &rows).await.unwrap();
    // A write holding row 0's lock (it runs for the lock hold) makes a concurrent one fail.
    sim.set_lock_hold(Duration::from_millis(500));
    let holder = {
        let (client, row) = (client.clone(), rows[..1].to_vec());
        tokio::spawn(async move { client.upsert("Account", EXT, &row).await })
    };
    wait_for("the row lock", Duration::from_secs(5), || async {
        (sim.locked_rows() > 0).then_some(())
    })
    .await;
    sim.set_lock_hold(Duration::ZERO);
    let outcomes = client.upsert("Account", EXT, &rows).await.unwrap();
    let RecordOutcome::Failed(f) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(f.codes, ["UNABLE_TO_LOCK_ROW"]);
    assert!(f.retryable);
    assert!(matches!(outcomes[1], RecordOutcome::Updated { .. }));

    holder.await.unwrap().unwrap();
    let retried = client.upsert("Account", EXT, &rows[..1]).await.unwrap();
    assert!(
        matches!(retried[0], RecordOutcome::Updated { .. }),
        "{retried:?}"
    );
}

#[tokio::test]
async fn an_exhausted_budget_is_typed_and_the_next_day_calls_succeed() {
    let sim = simulator(|c| c.daily_api_requests = 3).await;
    let client = client(&sim);
    for _ in 0..3 {
        client.limits().await.unwrap();
    }
    let err = client.limits().await.unwrap_err();
    assert!(matches!(err, Error::BudgetExhausted), "{err:?}");
    assert!(!err.is_retryable());
    let usage = client.budget().usage().unwrap();
    assert_eq!((usage.used, usage.max, usage.remaining()), (3, 3, 0));

    sim.advance_to_next_day();
    let limits = client.limits().await.unwrap();
    assert_eq!(limits.daily_api_requests().unwrap().remaining, 2);
    assert_eq!(client.budget().usage().unwrap().used, 1);
}

#[tokio::test]
async fn every_answer_updates_the_budget_from_sforce_limit_info() {
    let sim = simulator(|c| c.daily_api_requests = 1_000).await;
    let client = client(&sim);
    assert_eq!(client.budget().usage(), None);
    client
        .upsert("Account", EXT, &accounts(0..3))
        .await
        .unwrap();
    let first = client.budget().usage().unwrap();
    assert_eq!((first.used, first.max), (1, 1_000));
    let _: Vec<AccountRow> = client
        .query_all("SELECT Id, Name FROM Account")
        .await
        .unwrap();
    let second = client.budget().usage().unwrap();
    assert_eq!((second.used, second.max), sim.api_usage());
    assert_eq!(second.used, 2);
    assert!(second.updated_at >= first.updated_at);
}

#[tokio::test]
async fn calls_in_flight_never_exceed_the_configured_maximum() {
    let sim = simulator(|_| {}).await;
    let mut cfg = config(&sim);
    cfg.max_concurrent = 3;
    let client = Client::new(cfg).unwrap();
    client.limits().await.unwrap();
    sim.delay_next(24, Duration::from_millis(40));
    let calls = (0..24).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.limits().await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.max_concurrency(), 3);
}

#[tokio::test]
async fn a_query_over_2000_rows_follows_next_records_url() {
    let sim = simulator(|_| {}).await;
    for i in 0..2_345 {
        sim.user_create(
            "Account",
            serde_json::json!({"Name": format!("Company {i:04}"), "Shopify_Company_Id__c": format!("c{i}")}),
        )
        .unwrap();
    }
    let client = client(&sim);
    let mut pages = client
        .query::<AccountRow>("SELECT Id, Name, Shopify_Company_Id__c FROM Account ORDER BY Name");
    let mut sizes = Vec::new();
    let mut rows = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.len());
        rows.extend(page);
    }
    assert_eq!(sizes, [2_000, 345]);
    assert_eq!(pages.total_size(), Some(2_345));
    assert_eq!(rows[2_344].name, "Company 2344");
    assert_eq!(rows[0].company_id.as_deref(), Some("c0"));
    assert_eq!(sim.call_count(CallKind::Query), 2);
}

#[tokio::test]
async fn a_malformed_query_is_a_typed_api_error() {
    let sim = simulator(|_| {}).await;
    let err = client(&sim)
        .query_all::<AccountRow>("SELEC Id FROM Account")
        .await
        .unwrap_err();
    assert_eq!(err.api_code(), Some("MALFORMED_QUERY"), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn composite_creates_a_contact_under_a_new_account_in_one_call() {
    use wholesail_salesforce::composite::Subrequest;
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let base = format!("/services/data/v{}", sim.config().api_version);
    let subrequests = [
        Subrequest {
            method: "POST".into(),
            url: format!("{base}/sobjects/Account"),
            reference_id: "acct".into(),
            body: Some(serde_json::json!({"Name": "Acme"})),
        },
        Subrequest {
            method: "POST".into(),
            url: format!("{base}/sobjects/Contact"),
            reference_id: "contact".into(),
            body: Some(serde_json::json!({"LastName": "Doe", "AccountId": "@{acct.id}"})),
        },
    ];
    let answers = client.composite(true, &subrequests).await.unwrap();
    assert_eq!(
        answers
            .iter()
            .map(|a| a.http_status_code)
            .collect::<Vec<_>>(),
        [201, 201]
    );
    assert_eq!(sim.call_count(CallKind::Composite), 1);
    let too_many = vec![subrequests[0].clone(); 26];
    assert!(matches!(
        client.composite(false, &too_many).await,
        Err(Error::TooManyRecords { count: 26, max: 25 })
    ));
}
