//! Test kit: boots real Quietline servers (SQLite in a temporary directory, or a fresh
//! PostgreSQL database when `QUIETLINE_TEST_POSTGRES_URL` is set) on a real TCP port, with
//! a manual clock, and sets up organisations, members and survivor devices through the
//! client SDK over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use quietline_client::Api;
use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::wire::{DeviceKeys, Enroll, Login, OneTimePrekey, Role, SignedPrekey};
use quietline_server::AppState;
use quietline_server::clock::{Clock, ManualClock};
use quietline_server::config::Config;
use quietline_server::store::Store;
use std::sync::Arc;

pub use quietline_server::store::Backend;

/// The PostgreSQL server for the PostgreSQL half of the suite, if configured: the
/// environment at run time, else the one the suite was built with (which decides whether the
/// PostgreSQL tests are ignored; see `build.rs`).
pub fn postgres_url() -> Option<String> {
    std::env::var("QUIETLINE_TEST_POSTGRES_URL")
        .ok()
        .or_else(|| option_env!("QUIETLINE_TEST_POSTGRES_URL").map(str::to_owned))
        .filter(|s| !s.is_empty())
}

/// A fresh, empty PostgreSQL database for one test; returns its URL. Databases left by
/// earlier runs (process ids no longer running) are dropped first.
pub async fn fresh_postgres_database(base: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("connect to PostgreSQL");
    let pid = std::process::id();
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'qltest\\_%' AND datname NOT LIKE $1",
    )
    .bind(format!("qltest\\_{pid}\\_%"))
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    // Only databases whose process has ended: suites running in parallel on one machine
    // (several worktrees, one PostgreSQL) must not drop each other's databases mid-test.
    let ended = |db: &String| {
        let pid = db.split('_').nth(1).unwrap_or_default();
        !std::path::Path::new("/proc").join(pid).exists()
    };
    for db in stale.into_iter().filter(ended) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
    let name = format!("qltest_{pid}_{}", hex(&rand_bytes::<6>()));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    // Replace the database name in the URL.
    let (head, tail) = match base.split_once('?') {
        Some((h, t)) => (h, format!("?{t}")),
        None => (base, String::new()),
    };
    let root = head.rsplit_once('/').map(|(r, _)| r).unwrap_or(head);
    format!("{root}/{name}{tail}")
}

pub fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).unwrap();
    b
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn random_id() -> Id {
    Id(rand_bytes())
}

/// Public keys that look right to the relay (it only checks lengths). Tests of the relay
/// alone use these; the end-to-end tests use real keys from the client.
pub fn fake_keys(one_time: u32) -> DeviceKeys {
    DeviceKeys {
        identity_key: Bytes(rand_bytes::<32>().to_vec()),
        signing_key: Bytes(rand_bytes::<32>().to_vec()),
        signed_prekey: SignedPrekey {
            id: 1,
            public_key: Bytes(rand_bytes::<32>().to_vec()),
            signature: Bytes(vec![7; 64]),
        },
        one_time_prekeys: (0..one_time)
            .map(|i| OneTimePrekey {
                id: 100 + i,
                public_key: Bytes(rand_bytes::<32>().to_vec()),
            })
            .collect(),
    }
}

/// Opaque bytes of an allowed envelope size.
pub fn opaque(len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    getrandom::fill(&mut v).unwrap();
    Bytes(v)
}

/// A running server with a manual clock.
pub struct TestServer {
    pub base: String,
    /// The admin listener (`/metrics`), when `admin_listen` was configured.
    pub admin_base: Option<String>,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub backend: Backend,
    pub database_url: Option<String>,
    pub data_dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A signed-in member with one registered device.
#[derive(Clone)]
pub struct Member {
    pub handle: String,
    pub member_id: Id,
    pub device_id: Id,
    pub role: Role,
    /// Authorised with the device-bound access token.
    pub api: Api,
    pub refresh_token: String,
    pub totp_uri: String,
    pub password: String,
}

/// A registered survivor device.
#[derive(Clone)]
pub struct Survivor {
    pub device_id: Id,
    pub api: Api,
    pub refresh_token: String,
    pub exit_token: String,
}

pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        admin_listen: String::new(),
        pow_bits: 4,
        access_token_ttl_secs: 3600,
        // Scenario tests send bursts from one device; the abuse tests set real limits.
        rate_limit_per_second: 1000,
        rate_limit_burst: 10_000,
        log_level: std::env::var("QUIETLINE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config();
        let (data_dir, database_url) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                config.data_dir = dir.path().to_owned();
                (Some(dir), None)
            }
            Backend::Postgres => {
                let base = postgres_url().expect("QUIETLINE_TEST_POSTGRES_URL");
                let url = fresh_postgres_database(&base).await;
                config.database_url = quietline_server::config::Secret::new(url.clone());
                config.database_max_connections = 8;
                (None, Some(url))
            }
        };
        tweak(&mut config);
        Self::boot(config, backend, data_dir, database_url).await
    }

    async fn boot(
        config: Config,
        backend: Backend,
        data_dir: Option<tempfile::TempDir>,
        database_url: Option<String>,
    ) -> TestServer {
        if std::env::var("QUIETLINE_TEST_LOG").is_ok() {
            quietline_server::serve::init_logging(&config.log_level);
        }
        let clock = ManualClock::starting_now();
        let state = AppState::new(config, clock.clone() as Arc<dyn Clock>)
            .await
            .expect("state");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = quietline_server::serve::start(state.clone(), async move {
            let _ = rx.await;
        })
        .await
        .expect("start");
        TestServer {
            base: format!("http://{}", running.addr),
            admin_base: running.admin_addr.map(|a| format!("http://{a}")),
            state,
            clock,
            backend,
            database_url,
            data_dir,
            shutdown: Some(tx),
            task: Some(running.task),
        }
    }

    pub fn clock_now(&self) -> i64 {
        self.clock.now()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// A client without a token. With a route prefix configured, the base includes it.
    pub fn api(&self) -> Api {
        Api::new(&format!("{}{}", self.base, self.state.config.route_prefix)).unwrap()
    }

    /// Stop the server gracefully and drop a PostgreSQL test database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
        if let (Some(url), Some(base)) = (&self.database_url, postgres_url()) {
            use sqlx::Connection;
            let name = url
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned();
            if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
            }
        }
    }

    pub async fn create_org(&self, code: &str) {
        self.store()
            .create_org(&random_id().0, code, &format!("{code} hotline"), 0)
            .await
            .unwrap();
    }

    /// Invite, enrol and log in a new member of `org`; returns a client holding the member
    /// (not device) access token, and the member's credentials.
    pub async fn enrolled_member(&self, org: &str, handle: &str, role: Role) -> (Api, Member) {
        let o = self
            .store()
            .org_by_code(org)
            .await
            .unwrap()
            .expect("org exists");
        let org_id = Id::from_slice(&o.id).unwrap();
        let invited =
            quietline_server::service::members::invite_in_org(&self.state, org_id, handle, role)
                .await
                .unwrap();
        let api = self.api();
        let password = format!("pw-{}-long-enough", handle);
        let enrolled = api
            .enroll(&Enroll {
                token: invited.token,
                password: password.clone(),
            })
            .await
            .unwrap();
        let logged = self
            .login(org, handle, &password, &enrolled.totp_uri, None)
            .await
            .unwrap();
        let member_api = api.with_token(logged.tokens.access_token.as_str());
        let member = Member {
            handle: handle.into(),
            member_id: enrolled.member_id,
            device_id: Id([0; 16]),
            role,
            api: member_api.clone(),
            refresh_token: logged.tokens.refresh_token,
            totp_uri: enrolled.totp_uri,
            password,
        };
        (member_api, member)
    }

    /// Invite, enrol, log in and register a device for a new member of `org`.
    pub async fn member(&self, org: &str, handle: &str, role: Role) -> Member {
        let (member_api, mut member) = self.enrolled_member(org, handle, role).await;
        let reg = member_api
            .register_member_device(fake_keys(20))
            .await
            .unwrap();
        member.device_id = reg.device_id;
        member.api = self.api().with_token(reg.tokens.access_token.as_str());
        member.refresh_token = reg.tokens.refresh_token;
        member
    }

    /// A second server on the same database (another replica), with its own clock.
    pub async fn replica(&self) -> TestServer {
        let config = self.state.config.clone();
        Self::boot(config, self.backend, None, None).await
    }

    /// The current TOTP code for an enrolled member, at the server's clock.
    pub fn totp_code(&self, uri: &str) -> String {
        let t = totp_rs::TOTP::from_url_unchecked(uri).unwrap();
        t.generate(self.clock.now() as u64)
    }

    /// Log in; moves the clock one TOTP step first so codes are never replays.
    pub async fn login(
        &self,
        org: &str,
        handle: &str,
        password: &str,
        totp_uri: &str,
        device: Option<Id>,
    ) -> quietline_client::Result<quietline_proto::wire::LoggedIn> {
        self.clock.advance(30);
        self.api()
            .login(&Login {
                org: org.into(),
                handle: handle.into(),
                password: password.into(),
                totp: self.totp_code(totp_uri),
                device_id: device,
            })
            .await
    }

    pub async fn survivor(&self) -> Survivor {
        self.survivor_with_keys(fake_keys(20)).await
    }

    pub async fn survivor_with_keys(&self, keys: DeviceKeys) -> Survivor {
        let api = self.api();
        let reg = api.register_survivor(keys).await.unwrap();
        Survivor {
            device_id: reg.device_id,
            api: api.with_token(reg.tokens.access_token.as_str()),
            refresh_token: reg.tokens.refresh_token,
            exit_token: reg.exit_token.expect("survivors get an exit token"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Define `mod $name { sqlite, postgres }` tests running `$name(backend)` on each database.
/// The PostgreSQL one is `#[ignore]`d (and shown as ignored in the summary) unless
/// `QUIETLINE_TEST_POSTGRES_URL` was set when the suite was built; `.ci/run` sets it and
/// fails if PostgreSQL is unreachable.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(quietline_postgres),
                    ignore = "needs QUIETLINE_TEST_POSTGRES_URL at build time"
                )]
                async fn postgres() {
                    assert!(
                        $crate::postgres_url().is_some(),
                        "QUIETLINE_TEST_POSTGRES_URL is not set"
                    );
                    super::$name($crate::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// A message with one 1 KiB opaque envelope for `device`, under a fresh message id.
pub fn one_envelope(device: Id) -> quietline_proto::wire::SendMessage {
    quietline_proto::wire::SendMessage {
        message_id: random_id(),
        envelopes: vec![quietline_proto::wire::OutgoingEnvelope {
            device_id: device,
            ciphertext: opaque(1024),
        }],
    }
}
