//! The HTTP side: the Admin GraphQL endpoint (auth, API version, failure injection, cost
//! accounting, dispatch to the recognised operations) and the bulk result downloads.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::bucket::{Bucket, MAX_QUERY_COST};
use crate::bulk::{BulkFault, BulkOperation, BulkStatus};
use crate::catalog::{CatalogSpec, ChildOrder, Selection};
use crate::draft_orders::{self, AfterApply, DraftOrderRecord};
use crate::graphql::{self, ArgSource, Kind, Operation};
use crate::metafields::MetafieldStore;
use crate::subscriptions::{self, SubscriptionStore, WebhookSubscription, MAX_PAGE_SIZE};
use crate::webhooks::{now_rfc3339, DeliveryReport, Webhook, WebhookSender};
use crate::{CostEvent, FaultConfig, SimulatorConfig, StartError, ThrottleEvent};

/// A deterministic fault for the next request.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    Status(u16),
    /// A status with this `Retry-After` header value.
    StatusRetryAfter(u16, String),
    Delay(Duration),
}

/// Random and queued faults.
pub(crate) struct Faults {
    pub(crate) queue: VecDeque<Fault>,
    random: FaultConfig,
    rng: StdRng,
}

impl Faults {
    pub(crate) fn set(&mut self, f: FaultConfig) {
        self.rng = StdRng::seed_from_u64(f.seed);
        self.random = f;
    }

    fn draw(&mut self) -> Option<Fault> {
        if let Some(f) = self.queue.pop_front() {
            return Some(f);
        }
        let r = &self.random;
        if r.error_rate > 0.0 && self.rng.gen_bool(r.error_rate.min(1.0)) {
            return Some(Fault::Status(503));
        }
        if r.delay_rate > 0.0 && self.rng.gen_bool(r.delay_rate.min(1.0)) {
            return Some(Fault::Delay(r.delay));
        }
        None
    }
}

/// The state of one shop.
pub(crate) struct Shop {
    pub(crate) domain: String,
    pub(crate) bucket: Bucket,
    pub(crate) catalog: CatalogSpec,
    pub(crate) child_order: ChildOrder,
    pub(crate) bulk: Vec<BulkOperation>,
    pub(crate) bulk_faults: VecDeque<BulkFault>,
    pub(crate) orders: crate::orders::OrderStore,
    pub(crate) metafields: MetafieldStore,
    pub(crate) drafts: Vec<DraftOrderRecord>,
    pub(crate) draft_faults: draft_orders::CreateFaults,
    pub(crate) subscriptions: SubscriptionStore,
    pub(crate) costs: Vec<CostEvent>,
    pub(crate) throttled: Vec<ThrottleEvent>,
    pub(crate) price_lists: crate::price_lists::PriceListStore,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) config: SimulatorConfig,
    pub(crate) base_url: String,
    shops: HashMap<String, Mutex<Shop>>,
    tokens: HashMap<String, String>,
    pub(crate) faults: Mutex<Faults>,
    /// Records every attempt (the per-shop senders share its log).
    pub(crate) webhooks: WebhookSender,
    /// Per shop, the sender of its webhooks (its `X-Shopify-Shop-Domain`).
    senders: HashMap<String, WebhookSender>,
    pub(crate) requests: AtomicU64,
    next_id: AtomicU64,
    started: Instant,
}

impl Shared {
    pub(crate) fn new(config: SimulatorConfig, base_url: String) -> Result<Arc<Self>, StartError> {
        let now = Instant::now();
        let mut shops = HashMap::new();
        let mut tokens = HashMap::new();
        for s in &config.shops {
            if tokens
                .insert(s.access_token.clone(), s.domain.clone())
                .is_some()
            {
                return Err(StartError::DuplicateToken(s.domain.clone()));
            }
            shops.insert(
                s.domain.clone(),
                Mutex::new(Shop {
                    domain: s.domain.clone(),
                    bucket: Bucket::new(config.bucket, now),
                    catalog: s.catalog.clone(),
                    child_order: config.bulk.child_order,
                    bulk: Vec::new(),
                    bulk_faults: VecDeque::new(),
                    orders: Default::default(),
                    metafields: MetafieldStore::default(),
                    drafts: Vec::new(),
                    draft_faults: draft_orders::CreateFaults::default(),
                    subscriptions: SubscriptionStore::default(),
                    costs: Vec::new(),
                    throttled: Vec::new(),
                    price_lists: Default::default(),
                }),
            );
        }
        let mut faults = Faults {
            queue: VecDeque::new(),
            random: FaultConfig::default(),
            rng: StdRng::seed_from_u64(0),
        };
        faults.set(config.faults.clone());
        let webhooks = WebhookSender::new(config.app_secret.as_bytes(), config.delivery.clone());
        let senders = shops
            .keys()
            .map(|d| (d.clone(), webhooks.for_shop(d)))
            .collect();
        let shared = Arc::new(Shared {
            base_url,
            shops,
            tokens,
            faults: Mutex::new(faults),
            webhooks,
            senders,
            requests: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            started: now,
            config,
        });
        for (topic, url) in &shared.config.webhook_subscriptions {
            shared.subscribe_every_shop(topic, url);
        }
        Ok(shared)
    }

    /// The shops' domains, in configuration order.
    pub(crate) fn domains(&self) -> impl Iterator<Item = &str> {
        self.config.shops.iter().map(|s| s.domain.as_str())
    }

    /// Adds a subscription of `topic` (either form) at `uri` to `shop`, without validation.
    pub(crate) fn subscribe(&self, shop: &str, topic: &str, uri: &str) -> WebhookSubscription {
        let sub = WebhookSubscription::new(self.id(), shop, topic, uri, "JSON", &now_rfc3339());
        self.with_shop(shop, |s| s.subscriptions.live.push(sub.clone()));
        sub
    }

    /// Adds a subscription of `topic` at `uri` to every shop.
    pub(crate) fn subscribe_every_shop(&self, topic: &str, uri: &str) {
        let domains: Vec<String> = self.domains().map(str::to_owned).collect();
        for d in &domains {
            self.subscribe(d, topic, uri);
        }
    }

    /// Delivers `body` as a `topic` webhook of `shop` to each of its subscriptions of that
    /// topic (at an `http(s)` address), concurrently, with retries; deletes a subscription
    /// whose delivery failed every attempt, as Shopify does. The reports, in subscription order.
    pub(crate) async fn emit(&self, shop: &str, topic: &str, body: Vec<u8>) -> Vec<DeliveryReport> {
        let name = subscriptions::topic_enum(topic);
        let targets: Vec<WebhookSubscription> = self.with_shop(shop, |s| {
            s.subscriptions
                .live
                .iter()
                .filter(|x| x.topic == name && x.is_http())
                .cloned()
                .collect()
        });
        let Some(sender) = self.senders.get(shop) else {
            return Vec::new();
        };
        // One event: every subscription's webhook shares its event id, each has its own
        // webhook id.
        let event = sender.webhook(&subscriptions::topic_name(topic), body);
        let deliveries = targets.iter().map(|sub| {
            let w = Webhook {
                webhook_id: uuid::Uuid::new_v4().to_string(),
                ..event.clone()
            };
            async move { sender.deliver(&sub.uri, &w).await }
        });
        let reports = futures_util::future::join_all(deliveries).await;
        for (sub, report) in targets.iter().zip(&reports) {
            if !report.delivered {
                let now = now_rfc3339();
                self.with_shop(shop, |s| {
                    s.subscriptions.remove_failed(
                        &sub.id,
                        &report.webhook_id,
                        report.attempts.len(),
                        &now,
                    )
                });
            }
        }
        reports
    }

    /// Runs `f` on `shop`; panics on an unknown shop (a test's mistake).
    pub(crate) fn with_shop<T>(&self, shop: &str, f: impl FnOnce(&mut Shop) -> T) -> T {
        let s = self
            .shops
            .get(shop)
            .unwrap_or_else(|| panic!("the simulator has no shop {shop}"));
        f(&mut s.lock().unwrap())
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/admin/api/{version}/graphql.json", post(graphql_endpoint))
        .route("/bulk/{shop}/{file}", get(download))
        .with_state(shared)
}

fn error_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    v == "unstable"
        || (b.len() == 7
            && b[4] == b'-'
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[5..].iter().all(u8::is_ascii_digit))
}

async fn graphql_endpoint(
    State(st): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let fault = st.faults.lock().unwrap().draw();
    let delay = match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return error_response(status, json!({"errors": "Service temporarily unavailable"}));
        }
        Some(Fault::StatusRetryAfter(code, retry_after)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut resp =
                error_response(status, json!({"errors": "Service temporarily unavailable"}));
            if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            return resp;
        }
        Some(Fault::Delay(d)) => Some(d),
        None => None,
    };
    let (mut resp, after_apply) = handle(&st, &version, &headers, &body);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    match after_apply {
        Some(AfterApply::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            resp = error_response(status, json!({"errors": "Service temporarily unavailable"}));
        }
        Some(AfterApply::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    if let Ok(v) = HeaderValue::from_str(&version) {
        resp.headers_mut().insert("X-Shopify-API-Version", v);
    }
    resp
}

/// Answers one request; the second value is a fault to apply after it was executed.
fn handle(
    st: &Arc<Shared>,
    version: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, Option<AfterApply>) {
    if !is_version(version) {
        return (
            error_response(StatusCode::NOT_FOUND, json!({"errors": "Not Found"})),
            None,
        );
    }
    if !st.config.api_versions.iter().any(|v| v == version) {
        return (
            error_response(
                StatusCode::NOT_FOUND,
                json!({"errors": format!("API version {version} is not served by this simulator")}),
            ),
            None,
        );
    }
    let token = headers
        .get("X-Shopify-Access-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(domain) = st.tokens.get(token) else {
        return (
            error_response(
                StatusCode::UNAUTHORIZED,
                json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
            ),
            None,
        );
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return (
            error_response(
                StatusCode::BAD_REQUEST,
                json!({"errors": {"query": "Required parameter missing or invalid"}}),
            ),
            None,
        );
    };
    let Some(query) = req.get("query").and_then(Value::as_str) else {
        return (
            error_response(
                StatusCode::BAD_REQUEST,
                json!({"errors": {"query": "Required parameter missing or invalid"}}),
            ),
            None,
        );
    };
    let vars = req.get("variables").cloned().unwrap_or(Value::Null);
    let op = match graphql::parse(query, &vars) {
        Ok(op) => op,
        Err(e) => {
            return (
                Json(json!({"errors": [graphql::error(e.0, "parseError")]})).into_response(),
                None,
            )
        }
    };
    let requested = match requested_cost(&op, &vars) {
        Ok(c) => c,
        Err(e) => return (Json(json!({"errors": [e]})).into_response(), None),
    };
    if requested > MAX_QUERY_COST {
        return (
            Json(graphql::max_cost_exceeded(requested)).into_response(),
            None,
        );
    }
    let shop_lock = &st.shops[domain];
    let mut shop = shop_lock.lock().unwrap();
    let now = Instant::now();
    let available_before = shop.bucket.available(now);
    if shop.bucket.take(requested, now).is_err() {
        let status = shop.bucket.status(now);
        shop.throttled.push(ThrottleEvent {
            at: now - st.started,
            operation: op.root.to_owned(),
            requested,
            available: available_before,
        });
        tracing::info!(shop = %domain, requested, available = available_before, "throttled");
        return (
            Json(graphql::throttled(requested, status)).into_response(),
            None,
        );
    }
    let (data, actual) = execute(st, &mut shop, &op, &vars, version);
    let after_apply = (op.root == "draftOrderCreate")
        .then(|| shop.draft_faults.on_create())
        .flatten();
    let actual = actual.min(requested);
    shop.bucket.refund(requested - actual);
    shop.costs.push(CostEvent {
        at: now - st.started,
        operation: op.root.to_owned(),
        requested,
        actual,
        available_before,
    });
    let status = shop.bucket.status(Instant::now());
    let resp =
        Json(json!({"data": data, "extensions": graphql::cost(requested, Some(actual), status)}))
            .into_response();
    (resp, after_apply)
}

const MUTATIONS: &[&str] = &[
    "catalogCreate",
    "priceListCreate",
    "quantityPricingByVariantUpdate",
    "bulkOperationRunQuery",
    "bulkOperationCancel",
    "metafieldsSet",
    "draftOrderCreate",
    "draftOrderInvoiceSend",
    "webhookSubscriptionCreate",
    "webhookSubscriptionDelete",
];
const QUERIES: &[&str] = &[
    "priceList",
    "shop",
    "node",
    "bulkOperation",
    "currentBulkOperation",
    "draftOrders",
    "webhookSubscriptions",
    "webhookSubscription",
];

/// Points per `WebhookSubscription` returned: the object, plus 1 for each selected
/// sub-object (`endpoint`, `apiVersion`).
fn per_subscription(op: &Operation, vars: &Value) -> u64 {
    1 + ["endpoint", "apiVersion"]
        .iter()
        .filter(|f| op.nested_args(f, vars).is_some())
        .count() as u64
}

/// A connection's `first` argument, required as Shopify requires it.
fn first_arg(op: &Operation) -> Result<u64, Value> {
    op.args.get("first").and_then(Value::as_u64).ok_or_else(|| {
        graphql::error(
            "you must provide one of first or last",
            "argumentLiteralsIncompatible",
        )
    })
}

/// Checks the arguments of a `webhookSubscriptions` connection as GraphQL validation would;
/// `first` and the `after` cursor's numeric id.
fn subscriptions_page(op: &Operation) -> Result<(u64, u64), Value> {
    let first = first_arg(op)?;
    if first > MAX_PAGE_SIZE {
        return Err(graphql::error(
            format!(
                "The maximum page size is {MAX_PAGE_SIZE}: first: {first} requests more records"
            ),
            "MAX_PAGE_SIZE_EXCEEDED",
        ));
    }
    let after = match op.args.get("after") {
        None | Some(Value::Null) => 0,
        Some(c) => c
            .as_str()
            .and_then(|c| c.parse::<u64>().ok())
            .ok_or_else(|| graphql::error(format!("Invalid cursor: {c}"), "BAD_REQUEST"))?,
    };
    Ok((first, after))
}

/// GraphQL validation of a required argument of type `ty`: present and not null; for an
/// enum, one of `values`, written as an enum value (not a string) or given as a variable.
fn check_required(
    op: &Operation,
    arg: &str,
    ty: &str,
    values: Option<&[String]>,
) -> Result<(), Value> {
    let field = op.root;
    let Some(value) = op.args.get(arg) else {
        return Err(json!({
            "message": format!("Field '{field}' is missing required arguments: {arg}"),
            "extensions": {"code": "missingRequiredArguments", "className": "Field", "name": field, "arguments": arg},
        }));
    };
    let allowed = |v: &Value| match values {
        Some(values) => v.as_str().is_some_and(|s| values.iter().any(|x| x == s)),
        None => !v.is_null(),
    };
    let source = op
        .arg_sources
        .get(arg)
        .cloned()
        .unwrap_or(ArgSource::Literal);
    let problem = match &source {
        ArgSource::Variable(_) if value.is_null() => {
            Some("Expected value to not be null".to_owned())
        }
        ArgSource::Variable(_) if !allowed(value) => Some(format!(
            "Expected {value} to be one of: {}",
            values.unwrap_or_default().join(", ")
        )),
        ArgSource::Variable(_) => None,
        ArgSource::Enum | ArgSource::Literal => {
            let enum_ok = values.is_none() || source == ArgSource::Enum;
            if enum_ok && allowed(value) {
                None
            } else {
                let shown = match source {
                    ArgSource::Enum => value.as_str().unwrap_or_default().to_owned(),
                    _ => value.to_string(),
                };
                return Err(json!({
                    "message": format!("Argument '{arg}' on Field '{field}' has an invalid value ({shown}). Expected type '{ty}'."),
                    "extensions": {"code": "argumentLiteralsIncompatible", "typeName": "Field", "argumentName": arg},
                }));
            }
        }
    };
    match (problem, source) {
        (Some(explanation), ArgSource::Variable(name)) => Err(json!({
            "message": format!("Variable ${name} of type {ty} was provided invalid value"),
            "extensions": {"code": "INVALID_VARIABLE", "value": value,
                           "problems": [{"path": [], "explanation": explanation}]},
        })),
        _ => Ok(()),
    }
}

/// The static (worst-case) cost of a recognised operation, after the GraphQL validation the
/// simulator does: mutations 10; a single object 1; a connection 2 plus its `first` objects,
/// each with its nested connections and sub-objects.
fn requested_cost(op: &Operation, vars: &Value) -> Result<u32, Value> {
    let (known, root_type) = match op.kind {
        Kind::Mutation => (MUTATIONS, "Mutation"),
        Kind::Query => (QUERIES, "QueryRoot"),
    };
    if !known.contains(&op.root) {
        return Err(json!({
            "message": format!("Field '{}' doesn't exist on type '{root_type}'", op.root),
            "extensions": {"code": "undefinedField", "typeName": root_type, "fieldName": op.root},
        }));
    }
    Ok(match op.root {
        "draftOrders" => {
            let first = first_arg(op)?;
            let lines = op
                .nested_args("lineItems", vars)
                .map(|a| 2 + a.get("first").and_then(Value::as_u64).unwrap_or(0));
            let per = 1 + lines.unwrap_or(0);
            (2 + first.saturating_mul(per)).min(u64::from(u32::MAX)) as u32
        }
        "webhookSubscriptions" => {
            let (first, _) = subscriptions_page(op)?;
            (2 + first * per_subscription(op, vars)) as u32
        }
        "webhookSubscriptionCreate" => {
            let topics: Vec<String> = subscriptions::TOPICS
                .iter()
                .map(|t| subscriptions::topic_enum(t))
                .collect();
            check_required(op, "topic", "WebhookSubscriptionTopic!", Some(&topics))?;
            check_required(op, "webhookSubscription", "WebhookSubscriptionInput!", None)?;
            10
        }
        "webhookSubscriptionDelete" => {
            check_required(op, "id", "ID!", None)?;
            10
        }
        "webhookSubscription" => {
            check_required(op, "id", "ID!", None)?;
            1
        }
        "priceList" | "quantityPricingByVariantUpdate" => {
            crate::price_lists::requested_cost(op, vars)?
        }
        r if MUTATIONS.contains(&r) => 10,
        "node" if op.nested_args("metafield", vars).is_some() => 2,
        _ => 1,
    })
}

/// Runs a recognised operation; returns `data` and the actual cost.
fn execute(
    st: &Arc<Shared>,
    shop: &mut Shop,
    op: &Operation,
    vars: &Value,
    version: &str,
) -> (Value, u32) {
    let now = now_rfc3339();
    match op.root {
        "shop" => (
            json!({"shop": {"id": "gid://shopify/Shop/1", "name": shop.domain.trim_end_matches(".myshopify.com"), "myshopifyDomain": shop.domain}}),
            1,
        ),
        "metafieldsSet" => {
            let input = op.args.get("metafields").cloned().unwrap_or(Value::Null);
            (
                json!({"metafieldsSet": shop.metafields.set(&input, st.config.app_id, &now)}),
                10,
            )
        }
        "draftOrderCreate" => {
            let input = op.args.get("input").cloned().unwrap_or(Value::Null);
            let payload = match draft_orders::build(&input, &shop.catalog) {
                Ok(mut d) => {
                    d.id = st.id();
                    d.name = format!("#D{}", shop.drafts.len() + 1);
                    d.invoice_url = format!(
                        "https://{}/{}/invoices/{:032x}",
                        shop.domain,
                        d.id,
                        rand::random::<u128>()
                    );
                    d.created_at = now.clone();
                    let mut errors = Vec::new();
                    if let Some(mfs) = input.get("metafields").and_then(Value::as_array) {
                        let owned: Vec<Value> = mfs
                            .iter()
                            .map(|m| {
                                let mut m = m.clone();
                                m["ownerId"] = json!(format!("gid://shopify/DraftOrder/{}", d.id));
                                m
                            })
                            .collect();
                        let r = shop.metafields.set(&json!(owned), st.config.app_id, &now);
                        errors = r["userErrors"].as_array().cloned().unwrap_or_default();
                    }
                    if errors.is_empty() {
                        let j = d.to_json(lines_selected(op, vars));
                        shop.drafts.push(d);
                        json!({"draftOrder": j, "userErrors": []})
                    } else {
                        json!({"draftOrder": null, "userErrors": errors})
                    }
                }
                Err(errors) => json!({"draftOrder": null, "userErrors": errors}),
            };
            (json!({"draftOrderCreate": payload}), 10)
        }
        "draftOrderInvoiceSend" => {
            let id = op.args.get("id").and_then(Value::as_str).unwrap_or("");
            let lines = lines_selected(op, vars);
            let payload = match draft_orders::invoice_send(&mut shop.drafts, id, &op.args, &now) {
                Ok(d) => json!({"draftOrder": d.to_json(lines), "userErrors": []}),
                Err(e) => json!({"draftOrder": null, "userErrors": [e]}),
            };
            (json!({"draftOrderInvoiceSend": payload}), 10)
        }
        "draftOrders" => {
            let first = op.args.get("first").and_then(Value::as_u64).unwrap_or(0) as usize;
            let after = op
                .args
                .get("after")
                .and_then(Value::as_str)
                .and_then(|c| c.parse::<u64>().ok())
                .unwrap_or(0);
            let tags = draft_orders::tag_filters(
                op.args.get("query").and_then(Value::as_str).unwrap_or(""),
            );
            let matching: Vec<&DraftOrderRecord> = shop
                .drafts
                .iter()
                .filter(|d| d.id > after && tags.iter().all(|t| d.has_tag(t)))
                .collect();
            let lines = lines_selected(op, vars);
            let page: Vec<&&DraftOrderRecord> = matching.iter().take(first).collect();
            let nodes: Vec<Value> = page.iter().map(|d| d.to_json(lines)).collect();
            let edges: Vec<Value> = page
                .iter()
                .zip(&nodes)
                .map(|(d, n)| json!({"cursor": d.id.to_string(), "node": n}))
                .collect();
            let returned_lines: usize = page.iter().map(|d| d.lines.len().min(lines)).sum();
            let per_draft_lines = if op.nested_args("lineItems", vars).is_some() {
                2
            } else {
                0
            };
            let actual = 2 + page.len() * (1 + per_draft_lines) + returned_lines;
            (
                json!({"draftOrders": {
                    "nodes": nodes, "edges": edges,
                    "pageInfo": {"hasNextPage": matching.len() > first,
                                 "endCursor": page.last().map(|d| d.id.to_string())},
                }}),
                actual as u32,
            )
        }
        "bulkOperationRunQuery" => (
            json!({"bulkOperationRunQuery": run_bulk(st, shop, op, version)}),
            10,
        ),
        "webhookSubscriptions" => {
            let api_version = &st.config.delivery.api_version;
            let (first, after) = subscriptions_page(op).unwrap_or((0, 0));
            let matching = shop.subscriptions.matching(&op.args, after);
            let page = &matching[..matching.len().min(first as usize)];
            let nodes: Vec<Value> = page.iter().map(|x| x.to_json(api_version)).collect();
            let edges: Vec<Value> = page
                .iter()
                .zip(&nodes)
                .map(|(x, n)| json!({"cursor": x.legacy_id().to_string(), "node": n}))
                .collect();
            let actual = 2 + page.len() as u64 * per_subscription(op, vars);
            (
                json!({"webhookSubscriptions": {
                    "nodes": nodes, "edges": edges,
                    "pageInfo": {
                        "hasNextPage": matching.len() > page.len(),
                        "hasPreviousPage": after > 0,
                        "startCursor": page.first().map(|x| x.legacy_id().to_string()),
                        "endCursor": page.last().map(|x| x.legacy_id().to_string()),
                    },
                }}),
                actual as u32,
            )
        }
        "webhookSubscription" => {
            let id = op.args.get("id").and_then(Value::as_str).unwrap_or("");
            let found = shop
                .subscriptions
                .live
                .iter()
                .find(|x| x.id == id)
                .map(|x| x.to_json(&st.config.delivery.api_version));
            (json!({"webhookSubscription": found}), 1)
        }
        "webhookSubscriptionCreate" => {
            let topic = op.args.get("topic").and_then(Value::as_str).unwrap_or("");
            let input = op
                .args
                .get("webhookSubscription")
                .cloned()
                .unwrap_or(Value::Null);
            let domain = shop.domain.clone();
            let payload = match shop
                .subscriptions
                .create(|| st.id(), &domain, topic, &input, &now)
            {
                Ok(x) => {
                    json!({"webhookSubscription": x.to_json(&st.config.delivery.api_version), "userErrors": []})
                }
                Err(errors) => json!({"webhookSubscription": null, "userErrors": errors}),
            };
            (json!({"webhookSubscriptionCreate": payload}), 10)
        }
        "webhookSubscriptionDelete" => {
            let id = op.args.get("id").and_then(Value::as_str).unwrap_or("");
            let payload = if shop.subscriptions.delete(id) {
                json!({"deletedWebhookSubscriptionId": id, "userErrors": []})
            } else {
                json!({"deletedWebhookSubscriptionId": null, "userErrors": [
                    {"field": ["id"], "message": "Webhook subscription does not exist"}]})
            };
            (json!({"webhookSubscriptionDelete": payload}), 10)
        }
        "node" => {
            let id = op.args.get("id").and_then(Value::as_str).unwrap_or("");
            let typename = id
                .strip_prefix("gid://shopify/")
                .and_then(|r| r.split('/').next())
                .unwrap_or("");
            let mut node = json!({"__typename": typename, "id": id});
            let mut cost = 1;
            if let Some(a) = op.nested_args("metafield", vars) {
                let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
                let ns = crate::metafields::resolve_namespace(s("namespace"), st.config.app_id);
                node["metafield"] = shop.metafields.get(id, &ns, s("key")).map_or(Value::Null, |m| {
                    json!({"id": format!("gid://shopify/Metafield/{}", m.id), "namespace": m.namespace,
                           "key": m.key, "type": m.kind, "value": m.value, "compareDigest": m.compare_digest})
                });
                cost += 1;
            }
            (
                json!({"node": (!typename.is_empty()).then_some(node)}),
                cost,
            )
        }
        "bulkOperationCancel" => {
            let id = op.args.get("id").and_then(Value::as_str).unwrap_or("");
            let base = result_base(st, &shop.domain);
            let payload = match shop.bulk.iter_mut().find(|o| o.gid() == id) {
                Some(o) if o.status.is_active() => {
                    o.status = BulkStatus::Canceling;
                    json!({"bulkOperation": o.to_json(&base), "userErrors": []})
                }
                Some(o) => json!({"bulkOperation": o.to_json(&base), "userErrors": [{
                    "field": ["id"], "message": format!("A bulk operation cannot be canceled when it is {}", o.status.as_str().to_ascii_lowercase())}]}),
                None => {
                    json!({"bulkOperation": null, "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}]})
                }
            };
            (json!({"bulkOperationCancel": payload}), 10)
        }
        "bulkOperation" => {
            let id = op.args.get("id").and_then(Value::as_str).unwrap_or("");
            let base = result_base(st, &shop.domain);
            let found = shop
                .bulk
                .iter()
                .find(|o| o.gid() == id)
                .map(|o| o.to_json(&base));
            (json!({"bulkOperation": found}), 1)
        }
        "currentBulkOperation" => {
            let base = result_base(st, &shop.domain);
            (
                json!({"currentBulkOperation": shop.bulk.last().map(|o| o.to_json(&base))}),
                1,
            )
        }
        "catalogCreate" | "priceListCreate" | "quantityPricingByVariantUpdate" | "priceList" => {
            let Shop {
                price_lists,
                catalog,
                ..
            } = shop;
            price_lists.execute(op, vars, catalog, &mut || st.id())
        }
        _ => unreachable!("requested_cost admits only known operations"),
    }
}

fn lines_selected(op: &Operation, vars: &Value) -> usize {
    op.nested_args("lineItems", vars)
        .and_then(|a| a.get("first").and_then(Value::as_u64))
        .unwrap_or(0) as usize
}

fn result_base(st: &Shared, domain: &str) -> String {
    format!("{}/bulk/{domain}", st.base_url)
}

fn run_bulk(st: &Arc<Shared>, shop: &mut Shop, op: &Operation, version: &str) -> Value {
    let user_error = |code: &str, message: &str| json!({"bulkOperation": null, "userErrors": [{"field": ["query"], "message": message, "code": code}]});
    let Some(query) = op.args.get("query").and_then(Value::as_str) else {
        return user_error("INVALID", "query is required");
    };
    let export = match orders_search(query) {
        Some(search) => match crate::orders::UpdatedRange::parse(&search) {
            Ok(range) => {
                let (jsonl, objects, roots) = shop.orders.jsonl(&range);
                Some(Arc::new(crate::bulk::Export {
                    jsonl,
                    objects,
                    roots,
                }))
            }
            Err(e) => return user_error("INVALID", &format!("Invalid search query: {e}")),
        },
        None if query.contains("products") => None,
        None => {
            return user_error(
                "INVALID",
                "The simulator's bulk queries export the products or orders connection only.",
            )
        }
    };
    // From 2026-01 several bulk queries may run at once; before, one.
    let (limit, code) = if version >= "2026-01" {
        (st.config.bulk.max_concurrent, "LIMIT_REACHED")
    } else {
        (1, "OPERATION_IN_PROGRESS")
    };
    let active = shop.bulk.iter().filter(|o| o.status.is_active()).count();
    if active >= limit {
        return user_error(
            code,
            &format!("A shop can run at most {limit} bulk query operations at a time. Please try again later."),
        );
    }
    let grouped = op
        .args
        .get("groupObjects")
        .and_then(Value::as_bool)
        .unwrap_or(version < "2026-01");
    let b = BulkOperation {
        id: st.id(),
        query: query.to_owned(),
        created: Instant::now(),
        created_at: now_rfc3339(),
        completed_at: None,
        status: BulkStatus::Created,
        error_code: None,
        spec: shop.catalog.clone(),
        selection: Selection::from_query(query),
        order: if grouped {
            ChildOrder::Grouped
        } else {
            shop.child_order
        },
        fault: shop.bulk_faults.pop_front(),
        truth: None,
        duration: st.config.bulk.duration,
        export,
        file: None,
    };
    let answer = b.to_json(&result_base(st, &shop.domain));
    tokio::spawn(run_lifecycle(st.clone(), shop.domain.clone(), b.clone()));
    shop.bulk.push(b);
    json!({"bulkOperation": answer, "userErrors": []})
}

/// The search string of a bulk query whose root is the `orders` connection (`""` without a
/// `query:` argument); `None` for any other root.
fn orders_search(query: &str) -> Option<String> {
    let body = query.trim_start().trim_start_matches("query").trim_start();
    let rest = body
        .strip_prefix('{')?
        .trim_start()
        .strip_prefix("orders")?;
    let rest = rest.trim_start();
    let Some(args) = rest.strip_prefix('(') else {
        return Some(String::new());
    };
    let args = &args[..args.find(')')?];
    let Some(at) = args.find("query:") else {
        return Some(String::new());
    };
    let value = args[at + "query:".len()..].trim_start().strip_prefix('"')?;
    Some(value[..value.find('"')?].to_owned())
}

/// Moves an operation through its states, then sends `bulk_operations/finish`.
async fn run_lifecycle(st: Arc<Shared>, domain: String, op: BulkOperation) {
    let id = op.id;
    let update = |f: &mut dyn FnMut(&mut BulkOperation)| {
        st.with_shop(&domain, |s| {
            if let Some(o) = s.bulk.iter_mut().find(|o| o.id == id) {
                f(o);
            }
        })
    };
    let truth = tokio::task::spawn_blocking({
        let op = op.clone();
        let dir = st.config.bulk.result_dir.clone();
        let domain = domain.clone();
        move || match (&op.export, dir) {
            (Some(export), _) => (export.truth(), None),
            (None, Some(dir)) if op.fault.is_none() => match render_file(&op, &dir, &domain) {
                Ok((truth, path)) => (truth, Some(path)),
                Err(e) => {
                    tracing::warn!(error = %e, "bulk result not written; served as generated");
                    (op.spec.ground_truth(op.selection, op.order), None)
                }
            },
            (None, _) => (op.spec.ground_truth(op.selection, op.order), None),
        }
    });
    tokio::time::sleep(st.config.bulk.created_for).await;
    update(&mut |o| {
        if o.status == BulkStatus::Created {
            o.status = BulkStatus::Running;
        }
    });
    let Ok((truth, file)) = truth.await else {
        return;
    };
    update(&mut |o| {
        o.truth = Some(truth.clone());
        o.file.clone_from(&file);
    });
    let remaining = op.duration.saturating_sub(op.created.elapsed());
    tokio::time::sleep(remaining).await;
    let mut finished = None;
    update(&mut |o| {
        o.completed_at = Some(now_rfc3339());
        match o.fault {
            _ if o.status == BulkStatus::Canceling => o.status = BulkStatus::Canceled,
            Some(BulkFault::Fail { code, .. }) => {
                o.status = BulkStatus::Failed;
                o.error_code = Some(code);
            }
            _ => o.status = BulkStatus::Completed,
        }
        finished = Some(o.finish_webhook());
    });
    let Some(body) = finished else { return };
    st.emit(
        &domain,
        "bulk_operations/finish",
        body.to_string().into_bytes(),
    )
    .await;
}

/// Writes `op`'s catalog result to `<dir>/<domain>-<id>.jsonl`, after removing the shop's
/// earlier results; returns what it holds and where.
fn render_file(
    op: &BulkOperation,
    dir: &std::path::Path,
    domain: &str,
) -> std::io::Result<(crate::catalog::GroundTruth, std::path::PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let prefix = format!("{domain}-");
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_file(entry.path())?;
        }
    }
    let path = dir.join(format!("{prefix}{}.jsonl", op.id));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let truth = op.spec.render(op.selection, op.order, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok((truth, path))
}

async fn download(
    State(st): State<Arc<Shared>>,
    Path((domain, file)): Path<(String, String)>,
) -> Response {
    let (id, partial) = match file.strip_suffix(".partial.jsonl") {
        Some(id) => (id, true),
        None => match file.strip_suffix(".jsonl") {
            Some(id) => (id, false),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let Ok(id) = id.parse::<u64>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(shop) = st.shops.get(&domain) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let op = shop
        .lock()
        .unwrap()
        .bulk
        .iter()
        .find(|o| o.id == id)
        .cloned();
    let servable = match &op {
        Some(o) if partial => {
            o.status == BulkStatus::Failed
                && matches!(
                    o.fault,
                    Some(BulkFault::Fail {
                        partial_lines: Some(_),
                        ..
                    })
                )
        }
        Some(o) => o.status == BulkStatus::Completed,
        None => false,
    };
    let (true, Some(op)) = (servable, op) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // The file written while the operation ran; gone once a newer one replaced it, and then
    // generated again, byte for byte the same.
    if let (false, Some(path)) = (partial, &op.file) {
        if let Ok(file) = tokio::fs::File::open(path).await {
            return jsonl_response(Body::from_stream(
                tokio_util::io::ReaderStream::with_capacity(file, crate::catalog::CHUNK),
            ));
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    tokio::task::spawn_blocking(move || {
        crate::bulk::write_result(&op, partial, |chunk| tx.blocking_send(chunk).is_ok());
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(Bytes::from(chunk)), rx))
    });
    jsonl_response(Body::from_stream(stream))
}

/// `body` as a JSONL response.
fn jsonl_response(body: Body) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("application/jsonl"),
    );
    resp
}
