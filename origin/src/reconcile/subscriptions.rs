//! A shop's webhook subscriptions against what the pipeline needs: every required topic
//! subscribed at the edge's address. Shopify deletes a subscription whose delivery failed
//! every retry (8 over about 4 hours), and a merchant or a script can delete one too; from
//! then on that topic's changes arrive only through the other reconciliations. A run lists
//! the subscriptions (`webhookSubscriptions`) and, per required topic:
//! - none at all: `subscription_missing`, recreated (`webhookSubscriptionCreate`) in heal
//!   mode, counted in `wholesail_webhook_subscriptions_recreated_total{shop}` (an alert);
//! - only at another address (a previous deployment's edge): `subscription_elsewhere`,
//!   subscribed at the edge too; the old one is reported, not deleted.
//!
//! Compliance topics are subscribed in the app's configuration, not per shop, and the
//! untracked ones are not needed: neither is required.

use std::time::Instant;

use serde_json::json;
use sqlx::PgPool;
use wholesail_shopify_admin::webhooks::topic_enum;
use wholesail_shopify_admin::{AdminClient, AdminError};
use wholesail_webhook::{Family, KnownTopic, ShopDomain};

use super::runs::{self, Counts, Mode, Scope, Trigger, Window};

/// Why a run could not compare.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionsError {
    /// Recording the run.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Listing the subscriptions.
    #[error("listing the webhook subscriptions: {0}")]
    Shopify(#[from] AdminError),
}

/// The topics every shop must be subscribed to, as webhooks name them.
pub fn required_topics() -> impl Iterator<Item = &'static str> {
    KnownTopic::ALL
        .iter()
        .filter(|t| !matches!(t.family(), Family::Compliance | Family::Untracked))
        .map(|t| t.as_str())
}

/// Compares `shop`'s subscriptions with [`required_topics`] at `uri`, heals in `mode`
/// [`Mode::Heal`], and records the run; its id and counts.
pub async fn reconcile(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
    uri: &str,
    mode: Mode,
    trigger: Trigger,
) -> Result<(i64, Counts), SubscriptionsError> {
    let started = Instant::now();
    let run = runs::start(
        pool,
        shop,
        Scope::Subscriptions,
        trigger,
        mode,
        Window::default(),
    )
    .await?;
    let (existing, listing_cost) = match client.webhook_subscriptions().await {
        Ok(listed) => listed,
        Err(e) => {
            runs::finish(pool, shop, run, &Counts::default(), Some(&e.to_string())).await?;
            metrics::counter!("wholesail_reconcile_runs_total",
                "scope" => "subscriptions", "outcome" => "error")
            .increment(1);
            return Err(e.into());
        }
    };
    let mut counts = Counts {
        cost_used: listing_cost.into(),
        ..Counts::default()
    };
    for topic in required_topics() {
        counts.compared += 1;
        let name = topic_enum(topic);
        let of_topic: Vec<_> = existing.iter().filter(|s| s.topic == name).collect();
        if of_topic.iter().any(|s| s.uri == uri) {
            continue;
        }
        let (kind, elsewhere) = match of_topic.is_empty() {
            true => ("subscription_missing", Vec::new()),
            false => (
                "subscription_elsewhere",
                of_topic.iter().map(|s| s.uri.clone()).collect(),
            ),
        };
        match kind {
            "subscription_missing" => counts.missing += 1,
            _ => counts.stale += 1,
        }
        let healed = match mode {
            Mode::Report => Ok(false),
            Mode::Heal => match client.create_webhook_subscription(topic, uri).await {
                Ok((_, cost)) => {
                    counts.cost_used += i64::from(cost);
                    counts.healed += 1;
                    metrics::counter!("wholesail_webhook_subscriptions_recreated_total",
                        "shop" => shop.to_string())
                    .increment(1);
                    Ok(true)
                }
                Err(e) => {
                    counts.failed += 1;
                    Err(e.to_string())
                }
            },
        };
        tracing::warn!(%shop, topic, kind, healed = ?healed, "webhook subscription finding");
        metrics::counter!("wholesail_reconcile_findings_total",
            "scope" => "subscriptions", "kind" => kind)
        .increment(1);
        let detail = json!({ "uri": uri, "elsewhere": elsewhere });
        runs::finding(pool, shop, run, kind, topic, &detail, healed).await?;
    }
    runs::finish(pool, shop, run, &counts, None).await?;
    metrics::counter!("wholesail_reconcile_runs_total",
        "scope" => "subscriptions", "outcome" => "finished")
    .increment(1);
    metrics::histogram!("wholesail_reconcile_run_seconds", "scope" => "subscriptions")
        .record(started.elapsed().as_secs_f64());
    Ok((run, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_and_untracked_topics_are_not_required() {
        let required: Vec<_> = required_topics().collect();
        assert!(required.contains(&"orders/create"));
        assert!(required.contains(&"app/uninstalled"));
        assert!(required.contains(&"bulk_operations/finish"));
        assert!(!required.contains(&"shop/redact"));
        assert!(!required.contains(&"collections/delete"));
    }
}
