//! The Prometheus metrics of catalog runs, recorded by their driver when a run ends:
//!
//! - `wholesail_catalog_runs_total{shop,outcome}` counter: `completed`, `failed`, `canceled`
//!   (a cancel or a report-only reconciliation) or `handed_over` (another driver took it);
//! - `wholesail_catalog_stage_seconds{shop}` and `wholesail_catalog_merge_seconds{shop}`
//!   histograms: download, parse and COPY into staging; the merge transaction;
//! - `wholesail_catalog_rows_staged_total{shop}` counter: rows written into staging;
//! - `wholesail_catalog_rows_merged_total{shop,change}` counter: rows the merge inserted,
//!   updated or deleted;
//! - `wholesail_catalog_rows_per_second{shop}` gauge: the last completed run's rows staged per
//!   second of import (staging and merge).

use super::runner::{Outcome, RunError};

/// Records how a driven run ended.
pub(crate) fn record(shop: &str, result: &Result<Outcome, RunError>) {
    let outcome = match result {
        Ok(_) => "completed",
        Err(RunError::Superseded(_) | RunError::LostLock(_)) => "handed_over",
        Err(RunError::Canceled | RunError::ReportOnly(_)) => "canceled",
        Err(_) => "failed",
    };
    metrics::counter!("wholesail_catalog_runs_total",
        "shop" => shop.to_owned(), "outcome" => outcome)
    .increment(1);
    let Ok(done) = result else { return };
    metrics::histogram!("wholesail_catalog_stage_seconds", "shop" => shop.to_owned())
        .record(done.stage_time.as_secs_f64());
    metrics::histogram!("wholesail_catalog_merge_seconds", "shop" => shop.to_owned())
        .record(done.merge_time.as_secs_f64());
    let staged = done.staged.total();
    metrics::counter!("wholesail_catalog_rows_staged_total", "shop" => shop.to_owned())
        .increment(staged);
    let merged = done.merged.total();
    for (change, rows) in [
        ("inserted", merged.inserted),
        ("updated", merged.updated),
        ("deleted", merged.deleted),
    ] {
        metrics::counter!("wholesail_catalog_rows_merged_total",
            "shop" => shop.to_owned(), "change" => change)
        .increment(rows);
    }
    let secs = done.import_time.as_secs_f64();
    if secs > 0.0 {
        metrics::gauge!("wholesail_catalog_rows_per_second", "shop" => shop.to_owned())
            .set(staged as f64 / secs);
    }
}
