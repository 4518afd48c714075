//! The `origin` binary: serve the origin service and operate it (migrations, dead letters,
//! catalog resyncs, rules, draft orders, parked envelopes, API tokens, the audit log).
//!
//! ```text
//! origin [--config origin.toml] serve [--no-migrate]
//! origin [--config origin.toml] migrate
//! origin [--config origin.toml] dead-letters list [--id N]… [--topic T] [--shop S] [--since RFC3339] [--until RFC3339] [--limit N] [--quarantined]
//! origin [--config origin.toml] dead-letters show ID
//! origin [--config origin.toml] dead-letters replay [--id N]… [--topic T] [--shop S] [--since …] [--until …] [--all] [--quarantined]
//! origin [--config origin.toml] catalog resync --shop DOMAIN   (a [[shops]] entry, or SHOPIFY_ACCESS_TOKEN + --shop-url)
//! origin [--config origin.toml] catalog runs|show ID|cancel ID
//! origin [--config origin.toml] rules import --shop S --file rules.csv|rules.json | push --shop S [--all] | show --shop S --location GID
//! origin [--config origin.toml] draft-orders create --file quote.json [--wait] | show JOB
//! origin [--config origin.toml] parked list|recover|purge --edge-url URL …   (the edge's R2-parked envelopes)
//! origin [--config origin.toml] tokens create --name N --scope S [--scope S]… [--callback-secret] | list | rotate N [--grace-secs S] [--callback-secret] | revoke N
//! origin [--config origin.toml] audit list [--actor A] [--limit N]
//! origin [--config origin.toml] problems list [--kind K] [--shop S] [--include-dismissed] | show ID | replay|retry|create ID [--item I] | link ID --item I --account A | dismiss ID --reason R
//! ```
//!
//! Logs are JSON lines on stderr; command output (listings) is JSON on stdout. Write commands
//! (replay, resync, cancel, rules import and push, draft-order create, token changes) are
//! recorded in the audit log with actor `cli` and the command line as target.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use wholesail_origin::app::{self, MIGRATOR};
use wholesail_origin::auth::audit;
use wholesail_origin::cli_output;
use wholesail_origin::config::Config;
use wholesail_origin::pipeline::dead_letters::{self, Filter, Shelf};
use wholesail_webhook::ShopDomain;

/// Wholesail origin: the webhook inbox and its workers, catalog resyncs, B2B rules, draft
/// orders, and the operations on them.
#[derive(Parser)]
#[command(name = "origin", version)]
struct Cli {
    /// TOML configuration file (environment variables `WHOLESAIL_*` override it).
    #[arg(long, env = "WHOLESAIL_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (intake, admin, carts, draft orders, health, metrics) and run the background
    /// loops (inbox workers, catalog adoption, rules push, draft-order jobs, retention).
    Serve {
        /// Do not apply pending migrations at start-up.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect and replay dead letters.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Catalog sync: resync from a Shopify bulk export, list, show and cancel runs.
    #[command(subcommand)]
    Catalog(wholesail_origin::catalog::cli::CatalogCommand),
    /// Draft orders from B2B quotes: submit a quote file, show a job.
    #[command(subcommand)]
    DraftOrders(wholesail_origin::draft_orders::cli::DraftOrdersCommand),
    /// B2B rules: import a rules file, push to Shopify, show a buyer's rules.
    #[command(subcommand)]
    Rules(wholesail_origin::rules::cli::RulesCommand),
    /// Envelopes the edge parked in R2: list, recover into origin's intake, purge a shop's.
    #[command(subcommand)]
    Parked(wholesail_origin::parked::cli::ParkedCommand),
    /// API tokens: create (prints the secret once), list, rotate, revoke.
    #[command(subcommand)]
    Tokens(wholesail_origin::auth::cli::TokensCommand),
    /// The audit log of write actions.
    #[command(subcommand)]
    Audit(wholesail_origin::auth::cli::AuditCommand),
    /// Reconciliation: webhook subscriptions now, the latest runs, a run's findings.
    #[command(subcommand)]
    Reconcile(wholesail_origin::reconcile::cli::ReconcileCommand),
    /// Salesforce sync: status, companies waiting for review (link or create), dead letters.
    #[command(subcommand)]
    Salesforce(wholesail_origin::salesforce::cli::SalesforceCommand),
    /// One record's story: `origin trace <gid | #order name | sku | email>`.
    Trace(wholesail_origin::trace::cli::TraceArgs),
    /// Everything that needs a person, grouped: list, show, replay, retry, link, create,
    /// dismiss (actions audit themselves).
    #[command(subcommand)]
    Problems(wholesail_origin::problems::cli::ProblemsCommand),
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// List dead letters, oldest first: a table, or JSON lines with `--json`.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// List quarantined rows (payloads that are not JSON) instead of dead letters.
        #[arg(long)]
        quarantined: bool,
        /// JSON lines (oldest first) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one inbox row in full (any status), with its payload.
    Show {
        /// The inbox row id.
        id: i64,
    },
    /// Put matching dead letters back to pending, attempts reset.
    Replay {
        #[command(flatten)]
        filter: FilterArgs,
        /// Replay every dead letter (required when no filter is given).
        #[arg(long)]
        all: bool,
        /// Replay quarantined rows instead: re-parse their bodies with today's parser and
        /// allowlist; usable ones become pending, the others stay quarantined.
        #[arg(long)]
        quarantined: bool,
    },
}

#[derive(Args)]
struct FilterArgs {
    /// Inbox row id (repeatable).
    #[arg(long = "id")]
    ids: Vec<i64>,
    /// Topic, e.g. orders/create.
    #[arg(long)]
    topic: Option<String>,
    /// Shop domain.
    #[arg(long)]
    shop: Option<ShopDomain>,
    /// Received at or after (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    since: Option<OffsetDateTime>,
    /// Received before (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    until: Option<OffsetDateTime>,
}

impl From<FilterArgs> for Filter {
    fn from(a: FilterArgs) -> Filter {
        Filter {
            ids: a.ids,
            topic: a.topic,
            shop: a.shop,
            since: a.since,
            until: a.until,
        }
    }
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("expected RFC 3339: {e}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    let Some(action) = write_action(&cli.command) else {
        return run(cli.command, config).await;
    };
    let pool = app::connect(&config).await?;
    let result = run(cli.command, config).await;
    let target = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let shown = result.as_ref().map(drop).map_err(|e| format!("{e:#}"));
    audit::record_cli(&pool, action, &target, &shown).await?;
    result
}

/// The audit action of a write command (token commands audit themselves).
fn write_action(command: &Command) -> Option<&'static str> {
    use wholesail_origin::catalog::cli::CatalogCommand;
    use wholesail_origin::draft_orders::cli::DraftOrdersCommand;
    use wholesail_origin::parked::cli::ParkedCommand;
    use wholesail_origin::rules::cli::RulesCommand;
    match command {
        Command::DeadLetters(DeadLetterCommand::Replay { .. }) => Some("dead-letters replay"),
        Command::Catalog(CatalogCommand::Resync(_)) => Some("catalog resync"),
        Command::Catalog(CatalogCommand::Cancel { .. }) => Some("catalog cancel"),
        Command::Rules(RulesCommand::Import { .. }) => Some("rules import"),
        Command::Rules(RulesCommand::Push { .. }) => Some("rules push"),
        Command::DraftOrders(DraftOrdersCommand::Create { .. }) => Some("draft-orders create"),
        Command::Parked(ParkedCommand::Recover { .. }) => Some("parked recover"),
        Command::Parked(ParkedCommand::Purge { .. }) => Some("parked purge"),
        Command::Salesforce(cmd) if cmd.writes() => Some("salesforce"),
        Command::Reconcile(cmd) if cmd.writes() => Some("reconcile"),
        _ => None,
    }
}

/// Runs one command.
async fn run(command: Command, config: Config) -> Result<()> {
    match command {
        Command::Serve { no_migrate } => {
            let listener = TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("binding {}", config.bind))?;
            let shutdown = CancellationToken::new();
            tokio::spawn(on_signal(shutdown.clone()));
            app::serve(config, listener, !no_migrate, shutdown).await?;
        }
        Command::Migrate => {
            let pool = app::connect(&config).await?;
            MIGRATOR.run(&pool).await?;
            tracing::info!("migrations applied");
        }
        Command::Catalog(cmd) => {
            let pool = app::connect(&config).await?;
            let shops = config.shops()?;
            let settings = config.catalog.settings();
            wholesail_origin::catalog::cli::run(pool, &config.database_url, &shops, settings, cmd)
                .await?;
        }
        Command::DraftOrders(cmd) => {
            let pool = app::connect(&config).await?;
            wholesail_origin::draft_orders::cli::run(pool, &config, cmd).await?;
        }
        Command::Rules(cmd) => {
            let pool = app::connect(&config).await?;
            wholesail_origin::rules::cli::run(&pool, &config.shops()?, cmd).await?;
        }
        Command::Parked(cmd) => wholesail_origin::parked::cli::run(&config, cmd).await?,
        Command::Tokens(cmd) => {
            let pool = app::connect(&config).await?;
            wholesail_origin::auth::cli::tokens(&pool, cmd).await?;
        }
        Command::Audit(cmd) => {
            let pool = app::connect(&config).await?;
            wholesail_origin::auth::cli::audit(&pool, cmd).await?;
        }
        Command::Reconcile(cmd) => {
            let pool = app::connect(&config).await?;
            let shops = config.shops()?;
            wholesail_origin::reconcile::cli::run(&pool, &shops, &config, cmd).await?;
        }
        Command::Salesforce(cmd) => {
            let pool = app::connect(&config).await?;
            wholesail_origin::salesforce::cli::run(&pool, cmd).await?;
        }
        Command::Trace(args) => {
            let pool = app::connect(&config).await?;
            wholesail_origin::trace::cli::run(&pool, args).await?;
        }
        Command::Problems(cmd) => {
            let pool = app::connect(&config).await?;
            wholesail_origin::problems::cli::run(&pool, cmd).await?;
        }
        Command::DeadLetters(cmd) => {
            let pool = app::connect(&config).await?;
            match cmd {
                DeadLetterCommand::List {
                    filter,
                    limit,
                    quarantined,
                    json,
                } => {
                    let shelf = if quarantined {
                        Shelf::Quarantined
                    } else {
                        Shelf::Dead
                    };
                    let filter: Filter = filter.into();
                    let rows = dead_letters::list(&pool, shelf, &filter, limit).await?;
                    let lines = rows
                        .iter()
                        .map(serde_json::to_string)
                        .collect::<Result<Vec<_>, _>>()?;
                    let total = dead_letters::count(&pool, shelf, &filter).await?;
                    let table = cli_output::table_of(
                        serde_json::to_value(&rows)?
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default(),
                        &[
                            ("ID", "id"),
                            ("SHOP", "shop"),
                            ("TOPIC", "topic"),
                            ("ATTEMPTS", "attempts"),
                            ("RECEIVED", "inserted_at"),
                            ("ERROR", "last_error"),
                        ],
                    );
                    let cut = cli_output::cut_notice(rows.len(), total);
                    cli_output::print(json, &lines, &table, cut);
                }
                DeadLetterCommand::Show { id } => match dead_letters::show(&pool, id).await? {
                    Some(row) => println!("{}", serde_json::to_string_pretty(&row)?),
                    None => bail!(
                        "no inbox row {id}; `origin dead-letters list` shows the dead letters"
                    ),
                },
                DeadLetterCommand::Replay {
                    filter,
                    all,
                    quarantined,
                } => {
                    let filter: Filter = filter.into();
                    if !filter.is_narrowed() && !all {
                        bail!("refusing to replay every row without --all");
                    }
                    if quarantined {
                        let done =
                            wholesail_origin::pipeline::quarantine::replay(&pool, &filter).await?;
                        println!("{}", serde_json::to_string(&done)?);
                    } else {
                        let ids = dead_letters::replay(&pool, &filter).await?;
                        println!("{}", serde_json::json!({ "replayed": ids }));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}
