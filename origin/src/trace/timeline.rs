//! A found record's timeline: one indexed read per source, merged in time order.

use sqlx::PgPool;
use time::OffsetDateTime;

use super::records::Found;
use super::{Entry, EntryKind, Record, RecordKind, Writer, MAX_EVENTS};

/// Reads everything about `found` and returns it as a [`Record`].
pub(super) async fn build(pool: &PgPool, found: Found) -> Result<Record, sqlx::Error> {
    let mut timeline = Vec::new();
    let events_truncated = inbox_events(pool, &found, &mut timeline).await?;
    rules_pushes(pool, &found, &mut timeline).await?;
    salesforce(pool, &found, &mut timeline).await?;
    findings(pool, &found, &mut timeline).await?;
    let writer = match &found.written_by {
        Some(w) => writer(pool, &found.shop, w, &mut timeline).await?,
        None => None,
    };
    // Stable: the steps of one event keep their order when two share a timestamp.
    timeline.sort_by_key(|e| e.at);
    let kind = match found.kind.as_str() {
        "order" => RecordKind::Order,
        "customer" => RecordKind::Customer,
        "product" => RecordKind::Product,
        "variant" => RecordKind::Variant,
        "company" => RecordKind::Company,
        _ => RecordKind::CompanyLocation,
    };
    Ok(Record {
        shop: found.shop,
        kind,
        gid: found.gid,
        label: found.label,
        written_by: found.written_by,
        writer,
        applied_at: found.applied_at,
        source_updated_at: found.source_updated_at,
        deleted_at: found.deleted_at,
        timeline,
        events_truncated,
    })
}

fn entry(at: OffsetDateTime, what: EntryKind, detail: String, inbox_id: Option<i64>) -> Entry {
    Entry {
        at,
        what,
        detail,
        inbox_id,
    }
}

/// The newest [`MAX_EVENTS`] inbox events about the record, each as its steps; true when
/// older ones were left out.
async fn inbox_events(
    pool: &PgPool,
    found: &Found,
    out: &mut Vec<Entry>,
) -> Result<bool, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, webhook_id, topic, source, triggered_at, received_at, inserted_at,
                  processed_at, status, outcome, outcome_reason, last_error, attempts, run_at
         FROM inbox
         WHERE shop = $1 AND subject = ANY($2)
         ORDER BY inserted_at DESC, id DESC
         LIMIT $3"#,
        found.shop,
        &found.subjects,
        MAX_EVENTS + 1,
    )
    .fetch_all(pool)
    .await?;
    let truncated = rows.len() as i64 > MAX_EVENTS;
    for r in rows.into_iter().take(MAX_EVENTS as usize) {
        let id = Some(r.id);
        let what = format!("{} (webhook {})", r.topic, r.webhook_id);
        if let Some(at) = r.triggered_at {
            out.push(entry(at, EntryKind::ShopifyTriggered, what.clone(), id));
        }
        let received = match r.source.as_str() {
            "edge" => format!("{what} by the edge"),
            "direct" => format!("{what} directly from Shopify"),
            "edge_dlq" => format!("{what} from the edge's dead-letter queue"),
            "reconcile" => format!("{what} queued by reconciliation"),
            other => format!("{what} via {other}"),
        };
        out.push(entry(r.received_at, EntryKind::EdgeReceived, received, id));
        out.push(entry(
            r.inserted_at,
            EntryKind::InboxReceived,
            format!("inbox row {}", r.id),
            id,
        ));
        let attempts = format!("after {} attempt(s)", r.attempts);
        let step = match (r.status.as_str(), r.outcome.as_deref()) {
            ("done", Some("applied")) => Some((EntryKind::Applied, attempts)),
            ("done", Some("stale")) => Some((
                EntryKind::Stale,
                r.outcome_reason.unwrap_or_else(|| "stale".into()),
            )),
            ("done", Some(_)) => Some((
                EntryKind::Ignored,
                r.outcome_reason.unwrap_or_else(|| "no handler".into()),
            )),
            // Done before outcomes were recorded.
            ("done", None) => Some((EntryKind::Applied, "done (outcome not recorded)".into())),
            ("dead", _) => Some((
                EntryKind::Dead,
                r.last_error.unwrap_or_else(|| "dead".into()),
            )),
            ("quarantined", _) => Some((
                EntryKind::Quarantined,
                r.last_error.unwrap_or_else(|| "quarantined".into()),
            )),
            ("pending", _) if r.last_error.is_some() => Some((
                EntryKind::Retrying,
                format!(
                    "{} ({attempts}; next try at {})",
                    r.last_error.unwrap_or_default(),
                    r.run_at
                ),
            )),
            _ => None,
        };
        if let Some((what, detail)) = step {
            let at = r.processed_at.unwrap_or(r.run_at.max(r.inserted_at));
            out.push(entry(at, what, detail, id));
        }
    }
    Ok(truncated)
}

/// The rules metafields pushed for the record's buyers, and their push errors.
async fn rules_pushes(
    pool: &PgPool,
    found: &Found,
    out: &mut Vec<Entry>,
) -> Result<(), sqlx::Error> {
    if found.buyers.is_empty() {
        return Ok(());
    }
    let pushed = sqlx::query!(
        "SELECT owner_id, key, pushed_at FROM rules_pushed
         WHERE shop = $1 AND owner_id = ANY($2) ORDER BY pushed_at",
        found.shop,
        &found.buyers,
    )
    .fetch_all(pool)
    .await?;
    for p in pushed {
        out.push(entry(
            p.pushed_at,
            EntryKind::MetafieldsPushed,
            format!("{} metafield {} is current", p.owner_id, p.key),
            None,
        ));
    }
    let errors = sqlx::query!(
        "SELECT company_location, error, recorded_at FROM rules_push_errors
         WHERE shop = $1 AND company_location = ANY($2)",
        found.shop,
        &found.buyers,
    )
    .fetch_all(pool)
    .await?;
    for e in errors {
        out.push(entry(
            e.recorded_at,
            EntryKind::PushError,
            format!("{}: {}", e.company_location, e.error),
            None,
        ));
    }
    Ok(())
}

/// The record's Salesforce outbox rows and, for an Account, how its company was matched.
async fn salesforce(pool: &PgPool, found: &Found, out: &mut Vec<Entry>) -> Result<(), sqlx::Error> {
    let (Some(object), Some(key)) = (&found.outbox_object, &found.outbox_key) else {
        return Ok(());
    };
    let rows = sqlx::query!(
        "SELECT id, status, lane, enqueued_at, done_at, salesforce_id, last_error, attempts,
                changed_at
         FROM salesforce_outbox
         WHERE shop = $1 AND object = $2 AND record_key = $3
         ORDER BY id DESC LIMIT 50",
        found.shop,
        object,
        key,
    )
    .fetch_all(pool)
    .await?;
    for r in rows {
        let row = format!("outbox row {} ({}, {})", r.id, object, r.lane);
        out.push(entry(
            r.enqueued_at,
            EntryKind::SalesforceQueued,
            row.clone(),
            None,
        ));
        match (r.status.as_str(), r.done_at) {
            ("done", Some(at)) => out.push(entry(
                at,
                EntryKind::SalesforceWritten,
                format!(
                    "{row}: Salesforce id {}",
                    r.salesforce_id.as_deref().unwrap_or("?")
                ),
                None,
            )),
            ("dead", _) => out.push(entry(
                r.changed_at,
                EntryKind::SalesforceFailed,
                format!(
                    "{row} after {} attempt(s): {}",
                    r.attempts,
                    r.last_error.as_deref().unwrap_or("failed")
                ),
                None,
            )),
            _ => {}
        }
    }
    if object == "account" {
        let link = sqlx::query!(
            "SELECT decision, account_id, decided_at, decided_by FROM salesforce_links
             WHERE shop = $1 AND company = $2",
            found.shop,
            key,
        )
        .fetch_optional(pool)
        .await?;
        if let Some(l) = link {
            out.push(entry(
                l.decided_at,
                EntryKind::SalesforceMatched,
                format!(
                    "{} by {}{}",
                    l.decision,
                    l.decided_by,
                    l.account_id
                        .map(|a| format!(": Account {a}"))
                        .unwrap_or_default()
                ),
                None,
            ));
        }
    }
    Ok(())
}

/// Reconciliation findings about the record.
async fn findings(pool: &PgPool, found: &Found, out: &mut Vec<Entry>) -> Result<(), sqlx::Error> {
    let Some(scope) = &found.finding_scope else {
        return Ok(());
    };
    let rows = sqlx::query!(
        "SELECT f.run_id, f.kind, f.record, f.found_at, f.healed_at, f.error
         FROM reconcile_findings f
         JOIN reconcile_runs r ON r.shop = f.shop AND r.id = f.run_id
         WHERE f.shop = $1 AND r.scope = $2
           AND (f.record = ANY($3) OR f.record LIKE $4)
         ORDER BY f.found_at DESC LIMIT 100",
        found.shop,
        scope,
        &found.findings,
        found.finding_pattern,
    )
    .fetch_all(pool)
    .await?;
    for f in rows {
        let outcome = match (f.healed_at, f.error) {
            (_, Some(e)) => format!("; healing failed: {e}"),
            (Some(_), None) => "; healed".into(),
            (None, None) => String::new(),
        };
        out.push(entry(
            f.found_at,
            EntryKind::ReconcileFinding,
            format!("{} on {} (run {}){outcome}", f.kind, f.record, f.run_id),
            None,
        ));
    }
    Ok(())
}

/// Resolves `written_by`; a catalog run also becomes a timeline step.
async fn writer(
    pool: &PgPool,
    shop: &str,
    written_by: &str,
    out: &mut Vec<Entry>,
) -> Result<Option<Writer>, sqlx::Error> {
    let Some((kind, id)) = written_by.split_once(':') else {
        return Ok(None);
    };
    match (kind, id.parse::<i64>()) {
        ("inbox", Ok(id)) => {
            let row = sqlx::query!(
                "SELECT topic, source, webhook_id FROM inbox WHERE shop = $1 AND id = $2",
                shop,
                id,
            )
            .fetch_optional(pool)
            .await?;
            Ok(Some(Writer::Inbox {
                id,
                topic: row.as_ref().map(|r| r.topic.clone()),
                source: row.as_ref().map(|r| r.source.clone()),
                webhook_id: row.map(|r| r.webhook_id),
            }))
        }
        ("catalog_run", Ok(id)) => {
            let run = sqlx::query!(
                r#"SELECT c.status, c.created_at, c.finished_at,
                          (SELECT r.id FROM reconcile_runs r
                           WHERE r.shop = c.shop AND r.catalog_run = c.id
                           ORDER BY r.id LIMIT 1) AS reconcile_run
                 FROM catalog_runs c WHERE c.shop = $1 AND c.id = $2"#,
                shop,
                id,
            )
            .fetch_optional(pool)
            .await?;
            let reconcile_run = run.as_ref().and_then(|r| r.reconcile_run);
            if let Some(r) = run {
                let by = reconcile_run
                    .map(|n| format!(", for reconciliation run {n}"))
                    .unwrap_or_default();
                out.push(entry(
                    r.finished_at.unwrap_or(r.created_at),
                    EntryKind::CatalogRun,
                    format!("catalog run {id} ({}){by} last wrote the record", r.status),
                    None,
                ));
            }
            Ok(Some(Writer::CatalogRun { id, reconcile_run }))
        }
        ("salesforce", _) => Ok(Some(Writer::Salesforce {
            change: id.to_owned(),
        })),
        _ => Ok(None),
    }
}
