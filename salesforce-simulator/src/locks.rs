//! Row locks: a write holds the records it touches and their parents (an order's items lock
//! the order, contacts their account) for as long as it runs; another write that needs one
//! of them meanwhile fails with `UNABLE_TO_LOCK_ROW`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The lock table.
#[derive(Default)]
pub struct RowLocks {
    held: Mutex<HashMap<String, u64>>,
    next_owner: AtomicU64,
}

/// The locks of one request, released when dropped.
pub struct LockSet {
    table: Arc<RowLocks>,
    owner: u64,
}

impl RowLocks {
    /// Rows locked now.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// A new, empty lock set for one request.
    pub fn owner(self: &Arc<Self>) -> LockSet {
        LockSet {
            table: self.clone(),
            owner: self.next_owner.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl LockSet {
    /// Takes all of `ids` (or none): `Err(id)` names one held by another request.
    pub fn try_lock(&self, ids: &[String]) -> Result<(), String> {
        let mut held = self.table.held.lock().unwrap();
        if let Some(busy) = ids
            .iter()
            .find(|id| held.get(*id).is_some_and(|o| *o != self.owner))
        {
            return Err(busy.clone());
        }
        for id in ids {
            held.insert(id.clone(), self.owner);
        }
        Ok(())
    }
}

impl Drop for LockSet {
    fn drop(&mut self) {
        self.table
            .held
            .lock()
            .unwrap()
            .retain(|_, owner| *owner != self.owner);
    }
}
