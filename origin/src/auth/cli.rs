//! `origin tokens create|list|rotate|revoke` and `origin audit list`. Token actions are
//! written to the audit log with actor `cli`. Secrets are printed once, as JSON on stdout.

use clap::Subcommand;
use sqlx::PgPool;

use crate::cli_output::{self, Table};

use super::audit;
use super::tokens::{self, TokenError};
use super::Scope;

/// `origin tokens …`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; prints its secret (and callback secret) once.
    Create {
        /// A unique name (letters, digits, `.`, `_`, `-`).
        #[arg(long)]
        name: String,
        /// A scope (repeatable): ops:read, ops:write, integrator.
        #[arg(long = "scope", required = true)]
        scopes: Vec<Scope>,
        /// Also issue a callback secret (integrators): its draft-order callbacks are signed
        /// with it, `kid` = the token's name.
        #[arg(long)]
        callback_secret: bool,
    },
    /// List tokens (no secrets): a table, or JSON lines with `--json`.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Give a token a new secret; prints it once.
    Rotate {
        /// The token's name.
        name: String,
        /// Seconds the old secret keeps working (default 0: it stops now).
        #[arg(long, default_value_t = 0)]
        grace_secs: u32,
        /// Also issue a new callback secret (used for every callback from now on).
        #[arg(long)]
        callback_secret: bool,
    },
    /// Revoke a token at once.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// `origin audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit rows, newest first: a table, or JSON lines with `--json`.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this actor (token name, or `cli`).
        #[arg(long)]
        actor: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The token action was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Output could not be written.
    #[error("output: {0}")]
    Json(#[from] serde_json::Error),
}

/// Runs a token command.
pub async fn tokens(pool: &PgPool, cmd: TokensCommand) -> Result<(), CliError> {
    let (action, target, result) = match cmd {
        TokensCommand::List { json } => {
            let listed = tokens::list(pool).await?;
            let lines = listed
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<Vec<_>, _>>()?;
            let mut table = Table::new(["ID", "NAME", "SCOPES", "CREATED", "STATE"]);
            for t in &listed {
                let state = match (t.revoked_at, t.rotated_at) {
                    (Some(at), _) => format!("revoked {}", cli_output::when(at)),
                    (None, Some(at)) => format!("rotated {}", cli_output::when(at)),
                    (None, None) => "active".to_owned(),
                };
                table.row([
                    t.id.to_string(),
                    t.name.clone(),
                    t.scopes.join(","),
                    cli_output::when(t.created_at),
                    state,
                ]);
            }
            cli_output::print(json, &lines, &table, None);
            return Ok(());
        }
        TokensCommand::Create {
            name,
            scopes,
            callback_secret,
        } => {
            let issued = tokens::create(pool, &name, &scopes, callback_secret).await;
            ("tokens create", name, issued.map(Some))
        }
        TokensCommand::Rotate {
            name,
            grace_secs,
            callback_secret,
        } => {
            let issued = tokens::rotate(pool, &name, grace_secs, callback_secret).await;
            ("tokens rotate", name, issued.map(Some))
        }
        TokensCommand::Revoke { name } => {
            let revoked = tokens::revoke(pool, &name).await;
            ("tokens revoke", name, revoked.map(|_| None))
        }
    };
    let shown = result.as_ref().map(drop).map_err(ToString::to_string);
    audit::record_cli(pool, action, &target, &shown).await?;
    match result? {
        Some(issued) => println!("{}", serde_json::to_string(&issued)?),
        None => println!("{}", serde_json::json!({ "revoked": target })),
    }
    Ok(())
}

/// Runs an audit command.
pub async fn audit(pool: &PgPool, cmd: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::List { json, actor, limit } = cmd;
    // One more than asked, to tell whether the listing is cut.
    let q = audit::ListQuery {
        actor,
        since: None,
        limit: Some(limit.saturating_add(1)),
    };
    let mut rows = audit::list(pool, &q).await?;
    let cut = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let lines = rows
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    let mut table = Table::new(["ID", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"]);
    for r in &rows {
        table.row([
            r.id.to_string(),
            cli_output::when(r.at),
            r.actor.clone(),
            r.action.clone(),
            r.target.clone(),
            r.outcome.clone(),
            r.detail.clone().unwrap_or_default(),
        ]);
    }
    let notice = cut.then(|| {
        format!(
            "showing the newest {}, there are more; --limit to see more",
            cli_output::thousands(rows.len() as i64)
        )
    });
    cli_output::print(json, &lines, &table, notice);
    Ok(())
}
