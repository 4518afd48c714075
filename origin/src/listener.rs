//! LISTEN connections of their own.
//!
//! `PgListener::connect_with(pool)` keeps one of the pool's connections for as long as it
//! listens, so each background loop waiting for a NOTIFY (inbox workers, catalog runs, draft
//! order jobs, the rules push) would shrink the pool that serves requests and workers.
//! [`listen`] opens a dedicated connection with the pool's options instead.

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;

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
