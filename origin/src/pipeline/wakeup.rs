//! Waking the inbox workers after intake has committed, off the request's path.
//!
//! A `NOTIFY` inside the intake transaction makes its commit take PostgreSQL's one
//! notification lock (`PreCommit_Notify`, held until the commit is flushed), so concurrent
//! intake requests that each notify commit one after another and never share a WAL flush.
//! [`Wakeup`] instead sends the `NOTIFY` from a task of its own after the commit, in a
//! transaction that does not wait for its flush (a lost wake-up is only a delay: the workers
//! also poll), and folds the signals that arrive while one is being sent into the next one.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;

use crate::pipeline::inbox::CHANNEL;

/// The wake-up sender of one process (cheap to clone).
#[derive(Clone)]
pub struct Wakeup {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    due: Notify,
    started: OnceLock<()>,
}

impl Wakeup {
    /// A sender on `pool`; its task starts with the first [`Wakeup::signal`].
    pub fn new(pool: PgPool) -> Self {
        Wakeup {
            inner: Arc::new(Inner {
                pool,
                due: Notify::new(),
                started: OnceLock::new(),
            }),
        }
    }

    /// Asks for one `NOTIFY` on [`CHANNEL`] after this call (call it after the commit that
    /// made rows due). Never waits; several signals may be sent as one.
    pub fn signal(&self) {
        self.inner
            .started
            .get_or_init(|| drop(tokio::spawn(send_loop(Arc::downgrade(&self.inner)))));
        self.inner.due.notify_one();
    }
}

/// Sends one `NOTIFY` per batch of signals until the last [`Wakeup`] is dropped.
async fn send_loop(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // Re-checks now and then whether the senders are gone.
        if tokio::time::timeout(Duration::from_secs(1), inner.due.notified())
            .await
            .is_err()
        {
            continue;
        }
        // One statement, one round trip; a wake-up needs no durability, so its commit does
        // not wait for the WAL flush.
        let sent = sqlx::query!(
            "SELECT set_config('synchronous_commit', 'off', true) AS setting, pg_notify($1, '') AS sent",
            CHANNEL
        )
        .fetch_one(&inner.pool)
        .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "inbox wake-up NOTIFY failed; the workers' poll picks the rows up");
        }
    }
}
