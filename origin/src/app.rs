//! The origin service assembled: state, routes, and the serve loop with graceful shutdown.

use std::io;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wholesail_webhook::{Keyring, ShopifySecrets};

use crate::config::{Config, ConfigError};
use crate::shops::Shops;
use crate::worker::Workers;
use crate::{admin, auth, catalog, draft_orders, intake, ops};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Why the service could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The listener failed.
    #[error("http: {0}")]
    Io(#[from] io::Error),
    /// The database URL cannot be used for the catalog's COPY connections.
    #[error("database_url: {0}")]
    CopyUrl(#[from] tokio_postgres::Error),
}

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: PgPool,
    /// Keys for envelope signatures.
    pub keyring: Arc<Keyring>,
    /// Shopify secrets for direct mode, when configured.
    pub shopify: Option<Arc<ShopifySecrets>>,
    /// `/readyz` threshold.
    pub max_lag_secs: f64,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
    /// The configured shops, one Admin API client each.
    pub shops: Arc<Shops>,
    /// Drives catalog resyncs.
    pub catalog: catalog::Runner,
}

/// Opens the connection pool.
pub async fn connect(config: &Config) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.pool_size)
        .connect(config.database_url.expose_secret())
        .await
}

/// The HTTP routes, each behind [`auth::guard`] (the draft-order routes carry their own).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/internal/webhooks", post(intake::internal_webhooks))
        .route(
            "/internal/dead-letters",
            post(intake::internal_dead_letters),
        )
        .route("/webhooks/shopify", post(intake::shopify_direct))
        .merge(admin::routes(state.clone()))
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.pool.clone(),
            auth::guard,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// A name for this process in `locked_by`: host, pid and a random suffix.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "origin".into());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// Serves HTTP on `listener` and runs the workers until `shutdown` is cancelled; then stops
/// accepting requests, lets in-flight ones finish, and drains the workers (see
/// [`Workers::run`]). Applies pending migrations first when `migrate` is set.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    migrate: bool,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let pool = connect(&config).await?;
    if migrate {
        MIGRATOR.run(&pool).await?;
    }
    let shops = Arc::new(config.shops()?);
    let catalog = catalog::Runner::from_url(
        pool.clone(),
        config.database_url.expose_secret(),
        config.catalog.settings(),
    )?;
    let resumed = catalog::background::resume(&catalog, &shops).await?;
    if resumed > 0 {
        tracing::info!(resumed, "catalog runs resumed");
    }
    let state = AppState {
        pool: pool.clone(),
        keyring: Arc::new(config.keyring()?),
        shopify: config.shopify_secrets().map(Arc::new),
        max_lag_secs: config.readiness.max_lag_secs,
        metrics: ops::recorder(),
        shops,
        catalog,
    };
    let workers = Workers::new(pool.clone(), config.worker, worker_id());
    let workers = tokio::spawn(workers.run(shutdown.clone()));
    let rules_push = tokio::spawn(crate::rules::dirty::run(
        pool.clone(),
        state.shops.clone(),
        config.rules,
        shutdown.clone(),
    ));
    let (draft_routes, draft_loops) =
        draft_orders::start(&state, config.draft_orders, worker_id(), shutdown.clone());
    tracing::info!(addr = %listener.local_addr()?, "origin listening");
    let http = axum::serve(
        listener,
        router(state, config.max_body_bytes).merge(draft_routes),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await;
    // If HTTP failed on its own, stop the workers too.
    shutdown.cancel();
    if let Err(e) = workers.await {
        tracing::error!(error = %e, "worker task failed");
    }
    if let Err(e) = rules_push.await {
        tracing::error!(error = %e, "rules push task failed");
    }
    if let Err(e) = draft_loops.await {
        tracing::error!(error = %e, "draft-order job loop task failed");
    }
    pool.close().await;
    http?;
    Ok(())
}
