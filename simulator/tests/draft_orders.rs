//! Draft orders over HTTP: a create that fails after it was applied, and invoice sends.

use std::time::Duration;

use serde_json::{json, Value};
use shopify_simulator::{
    AfterApply, CatalogSpec, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN,
};

async fn post(sim: &Simulator, query: &str, variables: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(sim.graphql_url("2026-01"))
        .header("X-Shopify-Access-Token", DEFAULT_TOKEN)
        .timeout(Duration::from_millis(500))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
}

const CREATE: &str = "mutation C($input: DraftOrderInput!) { draftOrderCreate(input: $input) { draftOrder { id invoiceUrl } userErrors { field message } } }";

fn input(tag: &str) -> Value {
    let variant = format!(
        "gid://shopify/ProductVariant/{}",
        CatalogSpec::variant_id(1, 0)
    );
    json!({"input": {"lineItems": [{"variantId": variant, "quantity": 2}], "tags": [tag]}})
}

#[tokio::test]
async fn the_nth_create_is_applied_then_answered_with_a_failure_or_too_late() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    sim.fail_draft_create_after_applying(DEFAULT_SHOP, 2, AfterApply::Status(502));
    sim.fail_draft_create_after_applying(
        DEFAULT_SHOP,
        3,
        AfterApply::Delay(Duration::from_secs(2)),
    );
    let ok = post(&sim, CREATE, input("p1")).await;
    assert_eq!(ok.status(), 200);
    let failed = post(&sim, CREATE, input("p2")).await;
    assert_eq!(failed.status(), 502);
    let timed_out = reqwest::Client::new()
        .post(sim.graphql_url("2026-01"))
        .header("X-Shopify-Access-Token", DEFAULT_TOKEN)
        .timeout(Duration::from_millis(300))
        .json(&json!({"query": CREATE, "variables": input("p3")}))
        .send()
        .await;
    assert!(timed_out.unwrap_err().is_timeout());
    // All three were applied: the client just could not know about the last two.
    let tags: Vec<String> = sim
        .draft_orders(DEFAULT_SHOP)
        .iter()
        .flat_map(|d| d.tags.clone())
        .collect();
    assert_eq!(tags, ["p1", "p2", "p3"]);
    let found: Value = post(
        &sim,
        "query F($q: String!) { draftOrders(first: 5, query: $q) { nodes { id tags } } }",
        json!({"q": "tag:'p2'"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        found["data"]["draftOrders"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_invoice_send_is_recorded_on_the_draft_and_unknown_drafts_are_user_errors() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let created: Value = post(&sim, CREATE, input("q")).await.json().await.unwrap();
    let id = created["data"]["draftOrderCreate"]["draftOrder"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = "mutation S($id: ID!) { draftOrderInvoiceSend(id: $id) { draftOrder { id invoiceUrl } userErrors { field message } } }";
    let sent: Value = post(&sim, send, json!({"id": id}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        sent["data"]["draftOrderInvoiceSend"]["draftOrder"]["id"],
        json!(id)
    );
    assert_eq!(sim.draft_orders(DEFAULT_SHOP)[0].invoice_sends.len(), 1);
    let unknown: Value = post(&sim, send, json!({"id": "gid://shopify/DraftOrder/999999"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        unknown["data"]["draftOrderInvoiceSend"]["userErrors"][0]["field"],
        json!(["id"])
    );
    let costs = sim.cost_log(DEFAULT_SHOP);
    assert_eq!(costs.last().unwrap().operation, "draftOrderInvoiceSend");
    assert_eq!(costs.last().unwrap().actual, 10);
}
