//! The one lease-claim loop, shared by the inbox workers and the draft-order jobs.
//!
//! A [`LeaseQueue`] knows its table: how to claim due work under a lease (`FOR UPDATE SKIP
//! LOCKED`, `locked_by`, `locked_until`) and process it, how to release what this process
//! holds, and what housekeeping runs beside (reaping expired leases). [`run`] does the rest the
//! same way for every queue: `concurrency` claim loops that claim again at once while there is
//! work, and otherwise sleep until a NOTIFY on the queue's channel ([`crate::listener`]) or the
//! poll interval; on shutdown, claiming stops, in-flight work finishes (within the grace
//! period, if any), and what is still held is released for other processes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::listener;

/// A table of leased work (see the module documentation).
pub trait LeaseQueue: Clone + Send + Sync + 'static {
    /// What one claim loop carries from one claim to the next (the inbox's shop cursor).
    type Cursor: Default + Send;

    /// Claims due work and processes it; `true` to claim again at once (there was work).
    fn step(
        &self,
        cursor: &mut Self::Cursor,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// Returns what this process still holds to the queue; how many rows.
    fn release(&self) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs beside the loops until `shutdown` (e.g. reaping expired leases); nothing by default.
    fn housekeeping(&self, shutdown: CancellationToken) -> impl Future<Output = ()> + Send {
        async move { shutdown.cancelled().await }
    }
}

/// How [`run`] drives a queue.
#[derive(Clone, Debug)]
pub struct LoopSettings {
    /// The queue's name in logs and spans.
    pub name: &'static str,
    /// This process's name (`locked_by`), for logs.
    pub worker: Arc<str>,
    /// The NOTIFY channel that says work arrived.
    pub channel: &'static str,
    /// Claim loops in this process.
    pub concurrency: usize,
    /// How long an idle loop waits without a notification.
    pub poll: Duration,
    /// How long in-flight work may take after shutdown before it is aborted; `None`: as long
    /// as it takes.
    pub grace: Option<Duration>,
}

/// Runs `queue`'s claim loops, its listener and its housekeeping until `shutdown`, then drains
/// and releases (see the module documentation).
pub async fn run<Q: LeaseQueue>(
    queue: Q,
    pool: PgPool,
    settings: LoopSettings,
    shutdown: CancellationToken,
) {
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let stop_claiming = shutdown.child_token();
    let mut helpers = JoinSet::new();
    helpers.spawn(listener::forward(
        pool,
        settings.channel,
        wake_tx,
        shutdown.clone(),
    ));
    let housekeeper = queue.clone();
    let housekeeping_stop = shutdown.clone();
    helpers.spawn(async move { housekeeper.housekeeping(housekeeping_stop).await });
    let mut loops = JoinSet::new();
    for n in 0..settings.concurrency {
        let span = tracing::info_span!("lease_loop", queue = settings.name, worker = %settings.worker, loop_n = n);
        loops.spawn(
            claim_loop(
                queue.clone(),
                wake_rx.clone(),
                settings.poll,
                stop_claiming.clone(),
            )
            .instrument(span),
        );
    }
    tracing::info!(queue = settings.name, worker = %settings.worker, concurrency = settings.concurrency, "claim loops started");
    shutdown.cancelled().await;

    let drain = async { while loops.join_next().await.is_some() {} };
    let drained = match settings.grace {
        Some(grace) => tokio::time::timeout(grace, drain).await.is_ok(),
        None => {
            drain.await;
            true
        }
    };
    if !drained {
        tracing::warn!(queue = settings.name, grace = ?settings.grace, "in-flight work exceeded the grace period; aborting it");
        loops.abort_all();
        while loops.join_next().await.is_some() {}
    }
    helpers.abort_all();
    match queue.release().await {
        Ok(released) => tracing::info!(
            queue = settings.name,
            worker = %settings.worker,
            released,
            drained,
            "claim loops stopped"
        ),
        Err(e) => {
            tracing::error!(queue = settings.name, error = %e, "release failed; leases will expire")
        }
    }
}

async fn claim_loop<Q: LeaseQueue>(
    queue: Q,
    mut wake: watch::Receiver<u64>,
    poll: Duration,
    stop: CancellationToken,
) {
    let mut cursor = Q::Cursor::default();
    while !stop.is_cancelled() {
        wake.borrow_and_update();
        match queue.step(&mut cursor).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "claim failed; the leases will expire"),
        }
        tokio::select! {
            _ = wake.changed() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => {}
        }
    }
}
