//! LISTEN connections of their own.
//!
//! `PgListener::connect_with(pool)` keeps one of the pool's connections for as long as it
//! listens, so each background loop waiting for a NOTIFY (inbox workers, catalog runs, draft
//! order jobs, the rules push) would shrink the pool that serves requests and workers.
//! [`listen`] opens a dedicated connection with the pool's options instead.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A listener on `channel`, on a connection of its own (same database and credentials as
/// `pool`); it reconnects by itself when that connection drops.
pub async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with((*pool.connect_options()).clone())
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Bumps `wake` on every NOTIFY on `channel` until `shutdown`, for claim loops that also poll:
/// after a lost connection it reconnects a second later, waking the loops once so that
/// whatever was notified meanwhile is picked up.
pub async fn forward(
    pool: PgPool,
    channel: &'static str,
    wake: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    let bump = |n: &mut u64| *n = n.wrapping_add(1);
    loop {
        let heard = async {
            let mut listener = listen(&pool, channel).await?;
            loop {
                listener.recv().await?;
                wake.send_modify(bump);
            }
        };
        tokio::select! {
            result = heard => {
                let Err::<std::convert::Infallible, sqlx::Error>(e) = result;
                tracing::warn!(error = %e, channel, "LISTEN connection lost; polling until it is back");
            }
            _ = shutdown.cancelled() => return,
        }
        wake.send_modify(bump);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[sqlx::test(migrations = false)]
    async fn a_listener_leaves_the_pool_its_connections_and_hears_notifications(pool: PgPool) {
        let one = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let mut listener = listen(&one, "wholesail_listener_test").await.unwrap();
        // The pool's only connection is still free for work.
        sqlx::query("SELECT pg_notify('wholesail_listener_test', 'hello')")
            .execute(&one)
            .await
            .expect("the pool's connection is not held by the listener");
        let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("notification within 5 s")
            .unwrap();
        assert_eq!(n.payload(), "hello");
    }
}
