//! `origin draft-orders`: submit a quote from a file and follow its job, or show a job.
//!
//! ```text
//! origin draft-orders create --file quote.json [--wait]
//! origin draft-orders show JOB
//! ```
//!
//! `create` stores the job directly in the database (the same checks as
//! `POST /v1/draft-orders`); a running `origin serve` processes it. The status is printed as
//! JSON on stdout; `--wait` prints it again once the job has ended (progress on stderr).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use sqlx::PgPool;

use super::api::{submit, Refused};
use super::jobs::{self, JobState};
use super::quote::QuoteRequest;
use crate::config::Config;

/// The `draft-orders` subcommands.
#[derive(Debug, Subcommand)]
pub enum DraftOrdersCommand {
    /// Submit a quote (the JSON body `POST /v1/draft-orders` takes).
    Create {
        /// The quote file.
        #[arg(long)]
        file: PathBuf,
        /// Wait until the job has ended and print its final status.
        #[arg(long)]
        wait: bool,
    },
    /// Show a job's status.
    Show {
        /// The job id (`dq_…`).
        job: String,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The file could not be read or parsed.
    #[error("{0}")]
    File(String),
    /// The quote was refused.
    #[error("quote refused: {0}")]
    Refused(String),
    /// The configuration's shops are unusable.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// No such job.
    #[error("no draft-order job {0}")]
    NotFound(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs one command.
pub async fn run(pool: PgPool, config: &Config, cmd: DraftOrdersCommand) -> Result<(), CliError> {
    match cmd {
        DraftOrdersCommand::Create { file, wait } => {
            let text = std::fs::read(&file)
                .map_err(|e| CliError::File(format!("{}: {e}", file.display())))?;
            let quote: QuoteRequest = serde_json::from_slice(&text)
                .map_err(|e| CliError::File(format!("{}: {e}", file.display())))?;
            let shops = config.shops()?;
            let callbacks = config.draft_orders.callback_policy();
            let (status, _) = match submit(&pool, &shops, &callbacks, &quote, None).await {
                Ok(r) => r,
                Err(Refused::Invalid(errors)) => {
                    let shown = serde_json::to_string_pretty(&errors).unwrap_or_default();
                    return Err(CliError::Refused(shown));
                }
                Err(Refused::Conflict(m)) => return Err(CliError::Refused(m)),
                Err(Refused::Database(e)) => return Err(e.into()),
            };
            println!("{}", serde_json::to_string(&status).unwrap_or_default());
            if wait {
                let mut last = None;
                loop {
                    let s = jobs::status(&pool, &status.job)
                        .await?
                        .ok_or_else(|| CliError::NotFound(status.job.clone()))?;
                    let progress = (s.progress.parts_created, s.progress.parts_total);
                    if last != Some(progress) {
                        eprintln!(
                            "{}: {} of {} drafts",
                            s.status,
                            progress.0,
                            progress.1.map_or("?".into(), |t| t.to_string())
                        );
                        last = Some(progress);
                    }
                    if s.status != JobState::Processing {
                        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        DraftOrdersCommand::Show { job } => {
            let s = jobs::status(&pool, &job)
                .await?
                .ok_or(CliError::NotFound(job))?;
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        }
    }
    Ok(())
}
