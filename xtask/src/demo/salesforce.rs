//! Salesforce: an org that already has Accounts, the shop connected to it, companies matched
//! (one linked to its Account, one ambiguous waiting for review), an order in Salesforce, and a
//! Quote approved in Salesforce coming back as linked draft orders with their checkout links.
//!
//! The demo acts as the org's people through the simulator's REST API (API writes without
//! Wholesail's `Sforce-Call-Options` client, so origin reads them as changes made by others).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use wholesail_matching::NameKey;

use super::{check, step, wait_until, webhooks, Demo, SHOP};
use crate::http;
use crate::service::Service;
use crate::shell::target_dir;

const ADDR: &str = "127.0.0.1:18788";
const GRPC_ADDR: &str = "127.0.0.1:18743";
const CLIENT_ID: &str = "wholesail_simulator_client";
const CLIENT_SECRET: &str = "wholesail_simulator_secret";
const FABRIKAM: i64 = 5_500_001;
const CONTOSO: i64 = 5_500_002;
const FABRIKAM_LOCATION: i64 = 5_600_001;
const ORDER: i64 = 5_700_001;
/// Lines of the Quote approved in Salesforce (two drafts of at most 499).
const QUOTE_LINES: usize = 600;

/// The org as its people see it: the simulator's REST API with a session of its own.
struct Org {
    token: String,
}

impl Org {
    fn url(path: &str) -> String {
        format!("http://{ADDR}/services/data/v62.0{path}")
    }

    fn get(&self, path: &str) -> Result<Value> {
        let (status, body) = http::get_json(&Self::url(path), &self.token)?;
        if status != 200 {
            bail!("Salesforce GET {path}: {status} {body}");
        }
        Ok(body)
    }

    fn query(&self, soql: &str) -> Result<Vec<Value>> {
        let q: String = soql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body = self.get(&format!("/query?q={q}"))?;
        Ok(body["records"].as_array().cloned().unwrap_or_default())
    }

    /// Creates `records` (200 a call); their ids.
    fn create(&self, records: Vec<Value>) -> Result<Vec<String>> {
        let mut ids = Vec::with_capacity(records.len());
        for chunk in records.chunks(200) {
            let (status, body) = http::send_json(
                "POST",
                &Self::url("/composite/sobjects"),
                &self.token,
                &json!({"allOrNone": true, "records": chunk}),
            )?;
            if status != 200 {
                bail!("Salesforce create: {status} {body}");
            }
            for r in body.as_array().context("results")? {
                let id = r["id"].as_str();
                ids.push(
                    id.with_context(|| format!("Salesforce did not create: {r}"))?
                        .to_owned(),
                );
            }
        }
        Ok(ids)
    }

    fn update(&self, object: &str, id: &str, fields: Value) -> Result<()> {
        let (status, body) = http::send_json(
            "PATCH",
            &Self::url(&format!("/sobjects/{object}/{id}")),
            &self.token,
            &fields,
        )?;
        if !(200..300).contains(&status) {
            bail!("Salesforce PATCH {object}/{id}: {status} {body}");
        }
        Ok(())
    }
}

/// Starts the Salesforce simulator (before origin, whose configuration names it).
pub(super) fn start_simulator(dir: &Path) -> Result<Service> {
    let mut c = Command::new(target_dir().join("debug/salesforce-simulator"));
    c.env("SALESFORCE_SIMULATOR_BIND", ADDR)
        .env("SALESFORCE_SIMULATOR_GRPC_BIND", GRPC_ADDR);
    let mut sim = Service::start("the Salesforce simulator", c, &dir.join("salesforce.log"))?;
    sim.wait_ready(Duration::from_secs(30), |_| {
        Ok(std::net::TcpStream::connect(ADDR).is_ok())
    })?;
    Ok(sim)
}

/// The `[[salesforce.orgs]]` entry that connects the demo shop.
pub(super) fn org_config() -> String {
    format!(
        "\n[[salesforce.orgs]]\nshop = \"{SHOP}\"\nlogin_url = \"http://{ADDR}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         pubsub_url = \"http://{GRPC_ADDR}\"\n"
    )
}

fn login() -> Result<Org> {
    let (status, body) = http::post_form(
        &format!("http://{ADDR}/services/oauth2/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
    )?;
    let token = body["access_token"]
        .as_str()
        .with_context(|| format!("Salesforce login: {status} {body}"))?;
    Ok(Org {
        token: token.to_owned(),
    })
}

fn account(name: &str, domain: Option<&str>) -> Value {
    json!({"attributes": {"type": "Account"}, "Name": name,
           "Website": domain.map(|d| format!("https://www.{d}")),
           "Wholesail_Name_Key__c": NameKey::new(name).to_string(),
           "Wholesail_Domain__c": domain})
}

/// The demo's Salesforce steps; `restart` brings origin back with `config` rewritten.
pub(super) fn sync_and_quote_to_cash(
    demo: &Demo,
    restart: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    step("Salesforce: the org already has Accounts; a Fabrikam order arrives before the shop is connected");
    let org = login()?;
    let existing = org.create(vec![
        account("Fabrikam Supply, Inc.", Some("fabrikam.example")),
        account("Contoso Ltd", None),
        account("Contoso Limited", None),
    ])?;
    println!("   Accounts in Salesforce: Fabrikam Supply, Inc.; Contoso Ltd; Contoso Limited");
    // The order's lines and the quote's come from different products: the sync sends an
    // order's products (every variant of each) before the order.
    let variants = |order: &str, limit: usize| {
        postgres_rows(
            demo,
            &format!(
                "SELECT id || ',' || product_id || ',' || coalesce(sku, '') FROM variants
                 ORDER BY id {order} LIMIT {limit}"
            ),
        )
    };
    let ordered = variants("DESC", 3)?;
    let quoted = variants("ASC", QUOTE_LINES)?;
    let order = json!({
        "id": ORDER, "admin_graphql_api_id": format!("gid://shopify/Order/{ORDER}"),
        "name": "#F-1001", "email": "ana.ruiz@fabrikam.example", "currency": "USD",
        "created_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:00:00Z",
        "po_number": "PO-77", "financial_status": "pending",
        "customer": {"id": 5_800_001, "email": "ana.ruiz@fabrikam.example",
                     "first_name": "Ana", "last_name": "Ruiz"},
        "company": {"id": FABRIKAM, "location_id": FABRIKAM_LOCATION},
        "line_items": ordered.iter().enumerate().map(|(i, (v, p, sku))| json!({
            "id": ORDER * 10 + i as i64, "variant_id": v, "product_id": p, "sku": sku,
            "quantity": 10 + i, "price": "12.50"})).collect::<Vec<_>>(),
    });
    deliver(demo, &[("orders/create", &order)])?;
    wait_until("the order in origin", Duration::from_secs(60), || {
        demo.count(&format!("SELECT count(*) FROM orders WHERE id = {ORDER}"))
            .map(|n| n == 1)
    })?;

    step("Salesforce: origin connects the shop; companies arrive; one is linked, one waits for review");
    restart()?;
    let company = |id: i64, name: &str| {
        json!({"id": id, "admin_graphql_api_id": format!("gid://shopify/Company/{id}"),
               "name": name, "created_at": "2026-01-05T10:00:00Z",
               "updated_at": "2026-11-23T10:01:00Z"})
    };
    let location = json!({"id": FABRIKAM_LOCATION,
        "admin_graphql_api_id": format!("gid://shopify/CompanyLocation/{FABRIKAM_LOCATION}"),
        "name": "Fabrikam Receiving", "created_at": "2026-01-05T10:00:00Z",
        "updated_at": "2026-11-23T10:01:00Z",
        "company": {"admin_graphql_api_id": format!("gid://shopify/Company/{FABRIKAM}"),
                    "name": "Fabrikam Supply"},
        "shipping_address": {"country_code": "US", "province_code": "WA", "zip": "98052",
                             "city": "Redmond"}});
    let mut updated = order.clone();
    updated["updated_at"] = json!("2026-11-23T10:02:00Z");
    deliver(
        demo,
        &[
            ("companies/create", &company(FABRIKAM, "Fabrikam Supply")),
            ("company_locations/create", &location),
            ("companies/create", &company(CONTOSO, "Contoso")),
            ("orders/updated", &updated),
        ],
    )?;
    wait_until(
        "the order in Salesforce and Contoso in review",
        Duration::from_secs(90),
        || {
            let order = org.query(&format!(
                "SELECT Id FROM Order WHERE Shopify_Order_Id__c = '{ORDER}'"
            ))?;
            let review =
                demo.count("SELECT count(*) FROM salesforce_links WHERE decision = 'review'")?;
            Ok(order.len() == 1 && review == 1)
        },
    )?;
    let fabrikam = org.query(&format!(
        "SELECT Id, Name FROM Account WHERE Shopify_Company_Id__c = '{FABRIKAM}'"
    ))?;
    check(
        fabrikam.len() == 1 && fabrikam[0]["Id"] == json!(existing[0]),
        "Fabrikam Supply was linked to the existing \"Fabrikam Supply, Inc.\" Account (same name and business domain), not created again",
    )?;
    let items = org.query(&format!(
        "SELECT Id FROM OrderItem WHERE Order.Shopify_Order_Id__c = '{ORDER}'"
    ))?;
    check(
        items.len() == 3,
        "the order is in Salesforce with its 3 lines, on the linked Account",
    )?;
    let review: Value =
        serde_json::from_str(&demo.origin_cli(&["salesforce", "review", "--json"])?)?;
    println!(
        "   origin salesforce review: {} ({} candidates)",
        review["review"][0]["name"],
        review["review"][0]["candidates"]
            .as_array()
            .map_or(0, Vec::len)
    );
    let accounts = org.query("SELECT Id FROM Account")?;
    check(
        accounts.len() == 3,
        "Contoso waits for an operator: two candidate Accounts, nothing created",
    )?;

    step(&format!(
        "Salesforce: a {QUOTE_LINES}-line Quote approved in Salesforce comes back as linked draft orders"
    ));
    let book = org.query("SELECT Id FROM Pricebook2 WHERE IsStandard = true")?;
    let book = book
        .first()
        .and_then(|b| b["Id"].as_str())
        .context("the standard price book")?
        .to_owned();
    let products = org.create(
        quoted
            .iter()
            .map(|(v, _, sku)| {
                json!({"attributes": {"type": "Product2"}, "Name": format!("SKU {sku}"),
                       "Shopify_Variant_Id__c": v.to_string()})
            })
            .collect(),
    )?;
    let entries = org.create(
        quoted
            .iter()
            .zip(&products)
            .map(|((v, _, _), p)| {
                json!({"attributes": {"type": "PricebookEntry"}, "Pricebook2Id": book,
                       "Product2Id": p, "UnitPrice": 10, "IsActive": true,
                       "Shopify_Variant_Id__c": v.to_string()})
            })
            .collect(),
    )?;
    let quote = org
        .create(vec![json!({"attributes": {"type": "Quote"},
        "Name": "Q-2026-118 Fabrikam spring restock", "AccountId": existing[0],
        "Pricebook2Id": book, "Status": "Draft"})])?
        .remove(0);
    org.create(
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                json!({"attributes": {"type": "QuoteLineItem"}, "QuoteId": quote,
                       "PricebookEntryId": e, "Quantity": 1 + i % 4, "UnitPrice": 10})
            })
            .collect(),
    )?;
    wait_until(
        "origin's change subscription",
        Duration::from_secs(30),
        || {
            Ok(http::text(
                &format!("http://{}/metrics", super::ORIGIN_ADDR),
                &demo.ops_token,
            )?
            .lines()
            .any(|l| l.starts_with("wholesail_salesforce_cdc_connected") && l.ends_with(" 1")))
        },
    )?;
    let approved = Instant::now();
    org.update("Quote", &quote, json!({"Status": "Approved"}))?;
    println!("   a salesperson sets the Quote to Approved");
    let mut written = Value::Null;
    wait_until(
        "the checkout links on the Quote",
        Duration::from_secs(120),
        || {
            written = org.get(&format!("/sobjects/Quote/{quote}"))?;
            Ok(written["Shopify_Draft_Status__c"].is_string())
        },
    )?;
    let status = written["Shopify_Draft_Status__c"]
        .as_str()
        .unwrap_or_default();
    let links = written["Shopify_Invoice_Urls__c"]
        .as_str()
        .map_or(0, |u| u.lines().count());
    println!(
        "   Quote after {:.1} s: Shopify_Draft_Status__c = {status:?}; Shopify_Invoice_Urls__c: {links} checkout links",
        approved.elapsed().as_secs_f64()
    );
    check(
        status.starts_with("completed: 2 draft orders") && links == 2,
        "the approved Quote became 2 linked draft orders; their checkout links are on the Quote",
    )?;
    let parts = demo.count(&format!(
        "SELECT count(*) FROM draft_order_parts p JOIN draft_order_jobs j ON j.id = p.job_id
         WHERE j.quote_id = '{quote}' AND p.invoice_url IS NOT NULL"
    ))?;
    check(
        parts == 2,
        "origin's draft-order job for the Quote holds both drafts",
    )?;
    let status: Value = serde_json::from_str(&demo.origin_cli(&["salesforce", "status"])?)?;
    println!("   origin salesforce status: {}", status["inbound"]);
    Ok(())
}

/// Delivers `payloads` through the edge as Shopify does.
fn deliver(demo: &Demo, payloads: &[(&str, &Value)]) -> Result<()> {
    let mut args = vec!["--orders".to_owned(), "0".to_owned()];
    for (i, (topic, payload)) in payloads.iter().enumerate() {
        let file = demo.dir.join(format!("salesforce-{i}.json"));
        std::fs::write(&file, payload.to_string())?;
        args.push("--payload".into());
        args.push(format!("{topic}={}", file.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    webhooks::deliver(&args)?;
    Ok(())
}

/// `variant,product,sku` rows of `sql`.
fn postgres_rows(demo: &Demo, sql: &str) -> Result<Vec<(i64, i64, String)>> {
    crate::postgres::query(&demo.db, sql)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, ',');
            let mut next = || parts.next().context("a column");
            Ok((next()?.parse()?, next()?.parse()?, next()?.to_owned()))
        })
        .collect()
}
