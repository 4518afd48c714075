//! One driver per run. A process drives a run only while it holds the run's session advisory
//! lock on a PostgreSQL connection of its own ([`Lease`]): whoever starts, resumes or joins a
//! run first takes the lock; everyone else watches the run's row instead. When the driver
//! dies, PostgreSQL ends its session and releases the lock, and the next process that looks
//! (a server's adoption loop, a new `origin catalog resync`) takes the run over.
//!
//! Taking a run increments its `attempt`: the attempt names the staging tables and guards
//! every write of the driver (`WHERE attempt = …`), so a driver that lost its lock (its
//! connection dropped while it kept running) can no longer change the run or merge it.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio_postgres::Client;

use crate::pg_tls::PgConnect;

use super::runner::RunError;

/// How often the lock connection is checked while a run is driven.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// The advisory lock key of run `id`: (class, object) in the two-`int4` key space.
const LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('wholesail_catalog_run'), ($1::bigint % 2147483647)::int)";

/// The right to drive one run: its advisory lock, held on a connection of its own for as long
/// as this value lives (dropping it closes the connection, which releases the lock).
pub struct Lease {
    run: i64,
    attempt: i32,
    client: Client,
    closed: oneshot::Receiver<()>,
}

/// What [`take`] found.
pub enum Take {
    /// This process drives the run now.
    Driving(Lease),
    /// Another process holds the run.
    Busy,
    /// The run has ended (or does not exist).
    Ended,
}

impl Lease {
    /// The run.
    pub fn run(&self) -> i64 {
        self.run
    }

    /// This driver's attempt (names the staging tables, guards every write).
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// Resolves when the lock may be lost: its connection ended or stopped answering. A
    /// driver stops driving then (its writes would be refused anyway).
    pub async fn lost(&mut self) {
        loop {
            tokio::select! {
                _ = &mut self.closed => return,
                _ = tokio::time::sleep(HEARTBEAT) => {}
            }
            let ping = tokio::time::timeout(HEARTBEAT, self.client.simple_query("SELECT 1"));
            if !matches!(ping.await, Ok(Ok(_))) {
                return;
            }
        }
    }
}

/// Takes run `id` for this process (`who` names it in the run's `driver`), if no other
/// process holds it and it has not ended.
pub async fn take(config: &PgConnect, pool: &PgPool, id: i64, who: &str) -> Result<Take, RunError> {
    // A dead peer is noticed within about a minute, not after the OS default of two hours.
    let (client, closed) = config
        .clone()
        .keepalives(Duration::from_secs(30))
        .connect_watched()
        .await
        .map_err(RunError::Lock)?;
    let locked: bool = client
        .query_one(LOCK, &[&id])
        .await
        .map_err(RunError::Lock)?
        .get(0);
    if !locked {
        return Ok(Take::Busy);
    }
    let attempt = sqlx::query_scalar!(
        "UPDATE catalog_runs SET attempt = attempt + 1, driver = $2, updated_at = now()
         WHERE id = $1 AND status IN ('starting', 'waiting', 'importing')
         RETURNING attempt",
        id,
        who,
    )
    .fetch_optional(pool)
    .await?;
    Ok(match attempt {
        Some(attempt) => Take::Driving(Lease {
            run: id,
            attempt,
            client,
            closed,
        }),
        None => Take::Ended,
    })
}
