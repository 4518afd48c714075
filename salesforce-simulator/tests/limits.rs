//! Limits and faults: the daily API budget, concurrent long-running requests, row locks,
//! injected failures.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{account, start, wait_for};
use salesforce_simulator::{AfterApply, Config};
use serde_json::json;

#[tokio::test]
async fn daily_limit_refuses_requests_until_the_next_day() {
    let org = start(Config {
        daily_api_requests: 3,
        ..Config::default()
    })
    .await;
    for i in 1..=3 {
        let (status, _, headers) = org.send(reqwest::Method::GET, "/limits", None).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["Sforce-Limit-Info"],
            format!("api-usage={i}/3").as_str()
        );
    }
    let (status, body, headers) = org.send(reqwest::Method::GET, "/limits", None).await;
    assert_eq!(status, 403);
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(body[0]["message"], "TotalRequests Limit exceeded.");
    assert_eq!(headers["Sforce-Limit-Info"], "api-usage=3/3");
    assert_eq!(org.sim.api_usage(), (3, 3));

    org.sim.advance_to_next_day();
    let token = common::login(&org.http, &org.sim).await;
    let resp = org
        .http
        .get(org.url("/limits"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let limits: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        limits["DailyApiRequests"],
        json!({"Max": 3, "Remaining": 2})
    );
}

#[tokio::test]
async fn the_26th_long_running_request_is_refused() {
    let org = Arc::new(
        start(Config {
            long_running_after: Duration::from_millis(100),
            ..Config::default()
        })
        .await,
    );
    org.sim.delay_next(25, Duration::from_millis(1500));
    let slow: Vec<_> = (0..25)
        .map(|_| {
            let org = org.clone();
            tokio::spawn(async move { org.get("/limits").await.0 })
        })
        .collect();
    wait_for(
        "25 long-running requests",
        Duration::from_secs(5),
        || async { (org.sim.long_running() == 25).then_some(()) },
    )
    .await;
    let (status, body) = org.get("/limits").await;
    assert_eq!(status, 403);
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert!(body[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("ConcurrentRequests"));
    for s in slow {
        assert_eq!(s.await.unwrap(), 200);
    }
    assert!(org.sim.max_concurrency() >= 25);
    let (status, _) = org.get("/limits").await;
    assert_eq!(
        status, 200,
        "admitted again once the slow requests finished"
    );
}

#[tokio::test]
async fn concurrent_writes_under_one_parent_fail_to_lock() {
    let org = Arc::new(start(Config::default()).await);
    org.patch(
        "/composite/sobjects/Account/Shopify_Company_Id__c",
        json!({"records": [account("p1", "Parent")]}),
    )
    .await;
    org.sim.set_lock_hold(Duration::from_millis(800));
    let contacts = |from: usize| {
        let records: Vec<_> = (from..from + 3)
            .map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("C{i}"),
                "Shopify_Customer_Id__c": format!("cu{i}"), "Account": {"Shopify_Company_Id__c": "p1"}}))
            .collect();
        json!({"allOrNone": false, "records": records})
    };
    let first = {
        let org = org.clone();
        let body = contacts(0);
        tokio::spawn(async move {
            org.patch("/composite/sobjects/Contact/Shopify_Customer_Id__c", body)
                .await
        })
    };
    // The first batch holds the account's row lock for 800 ms.
    wait_for(
        "the first batch to lock the account",
        Duration::from_secs(5),
        || async { (org.sim.locked_rows() > 0).then_some(()) },
    )
    .await;
    let (_, second) = org
        .patch(
            "/composite/sobjects/Contact/Shopify_Customer_Id__c",
            contacts(3),
        )
        .await;
    let (_, first) = first.await.unwrap();
    assert!(
        first
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["success"] == true),
        "{first}"
    );
    assert!(
        second
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"),
        "{second}"
    );
    assert_eq!(org.sim.count("Contact"), 3);
}

#[tokio::test]
async fn injected_5xx_does_not_execute_but_apply_then_fail_does() {
    let org = start(Config::default()).await;
    let path = "/composite/sobjects/Account/Shopify_Company_Id__c";
    org.sim.fail_next(1, 503);
    let (status, body) = org
        .patch(path, json!({"records": [account("f1", "Before")]}))
        .await;
    assert_eq!(status, 503);
    assert_eq!(body[0]["errorCode"], "SERVER_UNAVAILABLE");
    assert_eq!(org.sim.count("Account"), 0);

    org.sim.fail_after_applying(1, AfterApply::Status(502));
    let (status, _) = org
        .patch(path, json!({"records": [account("f2", "After")]}))
        .await;
    assert_eq!(status, 502);
    assert!(
        org.sim
            .record_by_external_id("Account", "Shopify_Company_Id__c", "f2")
            .is_some(),
        "the write happened"
    );

    org.sim
        .fail_after_applying(1, AfterApply::Delay(Duration::from_secs(5)));
    let timed_out = org
        .http
        .patch(org.url(path))
        .bearer_auth(&org.token)
        .timeout(Duration::from_millis(300))
        .json(&json!({"records": [account("f3", "Timeout")]}))
        .send()
        .await;
    assert!(timed_out.is_err_and(|e| e.is_timeout()));
    assert!(org
        .sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", "f3")
        .is_some());
    let (_, retry) = org
        .patch(path, json!({"records": [account("f3", "Timeout")]}))
        .await;
    assert_eq!(
        retry[0]["created"], false,
        "a retry of an applied upsert updates"
    );
}
