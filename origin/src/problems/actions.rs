//! The actions that resolve problems, each reusing the feature's own statement: dead letters
//! and quarantined rows through `pipeline::dead_letters` / `pipeline::quarantine` (today's
//! parser and allowlist), dead Salesforce rows and reviews through `salesforce`, a failed
//! catalog run through `catalog::runs::start` (a running server's adoption loop drives it), a
//! failed draft-order job through `draft_orders::jobs::retry_failed`, a rules push error by
//! marking the buyer dirty. Every action, carried out or refused, writes one audit row naming
//! the token (or `cli`), the problem and item, and what it did.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;

use super::{query, Action, Kind, ProblemError, ProblemId};
use crate::auth::audit::{self, Outcome as AuditOutcome};
use crate::auth::Caller;
use crate::pipeline::dead_letters::{self, Filter};
use crate::pipeline::quarantine;

/// An action on a problem, or on one of its items.
#[derive(Clone, Debug, Deserialize)]
pub struct Request {
    /// The problem.
    pub problem: ProblemId,
    /// What to do.
    pub action: Action,
    /// Only this item of the problem (as [`super::items`] lists it); all of them when none.
    /// Link and create need one; dismiss takes none (it dismisses the problem).
    #[serde(default)]
    pub item: Option<String>,
    /// Why: required to dismiss, recorded in the audit log for every action.
    #[serde(default)]
    pub reason: Option<String>,
    /// The Salesforce Account id to link to (link only).
    #[serde(default)]
    pub account: Option<String>,
}

/// What an action did.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The problem.
    pub problem: ProblemId,
    /// The action.
    pub action: Action,
    /// The items it addressed.
    pub items: Vec<String>,
    /// What it did, in the feature's words (replayed ids, the new run, …).
    pub result: Value,
}

/// Carries out `request` as `caller` (none: the CLI on the host) and writes its audit row.
pub async fn perform(
    pool: &PgPool,
    request: &Request,
    caller: Option<&Caller>,
) -> Result<Outcome, ProblemError> {
    let result = carry_out(pool, request, caller).await;
    let target = match &request.item {
        Some(item) => format!("{} item {item}", request.problem),
        None => request.problem.to_string(),
    };
    let reason = request.reason.as_deref().unwrap_or("");
    let (outcome, detail) = match &result {
        Ok(done) => (
            AuditOutcome::Success,
            format!("{}; reason: {reason}", done.result),
        ),
        Err(e) => (AuditOutcome::Error, format!("{e}; reason: {reason}")),
    };
    let action = format!("problems {}", request.action);
    audit::record(pool, caller, &action, &target, outcome, None, Some(&detail)).await?;
    tracing::info!(
        problem = %request.problem,
        action = %request.action,
        by = caller.map_or("cli", |c| c.name.as_str()),
        ok = result.is_ok(),
        "problem action"
    );
    result
}

async fn carry_out(
    pool: &PgPool,
    request: &Request,
    caller: Option<&Caller>,
) -> Result<Outcome, ProblemError> {
    let id = &request.problem;
    if !id.kind.actions().contains(&request.action) {
        let can: Vec<&str> = id.kind.actions().iter().map(|a| a.as_str()).collect();
        return Err(ProblemError::BadRequest(format!(
            "a {} problem is resolved by {}, not {}",
            id.kind,
            can.join(" or "),
            request.action
        )));
    }
    if request.action == Action::Dismiss {
        return dismiss(pool, request, caller).await;
    }
    let keys = targets(pool, request).await?;
    let shop = &id.shop;
    let result = match (id.kind, request.action) {
        (Kind::DeadLetter, _) => {
            let ids = numeric(&keys)?;
            let filter = Filter {
                ids,
                shop: Some(shop.clone()),
                ..Filter::default()
            };
            json!({ "replayed": dead_letters::replay(pool, &filter).await? })
        }
        (Kind::Quarantined, _) => {
            let filter = Filter {
                ids: numeric(&keys)?,
                shop: Some(shop.clone()),
                ..Filter::default()
            };
            serde_json::to_value(quarantine::replay(pool, &filter).await?).unwrap_or_default()
        }
        (Kind::SalesforceDead, _) => {
            let ids = numeric(&keys)?;
            let n =
                crate::salesforce::outbox::replay_dead(pool, Some(shop), None, Some(&ids)).await?;
            json!({ "replayed": n })
        }
        (Kind::RulesPushError, _) => {
            let mut tx = pool.begin().await?;
            crate::rules::marks::mark_locations(&mut tx, shop, &keys).await?;
            tx.commit().await?;
            json!({ "marked_dirty": keys })
        }
        (Kind::CatalogRunFailed, _) => {
            let (run, created) = crate::catalog::runs::start(pool, shop).await?;
            json!({ "run": run.id, "created": created })
        }
        (Kind::DraftOrderFailed, _) => {
            json!({ "retried": crate::draft_orders::jobs::retry_failed(pool, shop, &keys).await? })
        }
        (Kind::SalesforceReview, action) => {
            let account = match action {
                Action::Link => Some(request.account.as_deref().ok_or_else(|| {
                    ProblemError::BadRequest(
                        "link needs the Salesforce Account id (account) of one candidate".into(),
                    )
                })?),
                _ => None,
            };
            let company = single(request, &keys)?;
            crate::salesforce::cli::decide(pool, shop, company, account)
                .await
                .map_err(|e| match e {
                    crate::salesforce::cli::CliError::Database(e) => ProblemError::Database(e),
                    e => ProblemError::NotFound(e.to_string()),
                })?
        }
        (Kind::ReconcileFinding, action) => {
            return Err(ProblemError::BadRequest(format!(
                "a reconciliation finding is not resolved by {action}"
            )))
        }
    };
    Ok(Outcome {
        problem: id.clone(),
        action: request.action,
        items: keys,
        result,
    })
}

/// The items the request addresses: its item (checked to belong to the problem) or all.
async fn targets(pool: &PgPool, request: &Request) -> Result<Vec<String>, ProblemError> {
    let all = query::item_keys(pool, &request.problem).await?;
    let id = &request.problem;
    if all.is_empty() {
        return Err(ProblemError::NotFound(format!(
            "no problem {id} (resolved, or never seen); `origin problems list` shows them"
        )));
    }
    match &request.item {
        None => Ok(all),
        Some(item) if all.contains(item) => Ok(vec![item.clone()]),
        Some(item) => Err(ProblemError::NotFound(format!(
            "problem {id} has no item {item}; `origin problems show {id}` lists them"
        ))),
    }
}

/// The one item a link or create addresses.
fn single<'a>(request: &Request, keys: &'a [String]) -> Result<&'a str, ProblemError> {
    match (&request.item, keys) {
        (Some(_), [one]) | (None, [one]) => Ok(one),
        _ => Err(ProblemError::BadRequest(format!(
            "{} decides one company: name it with item (`origin problems show {}` lists them)",
            request.action, request.problem
        ))),
    }
}

fn numeric(keys: &[String]) -> Result<Vec<i64>, ProblemError> {
    keys.iter()
        .map(|k| {
            k.parse()
                .map_err(|_| ProblemError::BadRequest(format!("{k:?} is not a row id")))
        })
        .collect()
}

/// Hides the problem until an item of it is seen again; dismissing again moves the time.
async fn dismiss(
    pool: &PgPool,
    request: &Request,
    caller: Option<&Caller>,
) -> Result<Outcome, ProblemError> {
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ProblemError::BadRequest("dismiss needs a reason".into()))?;
    if request.item.is_some() {
        return Err(ProblemError::BadRequest(
            "dismiss applies to a whole problem: leave item out".into(),
        ));
    }
    let problem = query::problem(pool, &request.problem).await?;
    let id = &request.problem;
    sqlx::query!(
        "INSERT INTO problem_dismissals
             (shop, kind, reason_hash, problem_reason, reason, token_id, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (shop, kind, reason_hash) DO UPDATE
         SET problem_reason = EXCLUDED.problem_reason, reason = EXCLUDED.reason,
             dismissed_at = now(), token_id = EXCLUDED.token_id, actor = EXCLUDED.actor",
        id.shop.as_str(),
        id.kind.as_str(),
        id.reason_hash,
        problem.reason,
        reason,
        caller.map(|c| c.token_id),
        caller.map_or("cli", |c| c.name.as_str()),
    )
    .execute(pool)
    .await?;
    Ok(Outcome {
        problem: id.clone(),
        action: Action::Dismiss,
        items: Vec::new(),
        result: json!({ "dismissed": problem.count }),
    })
}
