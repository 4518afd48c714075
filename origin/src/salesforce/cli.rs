//! `origin salesforce …`: what the sync is doing and the operator's decisions.
//!
//! - `status [--shop S]`: outbox rows by object and status, the oldest pending row's age, and
//!   the match decisions (JSON).
//! - `review [--shop S]`: companies waiting for a decision, with their candidates.
//! - `review link --shop S --company GID --account ID`: this company is that Account.
//! - `review create --shop S --company GID`: none of the candidates; create a new Account.
//! - `backfill --shop S [--since DATE] [--no-wait]`: every company, customer and B2B order
//!   (created since DATE) of the shop in lane `backfill` (sent while the API budget is above
//!   its reserve; past 20,000 rows through Bulk API 2.0); then a progress bar until the sync
//!   (`origin serve`) has sent them all; prints how many.
//! - `dead-letters [--shop S] [--replay]`: rows Salesforce refused, with its message; with
//!   `--replay`, back to pending (after the cause was fixed).
//!
//! A decision re-queues the company's parked rows, so the next round sends them.

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use super::outbox;
use crate::cli_output;

/// The `salesforce` subcommands.
#[derive(Debug, Subcommand)]
pub enum SalesforceCommand {
    /// Outbox depth by object and status, the oldest pending row's age, match decisions.
    Status {
        /// Only this shop.
        #[arg(long)]
        shop: Option<ShopDomain>,
    },
    /// Companies waiting for an operator: list, link to an Account, or create a new one.
    Review {
        /// What to decide (list when absent).
        #[command(subcommand)]
        decide: Option<ReviewCommand>,
        /// Only this shop (listing).
        #[arg(long)]
        shop: Option<ShopDomain>,
        /// The listing as JSON (`{"review": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Enqueues every company, customer and B2B order of the shop in lane `backfill` (sent
    /// while the API budget is above its reserve), then shows the sync's progress.
    Backfill {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// Only orders created at or after this date (`2026-11-01`) or time (RFC 3339).
        #[arg(long, value_parser = parse_since)]
        since: Option<OffsetDateTime>,
        /// Print what was enqueued and return, without waiting for the sync.
        #[arg(long)]
        no_wait: bool,
    },
    /// Rows Salesforce refused (or parked for review), with the reason.
    DeadLetters {
        /// Only this shop.
        #[arg(long)]
        shop: Option<ShopDomain>,
        /// Put them back to pending (the cause was fixed).
        #[arg(long)]
        replay: bool,
        /// The listing as JSON (`{"dead": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A review decision.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// The company is this existing Account: its external id is written onto it.
    Link {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// The company's GID (`gid://shopify/Company/…`).
        #[arg(long)]
        company: String,
        /// The Salesforce Account Id.
        #[arg(long)]
        account: String,
    },
    /// None of the candidates: create a new Account.
    Create {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
        /// The company's GID.
        #[arg(long)]
        company: String,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The database.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The shop has no `[[salesforce.orgs]]` entry (it was never connected).
    #[error("{0} is not connected to Salesforce; add a [[salesforce.orgs]] entry for it")]
    NotConnected(ShopDomain),
    /// The company has no pending review.
    #[error("{0} of {1} is not waiting for review; `origin salesforce review --shop {1}` lists the companies that are")]
    NotInReview(String, ShopDomain),
}

impl SalesforceCommand {
    /// Whether the command changes anything (it is audited).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            SalesforceCommand::Review {
                decide: Some(_),
                ..
            } | SalesforceCommand::DeadLetters { replay: true, .. }
                | SalesforceCommand::Backfill { .. }
        )
    }
}

/// Runs one command; prints JSON.
pub async fn run(pool: &PgPool, command: SalesforceCommand) -> Result<(), CliError> {
    let out = match command {
        SalesforceCommand::Status { shop } => outbox::status(pool, shop.as_ref()).await?,
        SalesforceCommand::Review {
            decide: None,
            shop,
            json,
        } => {
            let out = json!({ "review": outbox::reviews(pool, shop.as_ref()).await? });
            let columns = [
                ("SHOP", "shop"),
                ("COMPANY", "company"),
                ("NAME", "name"),
                ("SINCE", "since"),
                ("CANDIDATES", "candidates"),
            ];
            cli_output::print_document(json, &out, &out["review"], &columns, None);
            return Ok(());
        }
        SalesforceCommand::Review {
            decide:
                Some(ReviewCommand::Link {
                    shop,
                    company,
                    account,
                }),
            ..
        } => decide(pool, &shop, &company, Some(&account)).await?,
        SalesforceCommand::Review {
            decide: Some(ReviewCommand::Create { shop, company }),
            ..
        } => decide(pool, &shop, &company, None).await?,
        SalesforceCommand::Backfill {
            shop,
            since,
            no_wait,
        } => {
            let Some(enqueued) = outbox::backfill(pool, &shop, since).await? else {
                return Err(CliError::NotConnected(shop));
            };
            let progress = match no_wait {
                true => None,
                false => Some(follow(pool, &shop, enqueued.after_id).await?),
            };
            json!({ "shop": shop, "enqueued": enqueued, "progress": progress })
        }
        SalesforceCommand::DeadLetters { shop, replay, json } => {
            if replay {
                json!({ "replayed": outbox::replay_dead(pool, shop.as_ref(), None, None).await? })
            } else {
                let dead = outbox::dead(pool, shop.as_ref()).await?;
                let total = outbox::dead_count(pool, shop.as_ref()).await?;
                let cut = cli_output::cut_notice(dead.len(), total).map(|_| {
                    format!(
                        "showing the newest {} of {}; `origin problems list --kind salesforce_dead` groups them all",
                        cli_output::thousands(dead.len() as i64),
                        cli_output::thousands(total)
                    )
                });
                let out = json!({ "dead": dead });
                let columns = [
                    ("SHOP", "shop"),
                    ("ID", "id"),
                    ("OBJECT", "object"),
                    ("RECORD", "record"),
                    ("ATTEMPTS", "attempts"),
                    ("CHANGED", "changed_at"),
                    ("ERROR", "error"),
                ];
                cli_output::print_document(json, &out, &out["dead"], &columns, cut);
                return Ok(());
            }
        }
    };
    println!("{out}");
    Ok(())
}

/// `2026-11-01` (midnight UTC) or an RFC 3339 time.
fn parse_since(s: &str) -> Result<OffsetDateTime, String> {
    let date = time::macros::format_description!("[year]-[month]-[day]");
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::Date::parse(s, date).map(|d| d.midnight().assume_utc()))
        .map_err(|_| format!("{s:?} is neither a date (2026-11-01) nor an RFC 3339 time"))
}

/// Shows the backfill's progress (rows sent of its rows, on standard error) until every row
/// was sent or refused.
async fn follow(
    pool: &PgPool,
    shop: &ShopDomain,
    after_id: i64,
) -> Result<outbox::BackfillProgress, CliError> {
    let first = outbox::backfill_progress(pool, shop, after_id).await?;
    let bar = ProgressBar::new(first.rows.unsigned_abs()).with_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} rows sent to Salesforce, {msg} ({elapsed}, ETA {eta})",
        )
        .expect("a valid template"),
    );
    bar.println(
        "waiting for the sync (origin serve) to send the backfill; Ctrl-C leaves it running",
    );
    let mut progress = first;
    while !progress.finished() {
        bar.set_position((progress.done + progress.dead).unsigned_abs());
        bar.set_message(format!("{} refused", progress.dead));
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        progress = outbox::backfill_progress(pool, shop, after_id).await?;
    }
    bar.finish_and_clear();
    Ok(progress)
}

/// Records the operator's decision and re-queues the company's parked rows (the CLI and the
/// admin API).
pub async fn decide(
    pool: &PgPool,
    shop: &ShopDomain,
    company: &str,
    account: Option<&str>,
) -> Result<Value, CliError> {
    if !outbox::decide_review(pool, shop, company, account).await? {
        return Err(CliError::NotInReview(company.to_owned(), shop.clone()));
    }
    let requeued = outbox::replay_dead(pool, Some(shop), Some(company), None).await?;
    Ok(json!({ "company": company, "account": account, "requeued": requeued }))
}
