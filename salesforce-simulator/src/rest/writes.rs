//! Runs a batch of record writes the way the platform does: take the row locks (records and
//! locking parents; `UNABLE_TO_LOCK_ROW` if another request holds one), hold them for the
//! configured time, save in one transaction, roll back everything on failure under
//! `allOrNone`, and publish the change events on commit.

use std::sync::Arc;

use crate::errors::RecordError;
use crate::org::{Record, Saved, Txn};
use crate::rest::Scope;
use crate::state::Shared;

/// One record write.
pub enum Write {
    /// Insert.
    Create {
        /// The sObject.
        object: String,
        /// The fields.
        record: Record,
    },
    /// Update by id.
    Update {
        /// The sObject.
        object: String,
        /// The record.
        id: String,
        /// The fields.
        record: Record,
    },
    /// Upsert by external id.
    Upsert {
        /// The sObject.
        object: String,
        /// The external id field.
        field: String,
        /// The fields (external id included).
        record: Record,
    },
    /// Delete by id.
    Delete {
        /// The sObject.
        object: String,
        /// The record.
        id: String,
    },
}

/// Runs `writes`; one result per write, in order.
pub async fn run(
    st: &Arc<Shared>,
    scope: &mut Scope,
    writes: Vec<Write>,
    all_or_none: bool,
) -> Vec<Result<Saved, RecordError>> {
    let locks = st.locks.owner();
    let mut results: Vec<Option<Result<Saved, RecordError>>> = Vec::with_capacity(writes.len());
    {
        let org = st.org.lock().unwrap();
        for w in &writes {
            let keys = match w {
                Write::Create { object, record } => org.lock_keys(object, None, record),
                Write::Update { object, id, record } => {
                    let mut r = record.clone();
                    r.insert("Id".into(), id.clone().into());
                    org.lock_keys(object, None, &r)
                }
                Write::Upsert {
                    object,
                    field,
                    record,
                } => org.lock_keys(object, Some(field), record),
                Write::Delete { id, .. } => vec![id.clone()],
            };
            results.push(locks.try_lock(&keys).err().map(|busy| {
                Err(RecordError::new(
                    "UNABLE_TO_LOCK_ROW",
                    format!(
                        "unable to obtain exclusive access to this record or 1 records: {busy}"
                    ),
                    &[],
                ))
            }));
        }
    }
    let hold = *st.lock_hold.lock().unwrap();
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let now = st.now();
    let (mut txn, nested) = match scope.txn.take() {
        Some(t) => (t, true),
        None => (Txn::default(), false),
    };
    let mark = txn.mark();
    let mut org = st.org.lock().unwrap();
    for (w, slot) in writes.iter().zip(results.iter_mut()) {
        if slot.is_some() {
            continue;
        }
        *slot = Some(match w {
            Write::Create { object, record } => org
                .create(&mut txn, object, record, now)
                .map(|id| Saved { id, created: true }),
            Write::Update { object, id, record } => org
                .update(&mut txn, object, id, record, now)
                .map(|()| Saved {
                    id: crate::ids::normalize(id).unwrap_or_else(|| id.clone()),
                    created: false,
                }),
            Write::Upsert {
                object,
                field,
                record,
            } => org.upsert(&mut txn, object, field, record, now),
            Write::Delete { object, id } => org.delete(&mut txn, object, id).map(|()| Saved {
                id: id.clone(),
                created: false,
            }),
        });
    }
    let mut results: Vec<Result<Saved, RecordError>> = results
        .into_iter()
        .map(|r| r.expect("every write ran"))
        .collect();
    if all_or_none && results.iter().any(Result::is_err) {
        org.rollback_to(&mut txn, mark);
        for r in &mut results {
            if r.is_ok() {
                *r = Err(RecordError::rolled_back());
            }
        }
    }
    drop(org);
    if nested {
        scope.txn = Some(txn);
    } else {
        st.commit(txn, &st.api_origin(scope.client.as_deref()));
    }
    results
}
