//! `origin problems list|show|replay|retry|link|create|dismiss`: the problems from the host.
//! Actions are audited by [`super::perform`] with actor `cli`.

use clap::{Args, Subcommand};
use sqlx::PgPool;
use wholesail_webhook::ShopDomain;

use super::{Action, Cursor, Filter, Kind, ProblemError, ProblemId, Request};
use crate::cli_output::{self, Table};

/// `origin problems …`.
#[derive(Debug, Subcommand)]
pub enum ProblemsCommand {
    /// Open problems, the most recently seen first.
    List {
        /// Only this kind.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Only this shop.
        #[arg(long)]
        shop: Option<ShopDomain>,
        /// Also dismissed problems.
        #[arg(long)]
        include_dismissed: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Start after this cursor (printed when a listing is cut).
        #[arg(long)]
        cursor: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One problem and its items.
    Show {
        /// The problem id (from `list`).
        id: String,
        /// At most this many items.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replay a problem's dead letters, quarantined rows or dead Salesforce rows.
    Replay(Target),
    /// Retry a failed catalog run or draft-order job, or push a buyer's rules again.
    Retry(Target),
    /// Link a company in Salesforce review to an Account.
    Link {
        #[command(flatten)]
        target: Target,
        /// The Salesforce Account id.
        #[arg(long)]
        account: String,
    },
    /// Create a new Salesforce Account for a company in review.
    Create(Target),
    /// Hide a problem until it recurs.
    Dismiss {
        /// The problem id.
        id: String,
        /// Why (recorded with the dismissal and in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// The problem (and item) an action addresses.
#[derive(Debug, Args)]
pub struct Target {
    /// The problem id (from `list`).
    id: String,
    /// Only this item of it (from `show`).
    #[arg(long)]
    item: Option<String>,
    /// Why (recorded in the audit log).
    #[arg(long)]
    reason: Option<String>,
}

/// Runs one command.
pub async fn run(pool: &PgPool, command: ProblemsCommand) -> Result<(), ProblemError> {
    let (target, action, account) = match command {
        ProblemsCommand::List {
            kind,
            shop,
            include_dismissed,
            limit,
            cursor,
            json,
        } => {
            let filter = Filter {
                kind,
                shop,
                include_dismissed,
            };
            let cursor = cursor.map(|c| c.parse::<Cursor>()).transpose()?;
            return list(pool, &filter, cursor.as_ref(), limit, json).await;
        }
        ProblemsCommand::Show { id, limit, json } => return show(pool, &id, limit, json).await,
        ProblemsCommand::Replay(t) => (t, Action::Replay, None),
        ProblemsCommand::Retry(t) => (t, Action::Retry, None),
        ProblemsCommand::Link { target, account } => (target, Action::Link, Some(account)),
        ProblemsCommand::Create(t) => (t, Action::Create, None),
        ProblemsCommand::Dismiss { id, reason } => (
            Target {
                id,
                item: None,
                reason: Some(reason),
            },
            Action::Dismiss,
            None,
        ),
    };
    let request = Request {
        problem: target.id.parse()?,
        action,
        item: target.item,
        reason: target.reason,
        account,
    };
    let done = super::perform(pool, &request, None).await?;
    println!("{}", serde_json::to_string(&done).unwrap_or_default());
    Ok(())
}

async fn list(
    pool: &PgPool,
    filter: &Filter,
    cursor: Option<&Cursor>,
    limit: i64,
    json: bool,
) -> Result<(), ProblemError> {
    let page = super::list(pool, filter, cursor, limit).await?;
    let lines: Vec<String> = page
        .rows
        .iter()
        .map(|p| serde_json::to_string(p).unwrap_or_default())
        .collect();
    let mut table = Table::new(["ID", "KIND", "COUNT", "LAST SEEN", "REASON", "ACTIONS"]);
    for p in &page.rows {
        let actions: Vec<&str> = p.actions.iter().map(|a| a.as_str()).collect();
        let kind = if p.dismissed {
            format!("{} (dismissed)", p.kind)
        } else {
            p.kind.to_string()
        };
        table.row([
            p.id.to_string(),
            kind,
            cli_output::thousands(p.count),
            cli_output::when(p.last_seen),
            p.reason.clone(),
            actions.join(","),
        ]);
    }
    let cut = cli_output::cut_notice(page.rows.len(), page.total).map(|notice| match &page.next {
        Some(next) => format!("{notice} (or --cursor {next} for the next page)"),
        None => notice,
    });
    cli_output::print(json, &lines, &table, cut);
    Ok(())
}

async fn show(pool: &PgPool, id: &str, limit: i64, json: bool) -> Result<(), ProblemError> {
    let id: ProblemId = id.parse()?;
    let problem = super::problem(pool, &id).await?;
    let items = super::items(pool, &id, None, limit).await?;
    if json {
        let both = serde_json::json!({ "problem": problem, "items": items });
        println!(
            "{}",
            serde_json::to_string_pretty(&both).unwrap_or_default()
        );
        return Ok(());
    }
    let actions: Vec<&str> = problem.actions.iter().map(|a| a.as_str()).collect();
    let mut about = Table::new(["FIELD", "VALUE"]);
    about
        .row(["id".to_owned(), problem.id.to_string()])
        .row(["kind".to_owned(), problem.kind.to_string()])
        .row(["shop".to_owned(), problem.shop.clone()])
        .row(["reason".to_owned(), problem.reason.clone()])
        .row(["count".to_owned(), cli_output::thousands(problem.count)])
        .row([
            "first seen".to_owned(),
            cli_output::when(problem.first_seen),
        ])
        .row(["last seen".to_owned(), cli_output::when(problem.last_seen)])
        .row(["actions".to_owned(), actions.join(", ")]);
    if let Some(d) = &problem.dismissal {
        let state = if problem.dismissed {
            "dismissed"
        } else {
            "recurred after dismissal"
        };
        about.row([
            state.to_owned(),
            format!("{} by {}: {}", cli_output::when(d.at), d.by, d.reason),
        ]);
    }
    print!("{}", about.render());
    println!();
    let mut table = Table::new(["ITEM", "RECORD", "SEEN"]);
    for item in &items.rows {
        table.row([
            item.item.clone(),
            item.record.clone(),
            cli_output::when(item.seen_at),
        ]);
    }
    cli_output::print(
        false,
        &[],
        &table,
        cli_output::cut_notice(items.rows.len(), items.total),
    );
    Ok(())
}
