//! Webhook subscriptions over HTTP: list, create, duplicates, delete and pagination through
//! the Admin GraphQL API; deletion after a delivery failed every attempt; emission per shop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use shopify_simulator::{
    CatalogSpec, DeliveryConfig, ShopConfig, Simulator, SimulatorConfig, DEFAULT_SHOP,
    DEFAULT_TOKEN,
};

/// The queries Wholesail's admin client sends.
const LIST: &str = "query WebhookSubscriptions($first: Int!, $after: String) {
  webhookSubscriptions(first: $first, after: $after) {
    nodes { id topic uri format createdAt updatedAt }
    edges { cursor node { id } }
    pageInfo { hasNextPage endCursor }
  }
}";
const CREATE: &str =
    "mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}";
const DELETE: &str = "mutation D($id: ID!) {
  webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } }
}";

async fn gql(sim: &Simulator, token: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(sim.graphql_url("2026-01"))
        .header("X-Shopify-Access-Token", token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A receiver answering every request with `status`; what it saw.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

async fn receiver(status: u16) -> (Seen, String) {
    async fn receive(
        State((status, seen)): State<(u16, Seen)>,
        headers: HeaderMap,
        _: Bytes,
    ) -> StatusCode {
        seen.lock().unwrap().push(headers);
        StatusCode::from_u16(status).unwrap()
    }
    let seen = Seen::default();
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state((status, seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, url)
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> &'h str {
    h.get(name).unwrap().to_str().unwrap()
}

/// Deliveries compressed 100×, with 3 retries of "1 s" (10 ms) each.
fn fast() -> DeliveryConfig {
    DeliveryConfig {
        time_scale: 0.01,
        retry_delays: vec![Duration::from_secs(1); 3],
        ..DeliveryConfig::default()
    }
}

#[tokio::test]
async fn subscriptions_are_listed_created_refused_twice_and_deleted_through_graphql() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let empty = gql(&sim, DEFAULT_TOKEN, LIST, json!({"first": 100})).await;
    let conn = &empty["data"]["webhookSubscriptions"];
    assert_eq!((&conn["nodes"], &conn["edges"]), (&json!([]), &json!([])));
    assert_eq!(
        conn["pageInfo"],
        json!({"hasNextPage": false, "hasPreviousPage": false, "startCursor": null, "endCursor": null})
    );
    assert_eq!(empty["extensions"]["cost"]["requestedQueryCost"], 102);
    assert_eq!(empty["extensions"]["cost"]["actualQueryCost"], 2);

    // Created from variables, and from an enum literal with the input written inline.
    let uri = "https://edge.example/webhooks/shopify";
    let created = gql(
        &sim,
        DEFAULT_TOKEN,
        CREATE,
        json!({"topic": "ORDERS_CREATE", "uri": uri}),
    )
    .await;
    let payload = &created["data"]["webhookSubscriptionCreate"];
    assert_eq!(payload["userErrors"], json!([]));
    let id = payload["webhookSubscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("gid://shopify/WebhookSubscription/"), "{id}");
    assert_eq!(payload["webhookSubscription"]["topic"], "ORDERS_CREATE");
    assert_eq!(payload["webhookSubscription"]["uri"], uri);
    assert_eq!(created["extensions"]["cost"]["actualQueryCost"], 10);
    let literal = format!(
        r#"mutation {{ webhookSubscriptionCreate(topic: APP_UNINSTALLED, webhookSubscription: {{uri: "{uri}", format: JSON}}) {{ webhookSubscription {{ id topic }} userErrors {{ field message }} }} }}"#
    );
    let created = gql(&sim, DEFAULT_TOKEN, &literal, Value::Null).await;
    assert_eq!(
        created["data"]["webhookSubscriptionCreate"]["webhookSubscription"]["topic"],
        "APP_UNINSTALLED"
    );

    // The same topic at the same address again: Shopify's user error, nothing created.
    let again = gql(
        &sim,
        DEFAULT_TOKEN,
        CREATE,
        json!({"topic": "ORDERS_CREATE", "uri": uri}),
    )
    .await;
    let payload = &again["data"]["webhookSubscriptionCreate"];
    assert_eq!(payload["webhookSubscription"], Value::Null);
    assert_eq!(
        payload["userErrors"][0]["message"],
        "Address for this topic has already been taken"
    );
    assert_eq!(
        payload["userErrors"][0]["field"],
        json!(["webhookSubscription", "callbackUrl"])
    );

    let listed = gql(&sim, DEFAULT_TOKEN, LIST, json!({"first": 100})).await;
    let conn = &listed["data"]["webhookSubscriptions"];
    let nodes = conn["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["id"], json!(id));
    assert_eq!(nodes[0]["topic"], "ORDERS_CREATE");
    assert_eq!(nodes[0]["uri"], uri);
    assert_eq!(nodes[0]["format"], "JSON");
    assert!(nodes[0]["createdAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(nodes[0]["updatedAt"], nodes[0]["createdAt"]);
    assert_eq!(conn["edges"][1]["node"]["id"], nodes[1]["id"]);
    assert_eq!(conn["pageInfo"]["hasNextPage"], false);
    assert_eq!(listed["extensions"]["cost"]["actualQueryCost"], 4);
    let mine = sim.webhook_subscriptions(DEFAULT_SHOP);
    assert_eq!(mine.len(), 2);
    assert_eq!(
        (mine[0].topic.as_str(), mine[0].uri.as_str()),
        ("ORDERS_CREATE", uri)
    );

    let deleted = gql(&sim, DEFAULT_TOKEN, DELETE, json!({"id": id})).await;
    assert_eq!(
        deleted["data"]["webhookSubscriptionDelete"],
        json!({"deletedWebhookSubscriptionId": id, "userErrors": []})
    );
    assert_eq!(deleted["extensions"]["cost"]["actualQueryCost"], 10);
    let twice = gql(&sim, DEFAULT_TOKEN, DELETE, json!({"id": id})).await;
    assert_eq!(
        twice["data"]["webhookSubscriptionDelete"],
        json!({"deletedWebhookSubscriptionId": null,
               "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}]})
    );
    assert_eq!(sim.webhook_subscriptions(DEFAULT_SHOP).len(), 1);
    assert!(sim.removed_subscriptions(DEFAULT_SHOP).is_empty());

    // Deleted behind the app's back: gone from the list, not counted as a failure removal.
    assert!(sim.delete_webhook_subscription(DEFAULT_SHOP, "app/uninstalled"));
    assert!(!sim.delete_webhook_subscription(DEFAULT_SHOP, "APP_UNINSTALLED"));
    let listed = gql(&sim, DEFAULT_TOKEN, LIST, json!({"first": 100})).await;
    assert_eq!(listed["data"]["webhookSubscriptions"]["nodes"], json!([]));
    assert!(sim.removed_subscriptions(DEFAULT_SHOP).is_empty());
    let ops: Vec<String> = sim
        .cost_log(DEFAULT_SHOP)
        .iter()
        .map(|c| c.operation.clone())
        .collect();
    assert_eq!(
        ops.iter()
            .filter(|o| *o == "webhookSubscriptionCreate")
            .count(),
        3
    );
}

#[tokio::test]
async fn unknown_topics_and_missing_arguments_are_graphql_errors_that_cost_nothing() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let uri = "https://edge.example/hooks";
    let by_variable = gql(
        &sim,
        DEFAULT_TOKEN,
        CREATE,
        json!({"topic": "ORDERS_EXPLODE", "uri": uri}),
    )
    .await;
    let e = &by_variable["errors"][0];
    assert_eq!(
        e["message"],
        "Variable $topic of type WebhookSubscriptionTopic! was provided invalid value"
    );
    assert_eq!(e["extensions"]["code"], "INVALID_VARIABLE");
    assert_eq!(e["extensions"]["value"], "ORDERS_EXPLODE");
    assert!(e["extensions"]["problems"][0]["explanation"]
        .as_str()
        .unwrap()
        .contains("ORDERS_CREATE"));
    assert!(by_variable.get("data").is_none());

    let literal = |topic: &str| {
        format!(
            r#"mutation {{ webhookSubscriptionCreate(topic: {topic}, webhookSubscription: {{uri: "{uri}"}}) {{ userErrors {{ message }} }} }}"#
        )
    };
    let by_literal = gql(&sim, DEFAULT_TOKEN, &literal("ORDERS_EXPLODE"), Value::Null).await;
    assert_eq!(
        by_literal["errors"][0]["message"],
        "Argument 'topic' on Field 'webhookSubscriptionCreate' has an invalid value (ORDERS_EXPLODE). Expected type 'WebhookSubscriptionTopic!'."
    );
    assert_eq!(
        by_literal["errors"][0]["extensions"]["code"],
        "argumentLiteralsIncompatible"
    );
    // An enum is not a string, and compliance topics are not subscribable through the API.
    for topic in [r#""ORDERS_CREATE""#, "SHOP_REDACT", "orders"] {
        let r = gql(&sim, DEFAULT_TOKEN, &literal(topic), Value::Null).await;
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "argumentLiteralsIncompatible",
            "{topic}"
        );
    }
    let missing = gql(
        &sim,
        DEFAULT_TOKEN,
        r#"mutation { webhookSubscriptionCreate(topic: ORDERS_CREATE) { userErrors { message } } }"#,
        Value::Null,
    )
    .await;
    assert_eq!(
        missing["errors"][0]["extensions"]["code"],
        "missingRequiredArguments"
    );
    let null_topic = gql(&sim, DEFAULT_TOKEN, CREATE, json!({"uri": uri})).await;
    assert_eq!(
        null_topic["errors"][0]["extensions"]["code"],
        "INVALID_VARIABLE"
    );

    // A blank or unusable address is a user error (and costs the mutation).
    let blank = gql(
        &sim,
        DEFAULT_TOKEN,
        CREATE,
        json!({"topic": "ORDERS_CREATE", "uri": ""}),
    )
    .await;
    assert_eq!(
        blank["data"]["webhookSubscriptionCreate"]["userErrors"][0]["message"],
        "Address can't be blank"
    );
    assert!(sim.webhook_subscriptions(DEFAULT_SHOP).is_empty());
    assert_eq!(
        sim.cost_log(DEFAULT_SHOP).len(),
        1,
        "only the blank address was executed"
    );
}

#[tokio::test]
async fn five_subscriptions_come_in_pages_of_two_and_a_page_is_at_most_250() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let topics = [
        "orders/create",
        "orders/updated",
        "orders/paid",
        "products/update",
        "app/uninstalled",
    ];
    for t in topics {
        sim.add_webhook_subscription(DEFAULT_SHOP, t, "https://edge.example/hooks");
    }
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = Vec::new();
    loop {
        let r = gql(
            &sim,
            DEFAULT_TOKEN,
            LIST,
            json!({"first": 2, "after": after}),
        )
        .await;
        assert_eq!(r["extensions"]["cost"]["requestedQueryCost"], 4);
        let conn = &r["data"]["webhookSubscriptions"];
        let nodes = conn["nodes"].as_array().unwrap();
        pages.push(nodes.len());
        assert_eq!(r["extensions"]["cost"]["actualQueryCost"], 2 + nodes.len());
        for (n, e) in nodes.iter().zip(conn["edges"].as_array().unwrap()) {
            assert_eq!(n["id"], e["node"]["id"]);
            seen.push(n["topic"].as_str().unwrap().to_owned());
        }
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        assert_eq!(conn["pageInfo"]["endCursor"], conn["edges"][1]["cursor"]);
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, [2, 2, 1]);
    let expected: Vec<String> = topics
        .iter()
        .map(|t| t.replace('/', "_").to_uppercase())
        .collect();
    assert_eq!(seen, expected);

    let too_many = gql(&sim, DEFAULT_TOKEN, LIST, json!({"first": 251})).await;
    assert!(
        too_many["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("250"),
        "{too_many}"
    );
    assert!(too_many.get("data").is_none());
    let no_first = gql(
        &sim,
        DEFAULT_TOKEN,
        "{ webhookSubscriptions(after: null) { nodes { id } } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        no_first["errors"][0]["message"],
        "you must provide one of first or last"
    );
    // Filters and the single-object query.
    let r = gql(
        &sim,
        DEFAULT_TOKEN,
        "{ webhookSubscriptions(first: 10, topics: [ORDERS_PAID, APP_UNINSTALLED]) { nodes { id topic endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } } } }",
        Value::Null,
    )
    .await;
    let nodes = r["data"]["webhookSubscriptions"]["nodes"]
        .as_array()
        .unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        nodes[0]["endpoint"]["callbackUrl"],
        "https://edge.example/hooks"
    );
    assert_eq!(
        r["extensions"]["cost"]["requestedQueryCost"],
        2 + 10 * 2,
        "object + endpoint"
    );
    let one = gql(
        &sim,
        DEFAULT_TOKEN,
        "query($id: ID!) { webhookSubscription(id: $id) { id topic } }",
        json!({"id": nodes[1]["id"]}),
    )
    .await;
    assert_eq!(
        one["data"]["webhookSubscription"]["topic"],
        "APP_UNINSTALLED"
    );
}

#[tokio::test]
async fn a_subscription_whose_delivery_fails_every_retry_is_deleted_and_recorded() {
    let (failing_seen, failing) = receiver(500).await;
    let (healthy_seen, healthy) = receiver(200).await;
    let sim = Simulator::start(SimulatorConfig {
        delivery: fast(),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    for uri in [&failing, &healthy] {
        let r = gql(
            &sim,
            DEFAULT_TOKEN,
            CREATE,
            json!({"topic": "ORDERS_CREATE", "uri": uri}),
        )
        .await;
        assert_eq!(
            r["data"]["webhookSubscriptionCreate"]["userErrors"],
            json!([])
        );
    }
    let other = sim.add_webhook_subscription(DEFAULT_SHOP, "products/update", &failing);

    let reports = sim
        .emit(DEFAULT_SHOP, "orders/create", br#"{"id":1}"#.to_vec())
        .await;
    assert_eq!(reports.len(), 2, "only the orders/create subscriptions");
    assert!(!reports[0].delivered);
    assert_eq!(
        reports[0].attempts.len(),
        4,
        "the first attempt and 3 retries"
    );
    assert!(reports[1].delivered);

    let left = sim.webhook_subscriptions(DEFAULT_SHOP);
    let uris: Vec<(&str, &str)> = left
        .iter()
        .map(|s| (s.topic.as_str(), s.uri.as_str()))
        .collect();
    assert_eq!(
        uris,
        [
            ("ORDERS_CREATE", healthy.as_str()),
            ("PRODUCTS_UPDATE", failing.as_str())
        ]
    );
    assert_eq!(left[1], other);
    let removed = sim.removed_subscriptions(DEFAULT_SHOP);
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].subscription.uri, failing);
    assert_eq!(removed[0].subscription.topic, "ORDERS_CREATE");
    assert_eq!(removed[0].webhook_id, reports[0].webhook_id);
    assert_eq!(removed[0].attempts, 4);
    // Listed through the API as the reconciler would see it.
    let listed = gql(&sim, DEFAULT_TOKEN, LIST, json!({"first": 10})).await;
    let topics: Vec<&str> = listed["data"]["webhookSubscriptions"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics, ["ORDERS_CREATE", "PRODUCTS_UPDATE"]);

    // One event: the same event id, a webhook id per subscription, Shopify's headers.
    let failing_seen = failing_seen.lock().unwrap().clone();
    let healthy_seen = healthy_seen.lock().unwrap().clone();
    assert_eq!(failing_seen.len(), 4);
    assert_eq!(healthy_seen.len(), 1);
    let (f, h) = (&failing_seen[0], &healthy_seen[0]);
    assert_eq!(header(h, "x-shopify-topic"), "orders/create");
    assert_eq!(header(h, "x-shopify-shop-domain"), DEFAULT_SHOP);
    assert_eq!(
        header(f, "x-shopify-event-id"),
        header(h, "x-shopify-event-id")
    );
    assert_ne!(
        header(f, "x-shopify-webhook-id"),
        header(h, "x-shopify-webhook-id")
    );
    assert!(failing_seen
        .iter()
        .all(|x| header(x, "x-shopify-webhook-id") == reports[0].webhook_id));

    // The next event goes to the healthy one only.
    let reports = sim
        .emit(DEFAULT_SHOP, "ORDERS_CREATE", b"{}".to_vec())
        .await;
    assert_eq!(reports.len(), 1);
    assert!(reports[0].delivered);
}

#[tokio::test]
async fn bulk_finish_goes_to_each_shops_subscriptions_and_an_unreachable_one_is_deleted() {
    let (seen, url) = receiver(200).await;
    let second = "second-shop.myshopify.com";
    let mut config = SimulatorConfig {
        delivery: DeliveryConfig {
            retry_delays: vec![Duration::from_millis(100)],
            ..fast()
        },
        webhook_subscriptions: vec![("bulk_operations/finish".into(), url.clone())],
        ..SimulatorConfig::default()
    };
    config.shops.push(ShopConfig {
        domain: second.into(),
        access_token: "shpat_second".into(),
        catalog: CatalogSpec::new(2, 10),
    });
    config.bulk.duration = Duration::from_millis(100);
    let sim = Simulator::start(config).await.unwrap();
    // Configured subscriptions belong to every shop; `subscribe` adds to every shop too.
    assert_eq!(sim.webhook_subscriptions(DEFAULT_SHOP).len(), 1);
    assert_eq!(
        sim.webhook_subscriptions(second)[0].topic,
        "BULK_OPERATIONS_FINISH"
    );
    sim.subscribe("bulk_operations/finish", "http://127.0.0.1:9/closed");
    assert_eq!(sim.webhook_subscriptions(second).len(), 2);
    // The first shop's unreachable subscription goes away only when that shop emits.
    let run = r#"mutation { bulkOperationRunQuery(query: "{ products { edges { node { id } } } }") { bulkOperation { id } userErrors { message } } }"#;
    let started = gql(&sim, "shpat_second", run, Value::Null).await;
    assert!(started["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"].is_string());
    for _ in 0..100 {
        if !sim.removed_subscriptions(second).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let removed = sim.removed_subscriptions(second);
    assert_eq!(removed.len(), 1, "the closed port failed both attempts");
    assert_eq!(removed[0].subscription.uri, "http://127.0.0.1:9/closed");
    assert_eq!(removed[0].attempts, 2);
    assert_eq!(sim.webhook_subscriptions(second).len(), 1);
    assert_eq!(sim.webhook_subscriptions(DEFAULT_SHOP).len(), 2);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        header(&seen[0], "x-shopify-topic"),
        "bulk_operations/finish"
    );
    assert_eq!(header(&seen[0], "x-shopify-shop-domain"), second);
}
