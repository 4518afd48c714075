//! `bulk_operations/finish`: wakes the catalog run waiting for that bulk operation.
//!
//! The run itself downloads and imports the file; the handler only records that Shopify said
//! the operation ended and notifies the runner (see [`crate::catalog::bulk_finished`]). A
//! finish for an operation no active run owns (another app's, or a run already ended by
//! polling) changes nothing.

use serde::Deserialize;
use sqlx::PgConnection;

use super::{parse, HandlerError, InboxEvent, Verdict};

/// The fields the handler reads.
#[derive(Deserialize)]
struct Finished<'a> {
    admin_graphql_api_id: &'a str,
}

/// Wakes the run of `event.shop` that owns the finished bulk operation.
pub(super) async fn finished(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let body: Finished = parse(event)?;
    let run =
        crate::catalog::bulk_finished(&mut *conn, &event.shop, body.admin_graphql_api_id).await?;
    Ok(Verdict::from_won(run.is_some(), || {
        "no catalog run of this shop waits for this bulk operation".into()
    }))
}
