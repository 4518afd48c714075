//! `origin parked …`: the edge's parked envelopes.
//!
//! ```text
//! origin parked list --edge-url URL [--key-id ID] [--prefix P] [--json]  # table, or JSON lines {key, size, uploaded_ms}
//! origin parked recover --edge-url URL [--key-id ID] [--origin-url URL]
//! origin parked purge --edge-url URL [--key-id ID] --shop S [--contains TEXT]
//! ```
//! `--edge-url` may come from `WHOLESAIL_EDGE_URL`. The signing key is the `internal.keys`
//! entry named by `--key-id` (the edge's `EDGE_SIGNING_KEY_ID`), or the only one configured.
//! `recover` posts to `--origin-url`, by default this configuration's `bind` address.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use secrecy::ExposeSecret;
use wholesail_webhook::{ShopDomain, SigningKey};

use super::{purge, recover, EdgeClient, PARKED_PREFIXES};
use crate::cli_output;
use crate::config::Config;

/// `origin parked` subcommands.
#[derive(Debug, Subcommand)]
pub enum ParkedCommand {
    /// List parked objects: a table, or JSON lines with `--json`.
    List {
        #[command(flatten)]
        edge: EdgeArgs,
        /// Only this prefix (default: undelivered/, rejected/ and unreadable/).
        #[arg(long)]
        prefix: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Fetch every undelivered/ and rejected/ envelope, re-submit it to origin's intake and
    /// delete it from R2 once origin accepted it (or already had it).
    Recover {
        #[command(flatten)]
        edge: EdgeArgs,
        /// Origin's base URL (default: http://<bind>).
        #[arg(long)]
        origin_url: Option<String>,
    },
    /// Delete a shop's parked and oversized objects (shop/redact); with --contains only those
    /// whose text contains it (customers/redact: the customer's email).
    Purge {
        #[command(flatten)]
        edge: EdgeArgs,
        /// The shop's myshopify domain.
        #[arg(long)]
        shop: ShopDomain,
        /// Only objects containing this text.
        #[arg(long)]
        contains: Option<String>,
    },
}

/// Where the edge is and which key signs for it.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// The edge worker's base URL.
    #[arg(long, env = "WHOLESAIL_EDGE_URL")]
    pub edge_url: String,
    /// The `internal.keys` id to sign with (default: the only key configured).
    #[arg(long)]
    pub key_id: Option<String>,
}

/// The signing key named by `key_id`, or the only one.
fn signing_key(config: &Config, key_id: Option<&str>) -> Result<SigningKey> {
    let keys = &config.internal.keys;
    let key = match key_id {
        Some(id) => keys
            .iter()
            .find(|k| k.id == id)
            .with_context(|| format!("no internal.keys entry with id {id:?}"))?,
        None if keys.len() == 1 => &keys[0],
        None => bail!(
            "{} internal.keys configured: name the edge's with --key-id",
            keys.len()
        ),
    };
    Ok(SigningKey::new(
        key.id.clone(),
        key.secret.expose_secret().as_bytes(),
    )?)
}

/// Origin's own base URL from its `bind` address (an unspecified address becomes loopback).
fn own_url(config: &Config) -> String {
    let mut addr = config.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// Runs one `origin parked` command: `list` prints a table (JSON lines with `--json`), the
/// others JSON lines.
pub async fn run(config: &Config, cmd: ParkedCommand) -> Result<()> {
    match cmd {
        ParkedCommand::List { edge, prefix, json } => {
            let client =
                EdgeClient::new(&edge.edge_url, signing_key(config, edge.key_id.as_deref())?);
            let prefixes = match &prefix {
                Some(p) => vec![p.as_str()],
                None => PARKED_PREFIXES.to_vec(),
            };
            let mut rows = Vec::new();
            for p in prefixes {
                for object in client.list(p).await? {
                    rows.push(serde_json::to_value(&object)?);
                }
            }
            let lines: Vec<String> = rows.iter().map(ToString::to_string).collect();
            let table = cli_output::table_of(
                &rows,
                &[
                    ("KEY", "key"),
                    ("BYTES", "size"),
                    ("UPLOADED (ms)", "uploaded_ms"),
                ],
            );
            cli_output::print(json, &lines, &table, None);
        }
        ParkedCommand::Recover { edge, origin_url } => {
            let key = signing_key(config, edge.key_id.as_deref())?;
            let client = EdgeClient::new(&edge.edge_url, key.clone());
            let origin_url = origin_url.unwrap_or_else(|| own_url(config));
            for line in recover(&client, &origin_url, &key).await? {
                println!("{}", serde_json::to_string(&line)?);
            }
        }
        ParkedCommand::Purge {
            edge,
            shop,
            contains,
        } => {
            let client =
                EdgeClient::new(&edge.edge_url, signing_key(config, edge.key_id.as_deref())?);
            let deleted = purge(&client, &shop, contains.as_deref()).await?;
            println!("{}", serde_json::json!({ "deleted": deleted }));
        }
    }
    Ok(())
}
