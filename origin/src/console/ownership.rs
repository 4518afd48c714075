//! `GET /console/ownership`: who owns each field, the only system that may write it.
//!
//! - Shopify owns the commerce records origin mirrors (orders, customers, companies and their
//!   locations, products, variants, inventory): origin applies webhooks and catalog resyncs and
//!   never writes them back (`handlers/README.md`, `catalog/README.md`).
//! - Origin owns the B2B rules and what is derived from them: the `wholesail` metafields of
//!   company locations (rules push) and the draft orders it creates from quotes.
//! - Salesforce fields are split by [`crate::salesforce::mapping::OWNERSHIP`]: the sync writes
//!   only Shopify-owned ones; an edit of one in Salesforce is drift, restored by origin.

use maud::{html, Markup};

use super::layout;
use super::session::Session;
use crate::salesforce::mapping::{Owner, OWNERSHIP};

/// The Shopify ⇄ origin side: (data, where origin keeps it, owner, how it flows).
const COMMERCE: &[(&str, &str, &str, &str)] = &[
    (
        "Orders and order lines",
        "orders, order_lines",
        "Shopify",
        "webhooks (orders/*) → origin; reconciliation heals drift",
    ),
    (
        "Customers",
        "customers",
        "Shopify",
        "webhooks (customers/*) → origin",
    ),
    (
        "Companies and locations",
        "companies, company_locations",
        "Shopify",
        "webhooks (companies/*, company_locations/*) → origin",
    ),
    (
        "Products, variants",
        "products, variants",
        "Shopify",
        "webhooks and catalog resync → origin",
    ),
    (
        "Inventory levels",
        "inventory_levels",
        "Shopify",
        "webhooks and catalog resync → origin",
    ),
    (
        "Product and variant metafields (wholesail)",
        "catalog_metafields",
        "Shopify",
        "catalog resync → origin",
    ),
    (
        "B2B rules: prices, limits, quotas, minimums, routing",
        "rule_* tables",
        "origin",
        "rules import (CLI, API) → origin",
    ),
    (
        "Company location metafields (wholesail.*)",
        "rules_pushed",
        "origin",
        "origin → Shopify (rules push), read by the checkout Function",
    ),
    (
        "Draft orders from quotes",
        "draft_order_jobs, draft_order_parts",
        "origin",
        "origin → Shopify (draftOrderCreate)",
    ),
];

fn owner_badge(owner: &str) -> Markup {
    let class = match owner {
        "Shopify" => "ok",
        "Salesforce" => "warn",
        _ => "",
    };
    html! { span class={ "badge " (class) } { (owner) } }
}

/// `GET /console/ownership`.
pub async fn page(session: Session) -> Markup {
    let mut objects: Vec<&str> = OWNERSHIP.iter().map(|(o, _, _)| *o).collect();
    objects.dedup();
    let content = html! {
        p { "Every field has one owner, the only system that may write it. The others read it." }
        h2 { "Shopify and origin" }
        table {
            tr { th { "data" } th { "origin tables" } th { "owner" } th { "flow" } }
            @for (data, tables, owner, flow) in COMMERCE {
                tr { td { (data) } td { code { (tables) } } td { (owner_badge(owner)) } td { (flow) } }
            }
        }
        h2 { "Salesforce" }
        p.muted { "Shopify-owned fields are written by the sync from origin's tables (an edit in Salesforce is drift and is restored); Salesforce-owned fields are never sent." }
        table {
            tr { th { "object" } th { "field" } th { "owner" } th { "written by" } }
            @for object in &objects {
                @for (_, field, owner) in OWNERSHIP.iter().filter(|(o, _, _)| o == object) {
                    tr {
                        td { code { (object) } }
                        td { code { (field) } }
                        @match owner {
                            Owner::Shopify => { td { (owner_badge("Shopify")) } td { "origin's Salesforce sync" } }
                            Owner::Salesforce => { td { (owner_badge("Salesforce")) } td { "people and automation in Salesforce" } }
                        }
                    }
                }
            }
        }
    };
    layout::page(
        &session,
        "/console/ownership",
        "Field ownership",
        None,
        content,
    )
}
