//! `origin salesforce …`: what the sync is doing and the operator's decisions.
//!
//! - `status [--shop S]`: outbox rows by object and status, the oldest pending row's age, and
//!   the match decisions (JSON).
//! - `review [--shop S]`: companies waiting for a decision, with their candidates.
//! - `review link --shop S --company GID --account ID`: this company is that Account.
//! - `review create --shop S --company GID`: none of the candidates; create a new Account.
//! - `backfill --shop S`: every company, customer and B2B order of the shop in lane
//!   `backfill` (waits while the API budget is within its reserve); prints how many.
//! - `dead-letters [--shop S] [--replay]`: rows Salesforce refused, with its message; with
//!   `--replay`, back to pending (after the cause was fixed).
//!
//! A decision re-queues the company's parked rows, so the next round sends them.

use clap::Subcommand;
use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_webhook::ShopDomain;

use super::outbox;

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
    },
    /// Enqueues every company, customer and B2B order of the shop in lane `backfill` (sent
    /// while the API budget is above its reserve).
    Backfill {
        /// The shop.
        #[arg(long)]
        shop: ShopDomain,
    },
    /// Rows Salesforce refused (or parked for review), with the reason.
    DeadLetters {
        /// Only this shop.
        #[arg(long)]
        shop: Option<ShopDomain>,
        /// Put them back to pending (the cause was fixed).
        #[arg(long)]
        replay: bool,
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
    #[error("{0} is not connected to Salesforce")]
    NotConnected(ShopDomain),
    /// The company has no pending review.
    #[error("{0} of {1} is not waiting for review")]
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
        SalesforceCommand::Review { decide: None, shop } => {
            json!({ "review": outbox::reviews(pool, shop.as_ref()).await? })
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
        SalesforceCommand::Backfill { shop } => match outbox::backfill(pool, &shop).await? {
            Some(enqueued) => json!({ "shop": shop, "enqueued": enqueued }),
            None => return Err(CliError::NotConnected(shop)),
        },
        SalesforceCommand::DeadLetters { shop, replay } => {
            if replay {
                json!({ "replayed": outbox::replay_dead(pool, shop.as_ref(), None).await? })
            } else {
                json!({ "dead": outbox::dead(pool, shop.as_ref()).await? })
            }
        }
    };
    println!("{out}");
    Ok(())
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
    let requeued = outbox::replay_dead(pool, Some(shop), Some(company)).await?;
    Ok(json!({ "company": company, "account": account, "requeued": requeued }))
}
