//! Runs driven by the server in the background: started from the admin API, resumed when
//! `origin serve` starts, and adopted when their driver died (a run's state is in
//! `catalog_runs`, so a new driver picks a waiting run up where it was: it polls the same bulk
//! operation, or re-imports the file, instead of starting a new export). A run another
//! process drives is left to it (see `driver`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wholesail_shopify_admin::AdminClient;

use super::runner::{Progress, RunError, Runner};
use super::runs;
use crate::shops::Shops;

/// Drives run `id` on a background task unless another process drives it; its outcome is
/// stored in the run's row.
pub fn spawn(runner: Runner, id: i64, client: Arc<AdminClient>) {
    tokio::spawn(async move {
        match runner.drive(id, &client, &ignore_progress).await {
            Err(RunError::NotDriven(_)) => {
                tracing::debug!(run = id, "catalog run driven elsewhere or ended");
            }
            // Failures of the run itself are logged by the driver; this is the lock.
            Err(e @ RunError::Lock(_)) => {
                tracing::warn!(run = id, error = %e, "catalog run not taken");
            }
            _ => {}
        }
    });
}

/// Background runs report progress through their row only.
fn ignore_progress(_: Progress) {}

/// Offers every active run whose shop is configured to a background driver (each takes its
/// run only if no process drives it); returns how many. A run of a shop that is not (or no
/// longer) configured stays as it is, with a warning, until its shop is configured again or
/// an operator cancels it.
pub async fn resume(runner: &Runner, shops: &Shops) -> Result<usize, sqlx::Error> {
    let mut resumed = 0;
    for run in runs::all_active(runner.pool()).await? {
        match shops.client(&run.shop) {
            Ok(client) => {
                spawn(runner.clone(), run.id, client);
                resumed += 1;
            }
            Err(e) => tracing::warn!(run = run.id, error = %e, "catalog run not resumed"),
        }
    }
    Ok(resumed)
}

/// Every `interval` until `shutdown`, offers the active runs to this process ([`resume`]):
/// a run whose driver died (its lock released with its session) is taken over.
pub async fn adopt(
    runner: Runner,
    shops: Arc<Shops>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = resume(&runner, &shops).await {
            tracing::warn!(error = %e, "catalog runs not adopted");
        }
    }
}
