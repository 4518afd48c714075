//! Bulk API 2.0 ingest against the simulator: a CSV upsert job with one bad row.

mod common;

use std::time::Duration;

use common::{accounts, client, simulator};
use salesforce_simulator::CallKind;
use wholesail_salesforce::bulk::{CsvData, JobState};

#[tokio::test]
async fn a_bulk_upsert_saves_the_good_rows_and_reports_the_failed_one() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let mut rows = accounts(0..500);
    rows[7].name = None;
    let data = CsvData::from_rows(&rows).unwrap();
    assert_eq!(data.rows(), 500);

    let job = client
        .bulk_upsert("Account", "Shopify_Company_Id__c", &data)
        .await
        .unwrap();
    assert_eq!(job.state, JobState::UploadComplete);
    let done = client
        .wait_for_bulk_job(&job.id, Duration::from_millis(20), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        (done.number_records_processed, done.number_records_failed),
        (500, 1)
    );

    let results = client.bulk_results(&job.id).await.unwrap();
    assert_eq!(results.saved.len(), 499);
    assert!(results
        .saved
        .iter()
        .all(|r| r.created && r.id.starts_with("001")));
    assert_eq!(
        results.saved[0].fields["Shopify_Company_Id__c"],
        "company-0"
    );
    let [failed] = &results.failed[..] else {
        panic!("{:?}", results.failed)
    };
    assert_eq!(failed.fields["Shopify_Company_Id__c"], "company-7");
    assert_eq!(failed.failure.codes, ["REQUIRED_FIELD_MISSING"]);
    assert_eq!(failed.failure.fields, ["Name"]);
    assert!(!failed.failure.retryable);
    assert!(results.unprocessed.is_empty());
    assert_eq!(sim.count("Account"), 499);
    let account = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", "company-42")
        .unwrap();
    assert_eq!(account["Name"], "Company 42");
    assert!(sim.call_count(CallKind::Bulk) >= 7);
}
