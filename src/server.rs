//! `autional serve`: opens the store, loads keys, starts background work (sweeper, key reload,
//! rate-limit housekeeping, the event delivery worker) and serves HTTP (`listener`: timeouts, connection cap) until
//! SIGINT/SIGTERM, plus Prometheus metrics on their own listener when `metrics.listen` is set,
//! and the admin API on its own when `admin.listen` is (the default).

use crate::app::App;
use crate::config::{Config, DatabaseLocation};
use crate::http::{router, AppState};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{DynStore, SweepPolicy};
use crate::util::now_ms;
use std::sync::Arc;
use std::time::Duration;

/// Opens the configured backend behind the store guard (time limit, fail fast: `store::guard`).
pub async fn open_store(cfg: &Config) -> anyhow::Result<DynStore> {
    let timeout = cfg.store.timeout.0;
    Ok(match cfg.database_location().map_err(anyhow::Error::msg)? {
        DatabaseLocation::Sqlite(path) => {
            Arc::new(SqliteStore::open(&path, cfg.store.max_batch, cfg.store.readers)?.with_timeout(timeout))
        }
        DatabaseLocation::Postgres(url) => Arc::new(
            PgStore::open(&url, cfg.store.pg_pool_size, cfg.store.pg_recent_families)
                .await?
                .with_timeout(timeout),
        ),
    })
}

/// Runs the server. `on_ready` is called with the app once keys are loaded (demo set-up).
pub async fn serve(cfg: Config, demo: bool) -> anyhow::Result<()> {
    // First, so that handles taken at start-up (the store's writer) record into it. Only when
    // metrics are served (`metrics.listen`): otherwise nobody could read them.
    let metrics = cfg.metrics.listen.as_ref().and_then(|_| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .ok()
    });
    // Histogram samples accumulate in the recorder until a scrape or an upkeep drains them:
    // without this, a server nobody scrapes grew by every sample it recorded.
    if let Some(handle) = metrics.clone() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let store = open_store(&cfg).await?;
    let app = App::new(cfg, store).await?;
    if demo {
        crate::demo::setup(&app).await?;
    }
    let limits = Arc::new(crate::http::ratelimit_limits(&app.cfg));
    let state = AppState {
        app: app.clone(),
        limits: limits.clone(),
        metrics,
        demo,
    };

    let sweeper_app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweeper_app.cfg.store.sweep_interval.0.max(Duration::from_secs(1)));
        loop {
            tick.tick().await;
            let policy = SweepPolicy {
                retention_ms: sweeper_app.cfg.store.sweep_retention.as_ms(),
                audit_retention_ms: sweeper_app.cfg.store.audit_retention.as_ms(),
            };
            match sweeper_app.store.sweep(now_ms(), policy).await {
                Ok(r) => tracing::debug!(?r, "swept expired rows"),
                Err(e) => tracing::warn!(error = %e, "sweep failed"),
            }
            limits.shrink();
        }
    });
    let counts_app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::grants::refresh_counts::FLUSH_EVERY);
        loop {
            tick.tick().await;
            let app = &counts_app;
            if let Err(e) = crate::grants::refresh_counts::flush(&app.refresh_counts, &app.store, now_ms()).await {
                tracing::warn!(error = %e, "storing refresh counts failed; kept for the next try");
            }
        }
    });
    // The outbox's delivery worker (docs/design/events.md).
    crate::delivery::start(app.clone())?;
    let keys_app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(keys_app.cfg.keys.reload_interval.0.max(Duration::from_millis(100)));
        loop {
            tick.tick().await;
            match keys_app.reload_keys().await {
                Ok(true) => tracing::info!("signing keys reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "key reload failed"),
            }
        }
    });

    // Both listeners are bound before anything is announced: a taken port stops the start.
    let listener = tokio::net::TcpListener::bind(&app.cfg.listen).await?;
    let metrics_listener = match &app.cfg.metrics.listen {
        Some(a) => Some(tokio::net::TcpListener::bind(a).await?),
        None => None,
    };
    let admin_listener = match &app.cfg.admin.listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("admin.listen {a}: {e}"))?,
        ),
        None => None,
    };
    let addr = listener.local_addr()?;
    // One signal, several listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop_tx.send(());
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
        let _ = rx.changed().await;
    };
    // The private listeners: their own router and a small connection cap each.
    let side = |l: tokio::net::TcpListener, router: axum::Router, max_connections: usize, what: &'static str| {
        let limits = crate::listener::Limits {
            max_connections,
            ..crate::listener::Limits::from_config(&app.cfg.http)
        };
        if let Ok(a) = l.local_addr() {
            tracing::info!(addr = %a, "{what} served");
        }
        tokio::spawn(crate::listener::serve(l, router, limits, stopped(stop_rx.clone())))
    };
    let metrics_task = metrics_listener.map(|l| {
        side(
            l,
            crate::http::metrics_router(state.clone()),
            METRICS_CONNECTIONS,
            "metrics",
        )
    });
    let admin_task = admin_listener.map(|l| {
        side(
            l,
            crate::http::admin_router(state.clone()),
            ADMIN_CONNECTIONS,
            "admin API",
        )
    });
    println!("listening on http://{addr}");
    tracing::info!(%addr, issuer = %app.cfg.issuer, "autional serving");
    crate::listener::serve(
        listener,
        router(state),
        crate::listener::Limits::from_config(&app.cfg.http),
        stopped(stop_rx),
    )
    .await?;
    for t in [metrics_task, admin_task].into_iter().flatten() {
        let _ = t.await;
    }
    // The last interval's refresh counts, before the process goes.
    if let Err(e) = crate::grants::refresh_counts::flush(&app.refresh_counts, &app.store, now_ms()).await {
        tracing::warn!(error = %e, "storing refresh counts at shutdown failed");
    }
    Ok(())
}

/// Connections the metrics listener serves at once (scrapers, not the public).
const METRICS_CONNECTIONS: usize = 16;
/// Connections the admin listener serves at once (operators and their tools).
const ADMIN_CONNECTIONS: usize = 64;

async fn shutdown() {
    let term = async {
        #[cfg(unix)]
        {
            if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                s.recv().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
