//! The origin service assembled: state, routes, and the serve loop with graceful shutdown.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, HttpConfig};
use crate::pipeline::intake;
use crate::pipeline::runner::Workers;
pub use crate::state::AppState;
use crate::{
    admin, auth, catalog, console, draft_orders, http_error, http_limits, http_server, ops,
};

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
    #[error(transparent)]
    CopyUrl(#[from] crate::pg_tls::PgTlsError),
    /// A Salesforce org's client could not be built.
    #[error("salesforce: {0}")]
    Salesforce(#[from] wholesail_salesforce::Error),
}

/// Connects the configured shops to their Salesforce orgs and starts the sync, and for orgs
/// with a Pub/Sub endpoint the change subscription and the quote write-back; `None` when no
/// org is configured.
async fn start_salesforce(
    state: &AppState,
    config: &crate::salesforce::SalesforceConfig,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServeError> {
    use crate::salesforce::{inbound::Inbound, quotes::WriteBack, runner::Sync};
    if config.orgs.is_empty() {
        return Ok(None);
    }
    let pool = &state.pool;
    let clients = config.clients()?;
    for shop in clients.keys() {
        crate::salesforce::outbox::connect(pool, shop).await?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for org in &config.orgs {
        let (Some(endpoint), Some(client)) = (&org.pubsub_url, clients.get(&org.shop)) else {
            continue;
        };
        let inbound = Inbound::new(
            pool.clone(),
            org.shop.clone(),
            client.clone(),
            endpoint.clone(),
            state.shops.clone(),
            config.inbound.clone(),
        );
        tasks.spawn(inbound.run(shutdown.clone()));
    }
    if !tasks.is_empty() {
        let poll = std::time::Duration::from_millis(config.inbound.write_back_poll_ms);
        tasks.spawn(WriteBack::new(pool.clone(), clients.clone(), poll).run(shutdown.clone()));
    }
    let sync = Sync::new(pool.clone(), clients, worker_id(), config.sync.clone());
    tasks.spawn(sync.run(shutdown));
    Ok(Some(tokio::spawn(async move {
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "salesforce task failed");
            }
        }
    })))
}

/// A pooled connection idle at least this long is pinged before it is handed out.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Opens the connection pool ([`pool_options`]), logging which server and database it uses
/// (host and database name only: the URL may hold a password).
pub async fn connect(config: &Config) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.database_url.expose_secret().parse()?;
    tracing::info!(
        host = options.get_host(),
        database = options.get_database().unwrap_or("(the user name)"),
        "using PostgreSQL"
    );
    pool_options(config.pool_size).connect_with(options).await
}

/// The pool's settings: at most `max_connections`, and a connection pinged before use only
/// when it has sat idle for [`PING_IDLE_AFTER`]. One that sat out a server restart or a
/// dropped link is found and replaced, while a busy pool does not pay a round trip per acquire
/// (sqlx's default pings every time). A connection that breaks within that second fails its
/// statement: intake answers 503 and the sender retries; a worker's batch is retried.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_IDLE_AFTER {
                    return Ok(true);
                }
                // A dead connection is expected after a restart: replaced, not an error.
                let alive = conn.ping().await;
                if let Err(error) = &alive {
                    tracing::info!(%error, "idle database connection is dead; replacing it");
                }
                Ok(alive.is_ok())
            })
        })
}

/// The HTTP routes with default `[http]` settings, without the concurrency limit (what
/// in-process tests serve).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    crate::metrics_catalog::describe();
    let ops = ops::Ops::new(&state);
    api_routes(state, max_body_bytes, &HttpConfig::default())
        .merge(ops::probe_routes(ops.clone()))
        .merge(ops::metrics_routes(ops))
        .layer(axum::middleware::map_response(http_error::json_errors))
}

/// The intake and admin routes (no probes, no `/metrics`), intake behind its limits, each
/// behind [`auth::guard`] (the draft-order routes carry their own).
pub fn api_routes(state: AppState, max_body_bytes: usize, http: &HttpConfig) -> Router {
    Router::new()
        .merge(intake::routes(
            intake::Intake::start(&state),
            max_body_bytes,
            http,
        ))
        .merge(admin::routes(&state))
        .merge(console::routes(&state))
        .route_layer(axum::middleware::from_fn_with_state(
            state.pool.clone(),
            auth::guard,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
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
    // Installed before the shops' clients, so that their breakers' initial state is exported.
    let metrics = ops::recorder();
    crate::slo::install(config.slo);
    crate::metrics_catalog::describe();
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
    let catalog_adopt = tokio::spawn(catalog::background::adopt(
        catalog.clone(),
        shops.clone(),
        config.catalog.adopt_interval(),
        shutdown.clone(),
    ));
    let state = AppState {
        pool: pool.clone(),
        keyring: Arc::new(config.keyring()?),
        shopify: config.shopify_secrets().map(Arc::new),
        max_lag_secs: config.readiness.max_lag_secs,
        metrics,
        shops,
        catalog,
    };
    // Bound before anything is spawned, so a bad `metrics.bind` stops nothing half-started.
    let metrics_listener = match config.metrics.bind {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let workers = Workers::new(pool.clone(), config.worker, worker_id());
    let workers = tokio::spawn(workers.run(shutdown.clone()));
    let rules_push = tokio::spawn(crate::rules::scheduler::run(
        pool.clone(),
        state.shops.clone(),
        config.rules,
        shutdown.clone(),
    ));
    let reconcile = tokio::spawn(crate::reconcile::scheduler::run(
        crate::reconcile::scheduler::Context {
            pool: pool.clone(),
            shops: state.shops.clone(),
            settings: config.reconcile.clone(),
            catalog: state.catalog.clone(),
            timing: config.reconcile.orders_timing(&config.catalog),
            salesforce: config.salesforce.clients()?,
            salesforce_sync: config.salesforce.sync.clone(),
        },
        shutdown.clone(),
    ));
    let retention = tokio::spawn(crate::pipeline::retention::run(
        pool.clone(),
        config.inbox,
        shutdown.clone(),
    ));
    let catalog_marks = tokio::spawn(catalog::marks::run(
        pool.clone(),
        catalog::marks::INTERVAL,
        shutdown.clone(),
    ));
    let (draft_routes, draft_loops) =
        draft_orders::start(&state, config.draft_orders, worker_id(), shutdown.clone());
    let salesforce = start_salesforce(&state, &config.salesforce, shutdown.clone()).await?;
    let ops = ops::Ops::new(&state);
    let api = api_routes(state, config.max_body_bytes, &config.http).merge(draft_routes);
    let mut app = http_limits::limit(api, &config.http).merge(ops::probe_routes(ops.clone()));
    let header_timeout = config.http.header_timeout();
    let metrics_server = match metrics_listener {
        Some(listener) => {
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            Some(tokio::spawn(http_server::serve(
                listener,
                ops::metrics_routes(ops),
                header_timeout,
                shutdown.clone(),
            )))
        }
        None => {
            app = app.merge(ops::metrics_routes(ops));
            None
        }
    };
    tracing::info!(addr = %listener.local_addr()?, "origin listening");
    let http = http_server::serve(listener, app, header_timeout, shutdown.clone()).await;
    // If HTTP failed on its own, stop the workers too.
    shutdown.cancel();
    if let Err(e) = workers.await {
        tracing::error!(error = %e, "worker task failed");
    }
    if let Err(e) = rules_push.await {
        tracing::error!(error = %e, "rules push task failed");
    }
    if let Err(e) = reconcile.await {
        tracing::error!(error = %e, "reconcile task failed");
    }
    if let Err(e) = retention.await {
        tracing::error!(error = %e, "inbox retention task failed");
    }
    if let Err(e) = draft_loops.await {
        tracing::error!(error = %e, "draft-order job loop task failed");
    }
    if let Err(e) = catalog_adopt.await {
        tracing::error!(error = %e, "catalog adoption task failed");
    }
    if let Err(e) = catalog_marks.await {
        tracing::error!(error = %e, "catalog marks compaction task failed");
    }
    if let Some(Err(e)) = match salesforce {
        Some(task) => Some(task.await),
        None => None,
    } {
        tracing::error!(error = %e, "salesforce sync task failed");
    }
    if let Some(metrics_server) = metrics_server {
        match metrics_server.await {
            Ok(Err(e)) => tracing::error!(error = %e, "metrics listener failed"),
            Err(e) => tracing::error!(error = %e, "metrics listener task failed"),
            Ok(Ok(())) => {}
        }
    }
    pool.close().await;
    http?;
    Ok(())
}
