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
/// used as given, except that the connection log is always off (docs/THREAT_MODEL.md, invariant 2).
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

/// The admin router: `/metrics`, and with `health_on_admin` also `/healthz`, `/readyz` and
/// `/v1/openapi.json`.
pub fn admin_app(state: AppState) -> axum::Router {
    let handle = metrics_handle();
    let extra = if state.config.health_on_admin {
        crate::http::routes::health::router()
            .merge(crate::http::openapi::router())
            .with_state(state.clone())
    } else {
        axum::Router::new()
    };
    axum::Router::new().merge(extra).route(
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
        serve_api(listener, router, &state.config, shutdown).await;
        sweeper.abort();
        waker.abort();
        // Wake signals already under way finish (their HTTP client has short timeouts).
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), state.wake_tasks.idle()).await;
        state.store.close().await;
        Ok(())
    });
    Ok(Running {
        addr,
        admin_addr,
        task,
    })
}

/// The API listener's accept loop (HTTP/1.1 with upgrades, for the stream).
///
/// Written out rather than `axum::serve` for two limits a flood must not get past: at most
/// `max_connections` connections are open at once (beyond it, new ones wait in the kernel's
/// accept queue), and a client that has not sent its request headers within
/// `header_read_timeout_secs` is disconnected, so slow clients cannot hold connections
/// open for free. The peer address is never looked at or logged.
///
/// On `shutdown` it stops accepting, asks every open connection to finish its in-flight
/// request and close, and returns once they have.
async fn serve_api(
    listener: TcpListener,
    router: axum::Router,
    config: &crate::config::Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use std::sync::Arc;
    use std::time::Duration;

    let max = config.max_connections.max(1);
    let connections = Arc::new(tokio::sync::Semaphore::new(max as usize));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_read_timeout_secs));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            )
            .with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { drop(stop.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it is done.
    let _ = connections.acquire_many(max).await;
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
