//! Final tombstones for the tables keyed by Shopify's numeric id (orders, products,
//! customers). Shopify never reuses or restores an id, and an id-only delete payload cannot be
//! ordered against versions by time, so a delete is final: the row keeps `deleted_at` and the
//! upserts skip tombstoned rows, whatever arrives later.

use sqlx::PgConnection;

use super::{parse, DeletedById, HandlerError, InboxEvent, Verdict};

/// A child table cleared with its tombstoned parent: its name and the column naming the parent.
pub(super) struct Children {
    /// The child table, e.g. `order_lines`.
    pub table: &'static str,
    /// The column holding the parent's id, e.g. `order_id`.
    pub parent_column: &'static str,
}

/// Writes the tombstone of the `*/delete` event into `table`, then removes the parent's
/// `children`. `Applied` when this event deleted the row, `Stale` when it already was.
pub(super) async fn write(
    conn: &mut PgConnection,
    event: &InboxEvent,
    table: &'static str,
    children: Option<Children>,
) -> Result<Verdict, HandlerError> {
    let deleted: DeletedById = parse(event)?;
    let won = sqlx::query(&format!(
        "INSERT INTO {table} AS t (shop, id, deleted_at, written_by) VALUES ($1, $2, now(), $3)
         ON CONFLICT (shop, id) DO UPDATE SET deleted_at = now(), applied_at = now(),
                                              written_by = $3
         WHERE t.deleted_at IS NULL"
    ))
    .bind(&event.shop)
    .bind(deleted.id)
    .bind(event.written_by())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    if let Some(Children {
        table: child,
        parent_column,
    }) = children
    {
        // After the parent's row lock, in a fresh snapshot: also removes children a
        // concurrent writer of the parent committed while this event waited for the lock.
        sqlx::query(&format!(
            "DELETE FROM {child} WHERE shop = $1 AND {parent_column} = $2"
        ))
        .bind(&event.shop)
        .bind(deleted.id)
        .execute(conn)
        .await?;
    }
    Ok(Verdict::from_won(won, || "already deleted".into()))
}
