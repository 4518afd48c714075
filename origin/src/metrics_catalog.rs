//! Every Prometheus metric origin exports, in one table ([`METRICS`]): name, type, labels and
//! the help text [`describe`] gives the recorder (the `# HELP` lines of `/metrics`).
//! `docs/metrics.md` lists the same metrics for operators; `tests/metrics.rs` checks that the
//! two agree, that every metric the code records is here, and lints a live scrape with
//! `promtool check metrics`.

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// A value read or set at a point in time.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count` series).
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Full name, `wholesail_` prefixed.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// What it measures (the `# HELP` text).
    pub help: &'static str,
}

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        labels,
        help,
    }
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        labels,
        help,
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram,
        labels,
        help,
    }
}

/// Every metric origin exports, grouped by subsystem.
pub const METRICS: &[Metric] = &[
    // Intake and inbox.
    counter("wholesail_http_shed_total", &[], "Requests refused with 503 because the HTTP concurrency limit was reached."),
    counter("wholesail_intake_signatures_total", &["version"], "Edge envelopes accepted, by signature version (v1, v2)."),
    counter("wholesail_intake_events_total", &["source", "result"], "Webhooks received, by route and result: accepted, duplicate, quarantined, dead_letter, rejected."),
    counter("wholesail_intake_wakeups_total", &["result"], "NOTIFYs intake sent to wake the workers (coalesced: at most one per 5 ms), by result: sent, failed (the rows wait for the workers' poll)."),
    gauge("wholesail_inbox_depth", &["status"], "Inbox rows by status (pending, processing, dead, quarantined), read at scrape time."),
    gauge("wholesail_inbox_lag_seconds", &[], "How long the oldest due pending inbox row has waited."),
    counter("wholesail_inbox_purged_total", &["reason"], "Inbox rows deleted: retention or redacted_shop."),
    counter("wholesail_events_processed_total", &["outcome"], "Inbox events handled: applied, stale or ignored."),
    counter("wholesail_event_failures_total", &["kind"], "Handler failures: transient (retried) or permanent."),
    histogram("wholesail_handler_duration_seconds", &["topic"], "Time a handler took to apply one event, by topic."),
    histogram("wholesail_processing_lag_seconds", &[], "Time from intake to applied."),
    histogram("wholesail_event_attempts", &[], "Claims an event needed until it was done."),
    counter("wholesail_dead_letters_total", &["reason"], "Events moved to the dead-letter shelf: handler or lease_expired."),
    counter("wholesail_dead_letters_replayed_total", &[], "Dead letters put back to pending by an operator."),
    counter("wholesail_quarantine_replayed_total", &[], "Quarantined rows replayed by an operator."),
    // Latency against the SLOs (set in the configuration).
    histogram("wholesail_e2e_latency_seconds", &["stage"], "End-to-end latency by stage: shopify_to_applied, applied_to_salesforce, rule_to_metafield, order_to_quota."),
    counter("wholesail_slo_events_total", &["stage", "result"], "Latency observations by stage, good or bad against the stage's configured objective."),
    gauge("wholesail_slo_objective_seconds", &["stage"], "The configured latency objective of each stage."),
    gauge("wholesail_slo_target_ratio", &["stage"], "The configured share of events that must meet the stage's objective (e.g. 0.99)."),
    // Problems.
    gauge("wholesail_problems_open", &["kind"], "Open problems that need a person, by kind, read at scrape time."),
    // Catalog runs.
    counter("wholesail_catalog_runs_total", &["shop", "outcome"], "Catalog resync runs ended by this process: completed, failed, canceled or handed_over."),
    histogram("wholesail_catalog_stage_seconds", &["shop"], "Time a completed catalog run spent downloading, parsing and copying into staging."),
    histogram("wholesail_catalog_merge_seconds", &["shop"], "Time a completed catalog run spent in its merge transaction."),
    counter("wholesail_catalog_rows_staged_total", &["shop"], "Rows completed catalog runs wrote into staging."),
    counter("wholesail_catalog_rows_merged_total", &["shop", "change"], "Rows completed catalog runs inserted, updated or deleted in the live tables."),
    gauge("wholesail_catalog_rows_per_second", &["shop"], "Rows staged per second of import in the shop's last completed catalog run."),
    // Rules push.
    counter("wholesail_rules_pushes_total", &["shop", "result"], "Background rules push rounds per shop: ok, partial, deferred or error."),
    histogram("wholesail_rules_push_seconds", &["shop"], "Duration of a background rules push round."),
    counter("wholesail_rules_metafields_written_total", &["shop"], "Rules metafields written to Shopify by the background push."),
    counter("wholesail_rules_push_failed_buyers_total", &["shop"], "Buyers the background push could not push (rules too large for the Function)."),
    // Shopify Admin API.
    counter("wholesail_shopify_requests_total", &["shop", "result"], "Admin API attempts: ok, throttled, retried or failed."),
    counter("wholesail_shopify_throttled_total", &["shop"], "Admin API attempts Shopify throttled (THROTTLED or 429)."),
    counter("wholesail_shopify_cost_points_total", &["shop"], "Admin API cost points Shopify charged (actualQueryCost)."),
    gauge("wholesail_shopify_bucket_available_points", &["shop"], "Cost points available in the shop's bucket at the last response."),
    gauge("wholesail_shopify_bucket_maximum_points", &["shop"], "Size of the shop's cost bucket."),
    gauge("wholesail_shop_breaker_state", &["shop"], "The shop's Shopify circuit breaker: 0 closed, 1 half-open, 2 open."),
    // Draft orders.
    counter("wholesail_draft_order_quotes_total", &[], "Quotes accepted by POST /v1/draft-orders."),
    counter("wholesail_draft_order_jobs_total", &["outcome"], "Draft-order jobs ended: completed, rejected or failed."),
    histogram("wholesail_draft_order_job_seconds", &["outcome"], "Time from a draft-order job's creation to its end."),
    counter("wholesail_draft_order_retries_total", &[], "Draft-order job steps released to be retried later."),
    counter("wholesail_draft_orders_created_total", &["recovered"], "Draft orders created, or recovered after an unknown outcome."),
    // Salesforce.
    counter("wholesail_salesforce_calls_total", &["org", "kind"], "Salesforce API calls by kind (sobject, collections, composite, query, bulk, limits)."),
    counter("wholesail_salesforce_call_failures_total", &["object", "verdict"], "Failed Salesforce writes by object and verdict."),
    counter("wholesail_salesforce_records_total", &["object", "outcome"], "Records written to Salesforce by object and outcome."),
    counter("wholesail_salesforce_dead_total", &[], "Outbox records Salesforce refused for good."),
    gauge("wholesail_salesforce_api_used_ratio", &["org"], "Share of the org's daily API request limit used."),
    gauge("wholesail_salesforce_reserve_reached", &["org"], "1 while backfills are paused at the org's API reserve."),
    gauge("wholesail_salesforce_breaker_state", &["org"], "The org's circuit breaker: 0 closed, 1 half-open, 2 open."),
    histogram("wholesail_salesforce_lag_seconds", &[], "Time from an outbox change to its Salesforce commit."),
    gauge("wholesail_salesforce_outbox_depth", &["status"], "Salesforce outbox rows by status, read at scrape time."),
    gauge("wholesail_salesforce_outbox_oldest_seconds", &[], "Age of the oldest pending Salesforce outbox row."),
    counter("wholesail_salesforce_matches_total", &["decision"], "Company to Account matching decisions."),
    counter("wholesail_salesforce_contact_matches_total", &["decision"], "Customer to Contact matching decisions."),
    counter("wholesail_salesforce_drift_total", &["object"], "Shopify-owned fields found edited in Salesforce, by object."),
    histogram("wholesail_salesforce_quote_to_cash_seconds", &[], "Time from a Quote's approval in Salesforce to its draft orders."),
    gauge("wholesail_salesforce_cdc_connected", &["shop"], "1 while the Change Data Capture subscription is connected."),
    counter("wholesail_salesforce_cdc_events_total", &["entity", "own"], "Change events read, by entity and whether origin made the change."),
    counter("wholesail_salesforce_cdc_failures_total", &["shop"], "Change Data Capture subscription failures."),
    histogram("wholesail_salesforce_cdc_lag_seconds", &[], "Time from a change in Salesforce to its event here."),
    counter("wholesail_salesforce_cdc_catchups_total", &["shop"], "SOQL catch-ups run because the stored replay id had expired."),
    // Reconciliation.
    counter("wholesail_reconcile_runs_total", &["scope", "outcome"], "Reconciliation runs by scope (orders, catalog, price_lists, subscriptions, salesforce) and outcome."),
    histogram("wholesail_reconcile_run_seconds", &["scope"], "Duration of reconciliation runs."),
    counter("wholesail_reconcile_findings_total", &["scope", "kind"], "Differences reconciliation found, by scope and kind."),
    gauge("wholesail_inventory_drift_units", &["shop"], "Stock units the last catalog reconciliation found drifted from Shopify."),
    counter("wholesail_webhook_subscriptions_recreated_total", &["shop"], "Webhook subscriptions found missing and recreated."),
    counter("wholesail_price_list_variants_written_total", &[], "Price list variant prices written to Shopify."),
];

/// Gives the installed recorder every metric's help text; call once it is installed
/// ([`crate::ops::recorder`]). Only metrics with a value appear in a scrape.
pub fn describe() {
    for m in METRICS {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// The metric `name` (without a `_bucket`, `_sum` or `_count` suffix of a histogram).
pub fn find(name: &str) -> Option<&'static Metric> {
    let exact = METRICS.iter().find(|m| m.name == name);
    exact.or_else(|| {
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            METRICS
                .iter()
                .find(|m| m.name == base && m.kind == Kind::Histogram)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prefixed_and_counters_end_in_total() {
        let mut seen = std::collections::HashSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("wholesail_"), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            assert!(m.help.ends_with('.'), "{}: help is a sentence", m.name);
        }
    }

    #[test]
    fn histogram_series_resolve_to_their_histogram() {
        assert_eq!(
            find("wholesail_processing_lag_seconds_bucket").map(|m| m.name),
            Some("wholesail_processing_lag_seconds")
        );
        assert!(find("wholesail_inbox_depth_count").is_none());
        assert!(find("wholesail_nothing").is_none());
    }
}
