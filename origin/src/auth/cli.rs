//! `origin tokens create|list|rotate|revoke` and `origin audit list`. Token actions are
//! written to the audit log with actor `cli`. Secrets are printed once, as JSON on stdout.

use clap::Subcommand;
use sqlx::PgPool;

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
    /// List tokens (no secrets).
    List,
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
    /// Audit rows, newest first, as JSON lines.
    List {
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
        TokensCommand::List => {
            for t in tokens::list(pool).await? {
                println!("{}", serde_json::to_string(&t)?);
            }
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
    let AuditCommand::List { actor, limit } = cmd;
    let q = audit::ListQuery {
        actor,
        since: None,
        limit: Some(limit),
    };
    for row in audit::list(pool, &q).await? {
        println!("{}", serde_json::to_string(&row)?);
    }
    Ok(())
}
