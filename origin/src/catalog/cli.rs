//! `origin catalog …`: resync a shop's catalog with a progress bar, look at runs, cancel one.
//!
//! ```text
//! origin catalog resync --shop acme.myshopify.com [--shop-url URL] [--api-version 2026-01] [--poll-secs N]
//! origin catalog runs [--shop S] [--limit N] [--json]
//! origin catalog show ID
//! origin catalog cancel ID
//! ```
//! The shop's Admin API access comes from its `[[shops]]` entry in origin's configuration, or,
//! for a shop not configured there, from `SHOPIFY_ACCESS_TOKEN` (never a flag: it would show
//! in the process list) with `--shop-url` / `--api-version`.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use wholesail_shopify_admin::{AdminClient, AdminConfig, AdminError};
use wholesail_webhook::ShopDomain;

use super::driver::Take;
use super::runner::{Outcome, Progress, RunError, Runner, Settings};
use super::runs;
use crate::cli_output;
use crate::pg_tls::{PgConnect, PgTlsError};
use crate::shops::{ShopError, Shops, DEFAULT_API_VERSION};

/// `origin catalog` subcommands.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Resync the shop's catalog from a Shopify bulk export; when the shop's run is already
    /// active, watch it to its end (it is driven by its own process).
    Resync(ResyncArgs),
    /// List recent runs, newest first: a table, or JSON lines with `--json`.
    Runs {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this shop.
        #[arg(long)]
        shop: Option<ShopDomain>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Show one run (JSON).
    Show {
        /// Run id.
        id: i64,
    },
    /// Ask a running resync to stop (it cancels the bulk operation or abandons the import;
    /// the live tables are untouched).
    Cancel {
        /// Run id.
        id: i64,
    },
}

/// `origin catalog resync` arguments.
#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// The shop's myshopify domain.
    #[arg(long)]
    pub shop: ShopDomain,
    /// Base URL of the shop's Admin API when the token comes from `SHOPIFY_ACCESS_TOKEN`
    /// (default `https://<shop>`; the simulator's for tests).
    #[arg(long, env = "SHOPIFY_SHOP_URL")]
    pub shop_url: Option<String>,
    /// Admin API version, when the token comes from `SHOPIFY_ACCESS_TOKEN`.
    #[arg(long, env = "SHOPIFY_API_VERSION", default_value = DEFAULT_API_VERSION)]
    pub api_version: String,
    /// Admin API access token for a shop not in the configuration.
    #[arg(
        long = "access-token-env-only",
        env = "SHOPIFY_ACCESS_TOKEN",
        hide = true
    )]
    pub access_token: Option<SecretString>,
    /// Seconds between two bulk operation polls.
    #[arg(long, default_value_t = 5)]
    pub poll_secs: u64,
}

/// Why a catalog command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Shopify client setup failed.
    #[error(transparent)]
    Shopify(#[from] AdminError),
    /// The shop has no client (not configured and no `SHOPIFY_ACCESS_TOKEN`).
    #[error(transparent)]
    Shop(#[from] ShopError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// No such run.
    #[error("no catalog run {0}, or it has already ended; `origin catalog runs` lists them")]
    NotFound(i64),
    /// The database URL cannot be used for the COPY connections.
    #[error(transparent)]
    DatabaseUrl(#[from] PgTlsError),
    /// Ctrl-C while watching a run another process drives: the run goes on.
    #[error("stopped watching catalog run {0}; it goes on (origin catalog show {0})")]
    StoppedWatching(i64),
}

/// Runs a catalog command against `pool`; `database_url` (the same database) opens the COPY
/// connections; `settings` are the configured runner settings (`[catalog]`).
pub async fn run(
    pool: PgPool,
    database_url: &SecretString,
    shops: &Shops,
    settings: Settings,
    cmd: CatalogCommand,
) -> Result<(), CliError> {
    match cmd {
        CatalogCommand::Resync(args) => {
            let copy = PgConnect::from_url(database_url.expose_secret())?;
            let outcome = resync(pool, copy, shops, settings, args).await?;
            println!("{}", summary(&outcome));
        }
        CatalogCommand::Runs { json, shop, limit } => {
            let listed = runs::list(&pool, shop.as_ref(), limit).await?;
            let total = runs::count(&pool, shop.as_ref()).await?;
            let rows: Vec<serde_json::Value> = listed
                .iter()
                .map(|r| serde_json::to_value(r).unwrap_or_default())
                .collect();
            let lines: Vec<String> = rows.iter().map(ToString::to_string).collect();
            let table = cli_output::table_of(
                &rows,
                &[
                    ("ID", "id"),
                    ("SHOP", "shop"),
                    ("STATUS", "status"),
                    ("LINES", "lines_read"),
                    ("INSERTED", "inserted"),
                    ("UPDATED", "updated"),
                    ("DELETED", "deleted"),
                    ("CREATED", "created_at"),
                    ("ERROR", "error"),
                ],
            );
            let cut = cli_output::cut_notice(listed.len(), total);
            cli_output::print(json, &lines, &table, cut);
        }
        CatalogCommand::Show { id } => {
            let r = runs::get(&pool, id).await?.ok_or(CliError::NotFound(id))?;
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        }
        CatalogCommand::Cancel { id } => {
            if !runs::cancel(&pool, id).await? {
                return Err(CliError::NotFound(id));
            }
            println!("cancel requested for run {id}");
        }
    }
    Ok(())
}

/// The resync with its progress bar; `settings` with the poll interval of `args`.
pub async fn resync(
    pool: PgPool,
    copy: impl Into<PgConnect>,
    shops: &Shops,
    settings: Settings,
    args: ResyncArgs,
) -> Result<Outcome, CliError> {
    let client = match args.access_token {
        Some(token) => {
            let url = args
                .shop_url
                .unwrap_or_else(|| format!("https://{}", args.shop));
            Arc::new(AdminClient::new(AdminConfig::new(
                url,
                args.api_version,
                token,
            ))?)
        }
        None => shops.client(&args.shop)?,
    };
    let runner = Runner::new(
        pool,
        copy,
        Settings {
            poll_interval: Duration::from_secs(args.poll_secs.max(1)),
            ..settings
        },
    );
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message(format!("{}: waiting for Shopify's bulk export…", args.shop));
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let on_progress = |p: Progress| {
        if bar.length().is_none() {
            bar.set_style(style.clone());
            bar.set_length(p.file_size.unwrap_or(0));
        }
        bar.set_position(p.bytes);
        let secs = bar.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{} rows{} ({:.0} rows/s)",
            p.lines,
            p.objects.map(|o| format!(" of {o}")).unwrap_or_default(),
            p.lines as f64 / secs
        ));
    };
    let (run, _) = runs::start(runner.pool(), &args.shop).await?;
    let result = match runner.take(run.id).await? {
        Take::Driving(lease) => {
            let drive = runner.drive_lease(lease, &client, &on_progress);
            tokio::pin!(drive);
            tokio::select! {
                r = &mut drive => r,
                _ = tokio::signal::ctrl_c() => {
                    // Ctrl-C cancels the run (the bulk operation too), then waits for it to stop.
                    bar.set_message("canceling…");
                    runs::cancel(runner.pool(), run.id).await?;
                    drive.await
                }
            }
        }
        // Another process drives the run: watch it, never drive it too.
        Take::Busy | Take::Ended => {
            let driver = runs::get(runner.pool(), run.id)
                .await?
                .and_then(|r| r.driver)
                .unwrap_or_else(|| "another process".into());
            bar.suspend(|| {
                eprintln!(
                    "catalog run {} of {} is driven by {driver}; watching it (Ctrl-C stops \
                     watching, the run goes on)",
                    run.id, args.shop
                )
            });
            tokio::select! {
                r = runner.watch(run.id, &on_progress) => r,
                _ = tokio::signal::ctrl_c() => {
                    bar.finish_and_clear();
                    return Err(CliError::StoppedWatching(run.id));
                }
            }
        }
    };
    bar.finish_and_clear();
    Ok(result?)
}

/// The final summary line: inserted / updated / deleted, the products left out of the
/// comparison (unchanged since the last resync), then the whole duration and its two phases
/// (stage: download + parse + COPY into staging; merge: the one transaction; for a direct
/// load, the load while downloading and the checks after it).
pub fn summary(o: &Outcome) -> String {
    let t = o.merged.total();
    let (stage, merge) = match o.run.direct {
        Some(true) => ("direct load", "checks"),
        _ => ("stage", "merge"),
    };
    format!(
        "catalog run {} for {}: {} rows imported ({}); inserted {}, updated {}, deleted {} \
         (products {}/{}/{}, variants {}/{}/{}, inventory levels {}/{}/{}, metafields {}/{}/{}); \
         {} of {} products and {} of {} variants unchanged since the last resync (not \
         compared); \
         import + merge {} ({stage} {}, {merge} {})",
        o.run.id,
        o.run.shop,
        o.staged.total(),
        HumanBytes(o.run.bytes_read as u64),
        t.inserted,
        t.updated,
        t.deleted,
        o.merged.products.inserted,
        o.merged.products.updated,
        o.merged.products.deleted,
        o.merged.variants.inserted,
        o.merged.variants.updated,
        o.merged.variants.deleted,
        o.merged.inventory_levels.inserted,
        o.merged.inventory_levels.updated,
        o.merged.inventory_levels.deleted,
        o.merged.metafields.inserted,
        o.merged.metafields.updated,
        o.merged.metafields.deleted,
        o.merged.unchanged_products,
        o.staged.products,
        o.merged.unchanged_variants,
        o.staged.variants,
        HumanDuration(o.import_time),
        HumanDuration(o.stage_time),
        HumanDuration(o.merge_time),
    )
}
