//! Application state and the router: `app(state) -> Router` so tests can drive the whole
//! HTTP stack with or without a socket.

use crate::auth::jwt::Keys;
use crate::clock::Clock;
use crate::config::Config;
use crate::hub::Hub;
use crate::store::{Backend, Store};
use std::ops::Deref;
use std::sync::Arc;

/// Everything a request needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub keys: Keys,
    pub hub: Arc<Hub>,
    pub limits: crate::limits::Limits,
    /// The one HTTP client for wake signals ([`crate::service::push`]): redirects off, short
    /// timeouts, no user agent.
    pub http: reqwest::Client,
    /// Wake signals sent in the background after a store; shutdown (and tests) wait on it.
    pub wake_tasks: crate::service::push::WakeTasks,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Open the configured database (applying migrations) and load the signing keys.
    pub async fn new(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
        let store = if config.uses_postgres() {
            Store::open_postgres(
                config.database_url.expose(),
                config.database_max_connections,
            )
            .await?
        } else {
            Store::open_sqlite(&config.data_dir).await?
        };
        Self::with_store(config, clock, store).await
    }

    pub async fn with_store(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Store,
    ) -> anyhow::Result<AppState> {
        let secret = if config.jwt_secret.expose().is_empty() {
            if store.backend() == Backend::Postgres {
                tracing::warn!(
                    "no jwt_secret configured: this replica signs tokens with its own key file; \
                     replicas behind one address must share jwt_secret (docs/OPERATIONS.md)"
                );
            }
            crate::secret_file::signing_secret(&config.data_dir, &store).await?
        } else {
            config.jwt_secret.expose().as_bytes().to_vec()
        };
        let previous: Vec<&[u8]> = config
            .jwt_previous_secrets
            .iter()
            .map(|s| s.expose().as_bytes())
            .collect();
        let keys = Keys::new(&secret, &previous, config.access_token_ttl_secs)?;
        let hub = Arc::new(Hub::default());
        if let Some(pool) = store.postgres_pool() {
            tokio::spawn(crate::hub::listen_postgres(pool.clone(), hub.clone()));
        }
        let http = crate::service::push::http_client(&config)?;
        let limits = crate::limits::Limits::new(&config);
        Ok(AppState(Arc::new(Inner {
            config,
            store,
            clock,
            keys,
            hub,
            limits,
            http,
            wake_tasks: Default::default(),
        })))
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}

/// The whole API router, under the configured route prefix.
pub fn app(state: AppState) -> axum::Router {
    crate::http::router(state)
}
