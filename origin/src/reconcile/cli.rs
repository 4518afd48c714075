//! `origin reconcile …`:
//! - `subscriptions --shop S [--report-only]`: one run now; prints its counts and findings;
//! - `runs [--shop S] [--limit N]`: the latest runs, newest first;
//! - `show --shop S --run N`: one run's findings.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use sqlx::PgPool;
use wholesail_webhook::ShopDomain;

use super::runs::{self, Mode, Trigger};
use super::subscriptions;
use crate::shops::Shops;

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
    /// The latest runs, newest first.
    Runs {
        /// Only this shop.
        #[arg(long)]
        shop: Option<ShopDomain>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// One run's findings.
    Show {
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
            }
        )
    }
}

/// Runs one command; prints JSON.
pub async fn run(
    pool: &PgPool,
    shops: &Shops,
    settings: &super::Settings,
    command: ReconcileCommand,
) -> Result<()> {
    let out = match command {
        ReconcileCommand::Subscriptions { shop, report_only } => {
            let uri = settings
                .webhook_uri
                .as_deref()
                .context("set reconcile.webhook_uri to the edge's POST /webhooks address")?;
            let client = shops.client(&shop)?;
            let mode = match report_only {
                true => Mode::Report,
                false => Mode::Heal,
            };
            let (run, counts) =
                subscriptions::reconcile(pool, &client, &shop, uri, mode, Trigger::Operator)
                    .await?;
            let findings = runs::findings(pool, &shop, run).await?;
            json!({ "shop": shop, "run": run, "counts": counts, "findings": findings })
        }
        ReconcileCommand::Runs { shop, limit } => {
            json!({ "runs": runs::recent(pool, shop.as_ref(), limit.clamp(1, 1_000)).await? })
        }
        ReconcileCommand::Show { shop, run } => {
            json!({ "shop": shop, "run": run, "findings": runs::findings(pool, &shop, run).await? })
        }
    };
    println!("{out}");
    Ok(())
}
