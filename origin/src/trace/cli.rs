//! `origin trace <q> [--shop S] [--json]`: a record's timeline as an aligned table (or JSON).

use clap::Args;
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use super::{lookup, Record, Trace, TraceError};

/// `origin trace`'s arguments.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A GID (gid://shopify/Order/…, Product, ProductVariant, Customer, Company,
    /// CompanyLocation), an order name (#1042), an email or a SKU.
    pub query: String,
    /// Only this shop (e.g. acme.myshopify.com).
    #[arg(long)]
    pub shop: Option<ShopDomain>,
    /// Print the trace as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `origin trace`: prints the trace, or fails with what to try instead.
pub async fn run(pool: &PgPool, args: TraceArgs) -> Result<(), TraceError> {
    let trace = lookup(pool, args.shop.as_ref(), &args.query).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&trace).expect("a trace serializes")
        );
    } else {
        print!("{}", render(&trace));
    }
    Ok(())
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The trace for people: per record a header, what last wrote it, then the timeline with
/// aligned columns (time, step, detail).
pub fn render(trace: &Trace) -> String {
    let mut out = String::new();
    for (i, record) in trace.records.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_record(&mut out, record);
    }
    out
}

fn render_record(out: &mut String, r: &Record) {
    let label = r
        .label
        .as_deref()
        .map(|l| format!(" {l}"))
        .unwrap_or_default();
    out.push_str(&format!(
        "{}{label}  {}  ({})\n",
        r.gid,
        r.shop,
        kind_name(r)
    ));
    let version = r.source_updated_at.map(at).unwrap_or_else(|| "-".into());
    let applied = r.applied_at.map(at).unwrap_or_else(|| "-".into());
    out.push_str(&format!("  version {version}, last written {applied}"));
    match &r.written_by {
        Some(w) => out.push_str(&format!(" by {w}\n")),
        None => out.push_str(" (writer not recorded)\n"),
    }
    if let Some(deleted) = r.deleted_at {
        out.push_str(&format!("  deleted at {}\n", at(deleted)));
    }
    if r.timeline.is_empty() {
        out.push_str("  no events kept for this record\n");
        return;
    }
    let rows: Vec<(String, &str, &str)> = r
        .timeline
        .iter()
        .map(|e| (at(e.at), e.what.as_str(), e.detail.as_str()))
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (time, what, detail) in rows {
        out.push_str(&format!("  {time:<w0$}  {what:<w1$}  {detail}\n"));
    }
    if r.events_truncated {
        out.push_str(&format!(
            "  showing the newest {} inbox events; older ones are left out\n",
            super::MAX_EVENTS
        ));
    }
}

fn kind_name(r: &Record) -> &'static str {
    use super::RecordKind as K;
    match r.kind {
        K::Order => "order",
        K::Customer => "customer",
        K::Product => "product",
        K::Variant => "variant",
        K::Company => "company",
        K::CompanyLocation => "company location",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Entry, EntryKind, Query, RecordKind};
    use time::macros::datetime;

    #[test]
    fn the_timeline_is_an_aligned_table() {
        let entry = |at, what, detail: &str| Entry {
            at,
            what,
            detail: detail.into(),
            inbox_id: Some(1),
        };
        let trace = Trace {
            query: Query::OrderName {
                name: "#1042".into(),
            },
            records: vec![Record {
                shop: "acme.myshopify.com".into(),
                kind: RecordKind::Order,
                gid: "gid://shopify/Order/7".into(),
                label: Some("#1042".into()),
                written_by: Some("inbox:1".into()),
                writer: None,
                applied_at: Some(datetime!(2026-12-01 10:00:02 UTC)),
                source_updated_at: Some(datetime!(2026-12-01 10:00 UTC)),
                deleted_at: None,
                timeline: vec![
                    entry(
                        datetime!(2026-12-01 10:00 UTC),
                        EntryKind::ShopifyTriggered,
                        "orders/create (webhook w1)",
                    ),
                    entry(
                        datetime!(2026-12-01 10:00:02 UTC),
                        EntryKind::Applied,
                        "after 1 attempt(s)",
                    ),
                ],
                events_truncated: false,
            }],
        };
        assert_eq!(
            render(&trace),
            "gid://shopify/Order/7 #1042  acme.myshopify.com  (order)\n\
             \x20 version 2026-12-01T10:00:00Z, last written 2026-12-01T10:00:02Z by inbox:1\n\
             \x20 2026-12-01T10:00:00Z  shopify triggered  orders/create (webhook w1)\n\
             \x20 2026-12-01T10:00:02Z  applied            after 1 attempt(s)\n"
        );
    }
}
