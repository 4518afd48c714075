//! Runs driven by the server in the background: started from the admin API, and resumed
//! when `origin serve` starts (a run's state is in `catalog_runs`, so a restart picks a
//! waiting run up where it was: it polls the same bulk operation, or re-imports the file,
//! instead of starting a new export).

use std::sync::Arc;

use wholesail_shopify_admin::AdminClient;

use super::run::{Progress, Runner};
use super::runs;
use crate::shops::Shops;

/// Drives run `id` on a background task; its outcome is stored in the run's row.
pub fn spawn(runner: Runner, id: i64, client: Arc<AdminClient>) {
    tokio::spawn(async move {
        let _ = runner.drive(id, &client, &ignore_progress).await;
    });
}

/// Background runs report progress through their row only.
fn ignore_progress(_: Progress) {}

/// Resumes every active run whose shop is configured; returns how many. A run of a shop that
/// is not (or no longer) configured stays as it is, with a warning, until its shop is
/// configured again or an operator cancels it.
pub async fn resume(runner: &Runner, shops: &Shops) -> Result<usize, sqlx::Error> {
    let mut resumed = 0;
    for run in runs::all_active(runner.pool()).await? {
        match shops.client(&run.shop) {
            Ok(client) => {
                tracing::info!(run = run.id, shop = %run.shop, status = %run.status, "resuming catalog run");
                spawn(runner.clone(), run.id, client);
                resumed += 1;
            }
            Err(e) => tracing::warn!(run = run.id, error = %e, "catalog run not resumed"),
        }
    }
    Ok(resumed)
}
