//! Bulk API 2.0: ingest jobs end to end, query jobs with locators.

mod common;

use std::time::Duration;

use common::{start, wait_for, Org};
use salesforce_simulator::{CallKind, Config};
use serde_json::{json, Value};

async fn put_csv(org: &Org, job: &str, csv: &str) -> u16 {
    org.http
        .put(org.url(&format!("/jobs/ingest/{job}/batches")))
        .bearer_auth(&org.token)
        .header("Content-Type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn text(org: &Org, path: &str) -> (String, reqwest::header::HeaderMap) {
    let resp = org
        .http
        .get(org.url(path))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    (resp.text().await.unwrap(), headers)
}

#[tokio::test]
async fn ingest_job_upserts_rows_and_reports_the_failed_one() {
    let org = start(Config {
        bulk_records_per_second: 500.0,
        ..Config::default()
    })
    .await;
    let (status, job) = org
        .post(
            "/jobs/ingest",
            json!({"object": "Account", "externalIdFieldName": "Shopify_Company_Id__c", "operation": "upsert", "contentType": "CSV", "lineEnding": "LF"}),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "Open");
    let id = job["id"].as_str().unwrap().to_owned();
    let mut csv = String::from("Name,Shopify_Company_Id__c,Website\n");
    for i in 0..250 {
        csv.push_str(&format!("\"Shop, {i}\",b{i},shop{i}.example\n"));
    }
    csv.push_str(",b-missing-name,\n");
    assert_eq!(put_csv(&org, &id, &csv).await, 201);
    let (status, job) = org
        .patch(
            &format!("/jobs/ingest/{id}"),
            json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(job["state"], "UploadComplete");

    let info = wait_for("the job to complete", Duration::from_secs(10), || async {
        let (_, info) = org.get(&format!("/jobs/ingest/{id}")).await;
        (info["state"] == "JobComplete").then_some(info)
    })
    .await;
    assert_eq!(info["numberRecordsProcessed"], 251);
    assert_eq!(info["numberRecordsFailed"], 1);
    assert_eq!(org.sim.count("Account"), 250);

    let (ok, _) = text(&org, &format!("/jobs/ingest/{id}/successfulResults")).await;
    let mut lines = ok.lines();
    assert_eq!(
        lines.next().unwrap(),
        r#""sf__Id","sf__Created","Name","Shopify_Company_Id__c","Website""#
    );
    assert_eq!(lines.count(), 250);
    assert!(ok.contains(r#","true","Shop, 0","b0","#));
    let (failed, _) = text(&org, &format!("/jobs/ingest/{id}/failedResults")).await;
    let failed: Vec<&str> = failed.lines().collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed[1].starts_with(
            r#""","REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --""#
        ),
        "{}",
        failed[1]
    );
    let (unprocessed, _) = text(&org, &format!("/jobs/ingest/{id}/unprocessedrecords")).await;
    assert_eq!(unprocessed.lines().count(), 1, "only the header");

    // Bulk calls count per call, not per record.
    assert_eq!(
        org.sim.call_count(CallKind::Bulk),
        org.sim.api_usage().0 as usize
    );
    assert!(org.sim.api_usage().0 < 251);
}

#[tokio::test]
async fn ingest_job_refuses_unknown_columns_and_can_be_aborted() {
    let org = start(Config {
        bulk_records_per_second: 200.0,
        ..Config::default()
    })
    .await;
    let create = json!({"object": "Contact", "operation": "insert"});
    let (_, job) = org.post("/jobs/ingest", create.clone()).await;
    let id = job["id"].as_str().unwrap().to_owned();
    put_csv(&org, &id, "LastName,Nope__c\nDoe,1\n").await;
    org.patch(
        &format!("/jobs/ingest/{id}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    let info = wait_for("the job to fail", Duration::from_secs(5), || async {
        let (_, info) = org.get(&format!("/jobs/ingest/{id}")).await;
        (info["state"] == "Failed").then_some(info)
    })
    .await;
    assert!(info["errorMessage"].as_str().unwrap().contains("Nope__c"));

    let (_, job) = org.post("/jobs/ingest", create).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let csv: String = std::iter::once("LastName".to_owned())
        .chain((0..1000).map(|i| format!("L{i}")))
        .collect::<Vec<_>>()
        .join("\n");
    put_csv(&org, &id, &csv).await;
    org.patch(
        &format!("/jobs/ingest/{id}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    wait_for("some rows processed", Duration::from_secs(5), || async {
        let (_, info) = org.get(&format!("/jobs/ingest/{id}")).await;
        (info["numberRecordsProcessed"].as_u64() > Some(0)).then_some(())
    })
    .await;
    let (status, info) = org
        .patch(&format!("/jobs/ingest/{id}"), json!({"state": "Aborted"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["state"], "Aborted");
    let (unprocessed, _) = wait_for("unprocessed rows", Duration::from_secs(5), || async {
        let (body, h) = text(&org, &format!("/jobs/ingest/{id}/unprocessedrecords")).await;
        (body.lines().count() > 1).then_some((body, h))
    })
    .await;
    let processed = org.sim.count("Contact");
    assert!(processed < 1000);
    assert_eq!(unprocessed.lines().count() - 1 + processed, 1000);
}

#[tokio::test]
async fn query_job_pages_results_with_locators() {
    let org = start(Config::default()).await;
    let records: Vec<Value> = (0..5)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Q{i}"), "Shopify_Company_Id__c": format!("q{i}")}))
        .collect();
    org.patch(
        "/composite/sobjects/Account/Shopify_Company_Id__c",
        json!({"records": records}),
    )
    .await;
    let (status, job) = org
        .post("/jobs/query", json!({"operation": "query", "query": "SELECT Id, Name, Shopify_Company_Id__c FROM Account ORDER BY Name"}))
        .await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for("the query job", Duration::from_secs(5), || async {
        let (_, info) = org.get(&format!("/jobs/query/{id}")).await;
        (info["state"] == "JobComplete").then_some(())
    })
    .await;
    let (first, headers) = text(&org, &format!("/jobs/query/{id}/results?maxRecords=3")).await;
    assert_eq!(
        first.lines().next().unwrap(),
        r#""Id","Name","Shopify_Company_Id__c""#
    );
    assert_eq!(first.lines().count(), 4);
    assert_eq!(headers["Sforce-NumberOfRecords"], "3");
    let locator = headers["Sforce-Locator"].to_str().unwrap().to_owned();
    let (second, headers) = text(
        &org,
        &format!("/jobs/query/{id}/results?maxRecords=3&locator={locator}"),
    )
    .await;
    assert_eq!(second.lines().count(), 3);
    assert!(second.contains("\"Q4\""));
    assert_eq!(headers["Sforce-Locator"], "null");
    let (_, limits) = org.get("/limits").await;
    assert_eq!(limits["DailyBulkV2QueryJobs"]["Remaining"], 9999);
}
