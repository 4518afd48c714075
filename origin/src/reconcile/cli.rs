//! `origin reconcile …`:
//! - `subscriptions --shop S [--report-only]`: one run now; prints its counts and findings;
//! - `orders --shop S [--since T] [--until T] [--report-only]`: the orders updated in the
//!   window (default: the last 48 hours) against PostgreSQL, healed through the inbox;
//! - `catalog --shop S [--report-only]`: products, variants and inventory levels through a
//!   catalog run;
//! - `price-lists --shop S [--report-only]`: every buyer's B2B catalog, price list and quantity
//!   rules at Shopify against the price matrix;
//! - `salesforce --shop S [--since T] [--report-only]`: Salesforce records changed in the
//!   window against what the outbox sends (default: the last 48 hours);
//! - `runs [--shop S] [--limit N] [--json]`: the latest runs, newest first;
//! - `show --shop S --run N [--json]`: one run's findings.
//!
//! Listings print tables (`--json`: the JSON document); the other commands print JSON.

use anyhow::{Context, Result};
use clap::Subcommand;
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use super::runs::{self, Counts, Mode, Trigger, Window};
use super::{catalog, orders, subscriptions};
use crate::cli_output;
use crate::config::Config;
use crate::shops::Shops;

fn rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s}: {e} (e.g. 2026-11-01T00:00:00Z)"))
}

/// A run's counts and findings.
async fn report(
    pool: &PgPool,
    shop: &ShopDomain,
    run: i64,
    counts: Counts,
) -> Result<serde_json::Value> {
    let findings = runs::findings(pool, shop, run).await?;
    Ok(json!({ "shop": shop, "run": run, "counts": counts, "findings": findings }))
}

fn mode(report_only: bool) -> Mode {
    match report_only {
        true => Mode::Report,
        false => Mode::Heal,
    }
}

/// The `reconcile` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Compares the shop's webhook subscriptions with the required topics at
    /// `reconcile.webhook_uri` and recreates the missing ones.
    Subscriptions {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// Record the findings, change nothing.
        #[arg(long)]
        report_only: bool,
    },
    /// Compares the orders updated in a window with PostgreSQL and queues the missing and
    /// stale ones to the handlers.
    Orders {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// From (RFC 3339; default: 48 hours ago).
        #[arg(long, value_parser = rfc3339)]
        since: Option<OffsetDateTime>,
        /// Until (RFC 3339; default and at most: now minus `reconcile.settle_ms`).
        #[arg(long, value_parser = rfc3339)]
        until: Option<OffsetDateTime>,
        /// Record the findings, change nothing.
        #[arg(long)]
        report_only: bool,
    },
    /// Compares products, variants and inventory levels with a fresh export, and heals them
    /// through a catalog run.
    Catalog {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// Record the findings, change nothing.
        #[arg(long)]
        report_only: bool,
    },
    /// Compares every buyer's price list and quantity rules at Shopify with the price matrix
    /// and writes the differences.
    PriceLists {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// Record the findings, change nothing.
        #[arg(long)]
        report_only: bool,
    },
    /// Compares the Salesforce records changed in a window with what the sync sends, finds
    /// deleted ones and orders never sent, and re-enqueues them.
    Salesforce {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// From (RFC 3339; default: 48 hours ago).
        #[arg(long, value_parser = rfc3339)]
        since: Option<OffsetDateTime>,
        /// Record the findings, change nothing.
        #[arg(long)]
        report_only: bool,
    },
    /// The latest runs, newest first: a table, or `{"runs": [...]}` with `--json`.
    Runs {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this shop.
        #[arg(long)]
        shop: Option<ShopDomain>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// One run's findings: a table, or JSON with `--json`.
    Show {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// The run's id.
        #[arg(long)]
        run: i64,
    },
}

impl ReconcileCommand {
    /// Whether the command may change anything (it is audited).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            ReconcileCommand::Subscriptions {
                report_only: false,
                ..
            } | ReconcileCommand::Orders {
                report_only: false,
                ..
            } | ReconcileCommand::Catalog {
                report_only: false,
                ..
            } | ReconcileCommand::Salesforce {
                report_only: false,
                ..
            } | ReconcileCommand::PriceLists {
                report_only: false,
                ..
            }
        )
    }
}

/// Runs one command; prints JSON.
pub async fn run(
    pool: &PgPool,
    shops: &Shops,
    config: &Config,
    command: ReconcileCommand,
) -> Result<()> {
    let settings = &config.reconcile;
    let out = match command {
        ReconcileCommand::Subscriptions { shop, report_only } => {
            let uri = settings
                .webhook_uri
                .as_deref()
                .context("set reconcile.webhook_uri to the edge's POST /webhooks address")?;
            let client = shops.client(&shop)?;
            let (run, counts) = subscriptions::reconcile(
                pool,
                &client,
                &shop,
                uri,
                mode(report_only),
                Trigger::Operator,
            )
            .await?;
            report(pool, &shop, run, counts).await?
        }
        ReconcileCommand::Orders {
            shop,
            since,
            until,
            report_only,
        } => {
            let client = shops.client(&shop)?;
            let window = Window {
                start: Some(since.unwrap_or(OffsetDateTime::now_utc() - time::Duration::hours(48))),
                end: until,
            };
            let timing = settings.orders_timing(&config.catalog);
            let (run, counts) = orders::reconcile(
                pool,
                &client,
                &shop,
                window,
                &timing,
                mode(report_only),
                Trigger::Operator,
            )
            .await?;
            report(pool, &shop, run, counts).await?
        }
        ReconcileCommand::Catalog { shop, report_only } => {
            let client = shops.client(&shop)?;
            let runner = crate::catalog::Runner::from_url(
                pool.clone(),
                config.database_url.expose_secret(),
                config.catalog.settings(),
            )?;
            let (run, counts) = catalog::reconcile(
                pool,
                &runner,
                client,
                &shop,
                std::time::Duration::from_millis(settings.settle_ms),
                mode(report_only),
                Trigger::Operator,
            )
            .await?;
            report(pool, &shop, run, counts).await?
        }
        ReconcileCommand::PriceLists { shop, report_only } => {
            let client = shops.client(&shop)?;
            let (run, counts) = super::price_lists::reconcile(
                pool,
                &client,
                &shop,
                None,
                mode(report_only),
                Trigger::Operator,
            )
            .await?;
            report(pool, &shop, run, counts).await?
        }
        ReconcileCommand::Salesforce {
            shop,
            since,
            report_only,
        } => {
            let clients = config.salesforce.clients()?;
            let client = clients.get(&shop).with_context(|| {
                format!("no [[salesforce.orgs]] entry connects {shop} to Salesforce")
            })?;
            let window = Window {
                start: Some(
                    since
                        .unwrap_or(OffsetDateTime::now_utc() - super::salesforce::DEFAULT_LOOKBACK),
                ),
                end: None,
            };
            let (run, counts) = super::salesforce::reconcile(
                pool,
                client,
                &config.salesforce.sync,
                &shop,
                window,
                mode(report_only),
                Trigger::Operator,
            )
            .await?;
            report(pool, &shop, run, counts).await?
        }
        ReconcileCommand::Runs { json, shop, limit } => {
            let recent = runs::recent(pool, shop.as_ref(), limit.clamp(1, 1_000)).await?;
            let total = runs::count(pool, shop.as_ref()).await?;
            let cut = cli_output::cut_notice(recent.len(), total);
            let out = json!({ "runs": recent });
            let columns = [
                ("ID", "id"),
                ("SHOP", "shop"),
                ("SCOPE", "scope"),
                ("MODE", "mode"),
                ("STARTED", "started_at"),
                ("FINISHED", "finished_at"),
                ("COMPARED", "compared"),
                ("MISSING", "missing"),
                ("STALE", "stale"),
                ("HEALED", "healed"),
                ("FAILED", "failed"),
                ("ERROR", "error"),
            ];
            cli_output::print_document(json, &out, &out["runs"], &columns, cut);
            return Ok(());
        }
        ReconcileCommand::Show { json, shop, run } => {
            let findings = runs::findings(pool, &shop, run).await?;
            if findings.is_empty() && !runs::exists(pool, &shop, run).await? {
                anyhow::bail!(
                    "no reconciliation run {run} of {shop}; `origin reconcile runs --shop {shop}` lists them"
                );
            }
            let out = json!({ "shop": shop, "run": run, "findings": findings });
            let columns = [
                ("KIND", "kind"),
                ("RECORD", "record"),
                ("FOUND", "found_at"),
                ("HEALED", "healed_at"),
                ("ERROR", "error"),
                ("DETAIL", "detail"),
            ];
            cli_output::print_document(json, &out, &out["findings"], &columns, None);
            return Ok(());
        }
    };
    println!("{out}");
    Ok(())
}
