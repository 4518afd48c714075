//! `origin rules …`: import a rules file, push, show a buyer's rules.
//!
//! ```text
//! origin rules import --shop S --file rules.csv|rules.json   every row checked; nothing written if one is bad
//! origin rules push --shop S [--all]                           dirty buyers (or all), only changed pages
//! origin rules show --shop S --location GID                    the buyer's rules, computed payload and push state
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;
use sqlx::PgPool;
use wholesail_rules::payload;
use wholesail_webhook::ShopDomain;

use super::compute::{Scope, ShopRules};
use super::file::{self, Format};
use super::store::{self, StoreError};
use super::{push, scheduler};
use crate::shops::Shops;

/// The `rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Import a rules file (CSV with a header, or a JSON array): upsert, idempotent.
    Import {
        /// The shop's myshopify domain.
        #[arg(long)]
        shop: ShopDomain,
        /// The file; its extension (.csv or .json) gives the format.
        #[arg(long)]
        file: PathBuf,
    },
    /// Push the buyers marked dirty (or all with --all); only changed metafields are sent.
    Push {
        /// The shop's myshopify domain.
        #[arg(long)]
        shop: ShopDomain,
        /// Recompute every buyer of the shop.
        #[arg(long)]
        all: bool,
    },
    /// Show a buyer's rules, the payload computed now, and what was pushed.
    Show {
        /// The shop's myshopify domain.
        #[arg(long)]
        shop: ShopDomain,
        /// The company location GID.
        #[arg(long)]
        location: String,
    },
}

/// Runs a `rules` subcommand; output is JSON on stdout.
pub async fn run(pool: &PgPool, shops: &Shops, command: RulesCommand) -> Result<()> {
    match command {
        RulesCommand::Import { shop, file } => {
            let format = Format::from_path(&file)
                .with_context(|| format!("{}: expected a .csv or .json file", file.display()))?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rules = match file::parse(&text, format) {
                Ok(r) => r,
                Err(errors) => return invalid(&file, &errors),
            };
            match store::upsert(pool, &shop, rules).await {
                Ok(n) => println!("{}", json!({ "imported": n, "file": file })),
                Err(StoreError::Invalid(errors)) => return invalid(&file, &errors),
                Err(e) => return Err(e.into()),
            }
        }
        RulesCommand::Push { shop, all } => {
            let client = shops.client(&shop)?;
            let report = if all {
                push::push(pool, &client, &shop, None).await?
            } else {
                scheduler::push_dirty(pool, &client, &shop).await?
            };
            println!("{}", serde_json::to_string(&report)?);
            if !report.failed.is_empty() {
                bail!("{} buyers could not be pushed", report.failed.len());
            }
        }
        RulesCommand::Show { shop, location } => {
            let rows: Vec<_> = store::list(pool, &shop, Some(&location))
                .await?
                .iter()
                .map(|r| r.to_row())
                .collect();
            let locations = [location.clone()];
            let computed = ShopRules::load(
                pool,
                &shop,
                Scope {
                    locations: Some(&locations),
                    variants: None,
                },
            )
            .await?;
            let rules = computed.buyer_rules(&location)?;
            let variants: Vec<_> = rules
                .variants()
                .iter()
                .map(|v| {
                    json!({
                        "variant_id": v.variant_id, "increment": v.increment, "min": v.min,
                        "max": v.max, "quota_remaining": v.quota_remaining, "stock": v.stock,
                        "eligible": v.eligible,
                    })
                })
                .collect();
            let pages = payload::encode(&location, &rules).map_err(|e| e.to_string());
            let pushed = sqlx::query!(
                r#"SELECT key, digest, pushed_at::text AS "pushed_at!" FROM rules_pushed
                   WHERE shop = $1 AND owner_id = $2 ORDER BY key"#,
                shop.as_str(),
                location
            )
            .fetch_all(pool)
            .await?;
            let pushed: Vec<_> = pushed
                .into_iter()
                .map(|r| json!({"key": r.key, "digest": r.digest, "pushed_at": r.pushed_at}))
                .collect();
            let out = json!({
                "shop": shop,
                "location": location,
                "known": computed.has_buyer(&location),
                "rules": rows,
                "computed": {
                    "order_minimum": rules.order_minimum().map(|m| m.to_string()),
                    "variants": variants,
                },
                "pages": pages.as_ref().ok(),
                "payload_error": pages.as_ref().err(),
                "pushed": pushed,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}

fn invalid(file: &std::path::Path, errors: &[file::RowError]) -> Result<()> {
    for e in errors {
        eprintln!("{}: {e}", file.display());
    }
    bail!(
        "{}: {} errors, nothing imported",
        file.display(),
        errors.len()
    )
}
