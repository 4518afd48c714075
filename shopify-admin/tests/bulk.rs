//! Bulk operations end to end: run → poll → stream the JSONL → compare with the generator's
//! ground truth; the concurrency limit; failures, truncation and corruption.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{client, simulator};
use serde_json::Value;
use shopify_simulator::{BulkFault, CatalogSpec, ChildOrder, DEFAULT_SHOP};
use wholesail_shopify_admin::bulk::{BulkOperation, BulkStatus, JsonlReader};
use wholesail_shopify_admin::{AdminClient, AdminError};

const CATALOG_QUERY: &str = r#"
{
  products {
    edges { node {
      id title handle vendor productType status tags updatedAt
      metafields(namespace: "wholesail") { edges { node { id namespace key type value } } }
      variants { edges { node {
        id sku title position price compareAtPrice barcode updatedAt
        inventoryItem { id inventoryLevels { edges { node { id location { id } quantities(names: ["available"]) { name quantity } } } } }
        metafields(namespace: "wholesail") { edges { node { id namespace key type value } } }
      } } }
    } }
  }
}"#;

/// The download of a result `url` the operation reported.
async fn open(client: &AdminClient, url: Option<&str>) -> JsonlReader {
    client.download_jsonl(url.unwrap(), &[]).await.unwrap()
}

async fn run_to_end(client: &AdminClient) -> BulkOperation {
    let op = client.bulk_run_query(CATALOG_QUERY, false).await.unwrap();
    assert_eq!(op.status, BulkStatus::Created);
    client
        .wait_for_bulk_operation(&op.id, Duration::from_millis(20), Duration::from_secs(30))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bulk_export_streams_exactly_the_generated_catalog() {
    let sim = simulator(|c| {
        c.shops[0].catalog = CatalogSpec::new(42, 400);
        c.bulk.child_order = ChildOrder::Scattered { window: 200 };
        c.bulk.duration = Duration::from_millis(800);
    })
    .await;
    let client = client(&sim);
    let op = client.bulk_run_query(CATALOG_QUERY, false).await.unwrap();
    // Created, then running for 800 ms: poll for the running state instead of guessing when.
    let started = std::time::Instant::now();
    loop {
        let status = client.bulk_operation(&op.id).await.unwrap().unwrap().status;
        if status == BulkStatus::Running {
            break;
        }
        assert_eq!(
            status,
            BulkStatus::Created,
            "running comes before anything else"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        client.current_bulk_operation().await.unwrap().unwrap().id,
        op.id
    );
    let done = client
        .wait_for_bulk_operation(&op.id, Duration::from_millis(20), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, BulkStatus::Completed);
    let truth = sim.bulk_ground_truth(DEFAULT_SHOP, &op.id).unwrap();
    assert_eq!(done.object_count, truth.lines);
    assert_eq!(done.root_object_count, truth.counts.products);
    assert_eq!(done.file_size, Some(truth.bytes));

    let mut reader = open(&client, done.url.as_deref()).await;
    let mut seen = HashSet::new();
    let (mut products, mut variants, mut levels, mut metafields, mut lines) = (0, 0, 0, 0, 0);
    while let Some(line) = reader.next_line().await.unwrap() {
        assert!(line.terminated);
        lines += 1;
        let v: Value = serde_json::from_slice(line.bytes).unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        if let Some(parent) = v["__parentId"].as_str() {
            assert!(
                seen.contains(parent),
                "line {}: child before its parent",
                line.number
            );
        }
        match id.split('/').nth(3).unwrap() {
            "Product" => products += 1,
            "ProductVariant" => variants += 1,
            k if k.starts_with("InventoryLevel") => levels += 1,
            "Metafield" => metafields += 1,
            other => panic!("unexpected {other}"),
        }
        seen.insert(id);
    }
    assert_eq!(lines, truth.lines);
    assert_eq!(reader.bytes_read(), truth.bytes);
    let c = truth.counts;
    assert_eq!(
        (products, variants, levels, metafields),
        (c.products, c.variants, c.inventory_levels, c.metafields)
    );
}

/// Every byte of `op`'s result.
async fn download_all(client: &AdminClient, op: &BulkOperation) -> Vec<u8> {
    let mut reader = open(client, op.url.as_deref()).await;
    let mut bytes = Vec::new();
    while let Some(line) = reader.next_line().await.unwrap() {
        bytes.extend_from_slice(line.bytes);
        bytes.push(b'\n');
    }
    bytes
}

#[tokio::test]
async fn a_result_written_while_its_operation_ran_is_served_from_that_file() {
    let dir = std::env::temp_dir().join(format!("sim-results-{}", std::process::id()));
    let sim = simulator(|c| {
        c.shops[0].catalog = CatalogSpec::new(7, 300);
        c.bulk.child_order = ChildOrder::Scattered { window: 100 };
        c.bulk.result_dir = Some(dir.clone());
    })
    .await;
    let client = client(&sim);
    let first = run_to_end(&client).await;
    let second = run_to_end(&client).await;
    assert_eq!(second.status, BulkStatus::Completed);
    // The shop's newer result replaced the older file.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let numeric = |op: &BulkOperation| op.id.rsplit('/').next().unwrap().to_owned();
    assert!(files[0]
        .to_string_lossy()
        .ends_with(&format!("-{}.jsonl", numeric(&second))));
    let mut on_disk = std::fs::read(&files[0]).unwrap();
    let truth = sim.bulk_ground_truth(DEFAULT_SHOP, &second.id).unwrap();
    assert_eq!(on_disk.len() as u64, truth.bytes);
    // The older operation's file is gone: its result is generated again, the same bytes.
    let generated = download_all(&client, &first).await;
    assert_eq!(generated, on_disk);
    // The newer one is read from its file: a byte changed there is what the client gets.
    let at = on_disk
        .windows(9)
        .position(|w| w == b"\"title\":\"")
        .unwrap()
        + 9;
    on_disk[at] = if on_disk[at] == b'Z' { b'Y' } else { b'Z' };
    std::fs::write(&files[0], &on_disk).unwrap();
    let served = download_all(&client, &second).await;
    assert_eq!(served, on_disk);
    assert_ne!(served, generated);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_sixth_concurrent_bulk_query_is_refused() {
    let sim = simulator(|c| c.bulk.duration = Duration::from_secs(3)).await;
    let client = client(&sim);
    for _ in 0..5 {
        client.bulk_run_query(CATALOG_QUERY, false).await.unwrap();
    }
    match client
        .bulk_run_query(CATALOG_QUERY, false)
        .await
        .unwrap_err()
    {
        AdminError::UserErrors(e) => assert_eq!(e[0].code.as_deref(), Some("LIMIT_REACHED")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failed_operation_reports_its_error_code_and_partial_data() {
    let sim = simulator(|_| {}).await;
    sim.inject_bulk_fault(
        DEFAULT_SHOP,
        BulkFault::Fail {
            code: "INTERNAL_SERVER_ERROR",
            partial_lines: Some(10),
        },
    );
    let client = client(&sim);
    let op = run_to_end(&client).await;
    assert_eq!(op.status, BulkStatus::Failed);
    assert_eq!(op.error_code.as_deref(), Some("INTERNAL_SERVER_ERROR"));
    assert!(op.url.is_none());
    let mut reader = open(&client, op.partial_data_url.as_deref()).await;
    let mut n = 0;
    while reader.next_line().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 10);
}

#[tokio::test]
async fn a_truncated_file_ends_in_an_unterminated_line() {
    let sim = simulator(|_| {}).await;
    sim.inject_bulk_fault(DEFAULT_SHOP, BulkFault::Truncate { at_byte: 5000 });
    let client = client(&sim);
    let op = run_to_end(&client).await;
    assert_eq!(op.status, BulkStatus::Completed);
    let mut reader = open(&client, op.url.as_deref()).await;
    let mut last = None;
    while let Some(line) = reader.next_line().await.unwrap() {
        last = Some((
            line.number,
            line.terminated,
            serde_json::from_slice::<Value>(line.bytes).is_ok(),
        ));
    }
    let (_, terminated, parses) = last.unwrap();
    assert!(!terminated && !parses);
    assert_eq!(reader.bytes_read(), 5000);
}

#[tokio::test]
async fn a_corrupt_line_is_found_at_its_line_number() {
    let sim = simulator(|_| {}).await;
    sim.inject_bulk_fault(DEFAULT_SHOP, BulkFault::CorruptLine { line: 7 });
    let client = client(&sim);
    let op = run_to_end(&client).await;
    let mut reader = open(&client, op.url.as_deref()).await;
    let mut bad = Vec::new();
    while let Some(line) = reader.next_line().await.unwrap() {
        if serde_json::from_slice::<Value>(line.bytes).is_err() {
            bad.push(line.number);
        }
    }
    assert_eq!(bad, vec![7]);
}

#[tokio::test]
async fn a_canceled_operation_ends_canceled_without_a_result() {
    let sim = simulator(|c| c.bulk.duration = Duration::from_millis(400)).await;
    let client = client(&sim);
    let op = client.bulk_run_query(CATALOG_QUERY, false).await.unwrap();
    let canceling = client.bulk_cancel(&op.id).await.unwrap();
    assert_eq!(canceling.status, BulkStatus::Canceling);
    let done = client
        .wait_for_bulk_operation(&op.id, Duration::from_millis(20), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, BulkStatus::Canceled);
    assert!(done.url.is_none());
    assert!(
        client.bulk_cancel(&op.id).await.is_err(),
        "a finished operation cannot be canceled"
    );
}

#[tokio::test]
async fn before_2026_01_one_bulk_query_runs_at_a_time_and_output_is_grouped() {
    let sim = simulator(|c| {
        c.shops[0].catalog = CatalogSpec::new(5, 60);
        c.bulk.duration = Duration::from_millis(300);
    })
    .await;
    let mut cfg = common::client_config(&sim);
    cfg.api_version = "2025-10".into();
    let client = AdminClient::new(cfg).unwrap();
    // No groupObjects argument: the default before 2026-01 is grouped.
    let r: wholesail_shopify_admin::Response<Value> = client
        .execute(&wholesail_shopify_admin::Request {
            name: "BulkRunQuery",
            query: &format!("mutation {{ bulkOperationRunQuery(query: \"\"\"{CATALOG_QUERY}\"\"\") {{ bulkOperation {{ id }} userErrors {{ code }} }} }}"),
            variables: Value::Null,
            estimated_cost: 10,
            retry: wholesail_shopify_admin::Retry::IfNotExecuted,
        })
        .await
        .unwrap();
    let id = r.data["bulkOperationRunQuery"]["bulkOperation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    match client
        .bulk_run_query(CATALOG_QUERY, true)
        .await
        .unwrap_err()
    {
        AdminError::UserErrors(e) => {
            assert_eq!(e[0].code.as_deref(), Some("OPERATION_IN_PROGRESS"))
        }
        other => panic!("{other:?}"),
    }
    let done = client
        .wait_for_bulk_operation(&id, Duration::from_millis(20), Duration::from_secs(10))
        .await
        .unwrap();
    // Grouped: every child's parent is the latest product or variant line.
    let mut reader = open(&client, done.url.as_deref()).await;
    let (mut product, mut variant) = (String::new(), String::new());
    while let Some(line) = reader.next_line().await.unwrap() {
        let v: Value = serde_json::from_slice(line.bytes).unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        match v["__parentId"].as_str() {
            None => product = id,
            Some(p) => {
                assert!(
                    p == product || p == variant,
                    "line {}: {p} is not adjacent",
                    line.number
                );
                if id.contains("/ProductVariant/") {
                    variant = id;
                }
            }
        }
    }
}
