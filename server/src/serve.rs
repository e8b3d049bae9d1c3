//! Running the server: API listener, admin (metrics) listener, sweeper, wake-signal task,
//! graceful shutdown.
//!
//! Shutdown stops accepting, lets in-flight requests finish (an envelope answered 202 is
//! already committed), then closes the database cleanly.

use crate::app::{AppState, app};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The tracing directive for a configured `log_level`. A bare level applies to this server's
/// own events; libraries stay at `warn`, because some of them log client addresses at debug
/// and trace level (axum logs every accepted connection's peer address). A full directive is
/// used as given, except that the connection log is always off (DESIGN.md §3, invariant 2).
pub fn log_directive(level: &str) -> String {
    let level = level.trim();
    if ["error", "warn", "info", "debug", "trace"].contains(&level) {
        format!("warn,quietline_server={level},axum::serve=off")
    } else {
        format!("{level},axum::serve=off")
    }
}

/// Install the JSON log subscriber (stdout) once per process.
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(log_directive(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_directive("info")));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .try_init();
}

/// Install the Prometheus recorder once per process and return its handle.
fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
}

/// The admin router: `/metrics` only.
pub fn admin_app(state: AppState) -> axum::Router {
    let handle = metrics_handle();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            let state = state.clone();
            async move {
                metrics::gauge!("quietline_streams_registered").set(state.hub.live() as f64);
                handle.map(|h| h.render()).unwrap_or_default()
            }
        }),
    )
}

/// A server started in the background (tests, `serve`).
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Bind the listeners and serve until `shutdown` completes.
pub async fn start(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(&state.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", state.config.listen))?;
    let addr = listener.local_addr()?;
    let admin_addr = if state.config.admin_listen.is_empty() {
        None
    } else {
        let admin = TcpListener::bind(&state.config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {}", state.config.admin_listen))?;
        let admin_addr = admin.local_addr()?;
        let router = admin_app(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(admin, router).await;
        });
        Some(admin_addr)
    };
    let sweeper = tokio::spawn(crate::sweeper::run(state.clone()));
    let waker = tokio::spawn(crate::service::push::run(state.clone()));
    let router = app(state.clone());
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        sweeper.abort();
        waker.abort();
        // Wake signals already under way finish (their HTTP client has short timeouts).
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), state.wake_tasks.idle()).await;
        state.store.close().await;
        result.context("server error")
    });
    Ok(Running {
        addr,
        admin_addr,
        task,
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
