//! Test kit: boots real Quietline servers (SQLite in a temporary directory, or a fresh
//! PostgreSQL database when `QUIETLINE_TEST_POSTGRES_URL` is set) on a real TCP port, with
//! a manual clock, and sets up organisations, members and survivor devices through the
//! client SDK over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use quietline_client::{Api, SecureClient};
use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::keys::IdentityKeyPair;
use quietline_proto::crypto::org::OrgKeyPair;
use quietline_proto::wire::{
    Certificate, DeviceKeys, Enroll, Login, OneTimePrekey, Role, SignedPrekey,
};
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
        identity_signature: Bytes(rand_bytes::<64>().to_vec()),
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
    /// The private organisation keys of the organisations this kit created: in real life
    /// they live with each organisation's supervisors, never on the server.
    pub org_keys: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<OrgKeyPair>>>>,
    /// PostgreSQL: the data directory holding only the token key file.
    pub key_dir: Option<tempfile::TempDir>,
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
    /// The device's identity keys (`TestServer::survivor` registers their public halves).
    pub identity: IdentityKeyPair,
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
        challenge_per_second: 1000,
        challenge_burst: 10_000,
        register_per_second: 1000,
        register_burst: 10_000,
        enroll_per_second: 1000,
        enroll_burst: 10_000,
        login_per_second: 1000,
        login_burst: 10_000,
        exit_return_per_second: 1000,
        exit_return_burst: 10_000,
        // Failed logins are answered after this floor; tests check what is answered, not when.
        login_answer_floor_ms: 20,
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
        // PostgreSQL servers keep only their token key file in the data directory; replicas
        // of this server share it (the same config).
        let key_dir = match backend {
            Backend::Postgres => {
                let dir = tempfile::tempdir().unwrap();
                config.data_dir = dir.path().to_owned();
                Some(dir)
            }
            Backend::Sqlite => None,
        };
        tweak(&mut config);
        let mut server = Self::boot(config, backend, data_dir, database_url).await;
        server.key_dir = key_dir;
        server
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
            org_keys: Default::default(),
            key_dir: None,
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

    /// Create an organisation with an organisation key (registered as its supervisors
    /// would), so member devices can be certified.
    pub async fn create_org(&self, code: &str) {
        let id = random_id();
        self.store()
            .create_org(&id.0, code, &format!("{code} hotline"), 0)
            .await
            .unwrap();
        let key = register_org_key(self.store(), id).await;
        self.org_keys
            .lock()
            .unwrap()
            .insert(code.to_owned(), Arc::new(key));
    }

    /// The server's manual clock as a client clock, so certificates and key rotation are
    /// judged at the same time on both sides.
    pub fn client_clock(&self) -> quietline_client::secure::Clock {
        let clock = self.clock.clone();
        Arc::new(move || clock.now())
    }

    /// The private key of an organisation this kit created.
    pub fn org_key(&self, code: &str) -> Arc<OrgKeyPair> {
        self.org_keys
            .lock()
            .unwrap()
            .get(code)
            .cloned()
            .expect("an organisation created by the kit")
    }

    /// Certify a member device of `org` with the organisation key, as a supervisor would
    /// (valid from an hour ago for 30 days), and store the certificate.
    pub async fn certify(&self, org: &str, device: Id) {
        let now = self.clock_now();
        certify_in_store(
            self.store(),
            org,
            &self.org_key(org),
            device,
            now,
            now + 30 * 86_400,
        )
        .await;
    }

    /// A certificate for a member device of `org` signed with the organisation key,
    /// expiring at `not_after` (not stored).
    pub async fn certificate_for(&self, org: &str, device: Id, not_after: i64) -> Certificate {
        certificate_in_store(
            self.store(),
            org,
            &self.org_key(org),
            device,
            self.clock_now(),
            not_after,
        )
        .await
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
        self.certify(org, reg.device_id).await;
        member
    }

    /// Register an encrypting member device for a signed-in member (`login` holds the
    /// member token), certify it, and let it adopt the organisation's key.
    pub async fn secure_member(&self, org: &str, login: &Api) -> SecureClient {
        let mut client = SecureClient::register_member_device(login).await.unwrap();
        client.set_clock(self.client_clock());
        self.certify(org, client.device_id()).await;
        let key = self.org_key(org).public();
        client.pin_org_key(org, &key).unwrap();
        assert!(client.join_org(org).await.unwrap(), "certified");
        client
    }

    /// A new encrypting survivor device that pinned `org`'s key, as a client built for that
    /// organisation would.
    pub async fn secure_survivor(&self, org: &str) -> SecureClient {
        let mut client = SecureClient::register_survivor(&self.api()).await.unwrap();
        client.set_clock(self.client_clock());
        client
            .pin_org_key(org, &self.org_key(org).public())
            .unwrap();
        client
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
        // A real identity, so the survivor can sign (coming back after `hide`).
        let identity = IdentityKeyPair::generate().unwrap();
        let mut keys = fake_keys(20);
        keys.identity_key = Bytes(identity.public().dh_key().to_vec());
        keys.signing_key = Bytes(identity.public().signing_key().to_vec());
        self.register_survivor(keys, identity).await
    }

    /// A survivor registered with `keys`; its `identity` is unrelated to them.
    pub async fn survivor_with_keys(&self, keys: DeviceKeys) -> Survivor {
        self.register_survivor(keys, IdentityKeyPair::generate().unwrap())
            .await
    }

    async fn register_survivor(&self, keys: DeviceKeys, identity: IdentityKeyPair) -> Survivor {
        let api = self.api();
        let reg = api.register_survivor(keys).await.unwrap();
        Survivor {
            device_id: reg.device_id,
            api: api.with_token(reg.tokens.access_token.as_str()),
            refresh_token: reg.tokens.refresh_token,
            exit_token: reg.exit_token.expect("survivors get an exit token"),
            identity,
        }
    }

    /// A fresh, solved proof-of-work.
    pub async fn fresh_pow(&self) -> quietline_proto::wire::PowSolution {
        let challenge = self.api().challenge().await.unwrap();
        quietline_client::solve_challenge(challenge).await.unwrap()
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

/// A value bound into an attacker's SQL statement.
pub enum Arg {
    Blob(Vec<u8>),
    Int(i64),
    Text(String),
    Null,
}

impl TestServer {
    /// Run one SQL statement directly on the server's database, as a malicious or
    /// compromised relay operator could: the malicious-relay tests use this to make the real
    /// server serve swapped keys, ghost devices, forged and replayed envelopes.
    pub async fn tamper(&self, sql: &str, args: Vec<Arg>) -> u64 {
        use sqlx::Connection;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Sqlite => {
                let path = self.data_dir.as_ref().unwrap().path().join("quietline.db");
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let mut q = sqlx::query(sql);
                for a in args {
                    q = match a {
                        Arg::Blob(b) => q.bind(b),
                        Arg::Int(i) => q.bind(i),
                        Arg::Text(t) => q.bind(t),
                        Arg::Null => q.bind(None::<Vec<u8>>),
                    };
                }
                let done = q.execute(&mut conn).await.unwrap().rows_affected();
                conn.close().await.unwrap();
                done
            }
            Backend::Postgres => {
                let url = self.database_url.as_ref().unwrap();
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let mut q = sqlx::query(sql);
                for a in args {
                    q = match a {
                        Arg::Blob(b) => q.bind(b),
                        Arg::Int(i) => q.bind(i),
                        Arg::Text(t) => q.bind(t),
                        Arg::Null => q.bind(None::<Vec<u8>>),
                    };
                }
                let done = q.execute(&mut conn).await.unwrap().rows_affected();
                conn.close().await.unwrap();
                done
            }
        }
    }

    /// Read one blob column of the first row a query returns, as the attacker would.
    pub async fn peek_blob(&self, sql: &str, args: Vec<Vec<u8>>) -> Option<Vec<u8>> {
        use sqlx::Connection;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Sqlite => {
                let path = self.data_dir.as_ref().unwrap().path().join("quietline.db");
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                let mut q = sqlx::query_scalar::<_, Vec<u8>>(sql);
                for a in args {
                    q = q.bind(a);
                }
                q.fetch_optional(&mut conn).await.unwrap()
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(self.database_url.as_ref().unwrap())
                    .await
                    .unwrap();
                let mut q = sqlx::query_scalar::<_, Vec<u8>>(sql);
                for a in args {
                    q = q.bind(a);
                }
                q.fetch_optional(&mut conn).await.unwrap()
            }
        }
    }
}

/// A certificate signed by `key` for the member device `device` as the store holds it, valid
/// from an hour before `now` until `not_after`.
pub async fn certificate_in_store(
    store: &Store,
    org: &str,
    key: &OrgKeyPair,
    device: Id,
    now: i64,
    not_after: i64,
) -> Certificate {
    let (row, _) = store
        .member_device(&device.0)
        .await
        .unwrap()
        .expect("a member device");
    key.certify(&quietline_proto::trust::CertificateBody {
        org: org.to_owned(),
        member_id: Id::from_slice(&row.member_id).unwrap(),
        role: Role::parse(&row.role).unwrap(),
        device_id: device,
        identity_key: row.identity_key.as_slice().try_into().unwrap(),
        signing_key: row.signing_key.as_slice().try_into().unwrap(),
        not_before: now - 3600,
        not_after,
    })
}

/// Certify a member device in `store` with `key`, as a supervisor would.
pub async fn certify_in_store(
    store: &Store,
    org: &str,
    key: &OrgKeyPair,
    device: Id,
    now: i64,
    not_after: i64,
) {
    let cert = certificate_in_store(store, org, key, device, now, not_after).await;
    assert!(
        store
            .set_certificate(
                &device.0,
                cert.body.as_slice(),
                cert.signature.as_slice(),
                not_after
            )
            .await
            .unwrap(),
        "a member device"
    );
}

/// The texts of the messages among `incoming`, in order.
pub fn texts(incoming: &[quietline_client::Incoming]) -> Vec<String> {
    incoming
        .iter()
        .filter_map(|i| match i {
            quietline_client::Incoming::Message(m) => m.text().map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// A new organisation key whose public half is registered for the organisation `org_id` in
/// `store`, as its supervisors would register it.
pub async fn register_org_key(store: &Store, org_id: Id) -> OrgKeyPair {
    let key = OrgKeyPair::generate().unwrap();
    store
        .append_org_key(&org_id.0, 0, key.public().as_bytes(), None, 0)
        .await
        .unwrap();
    key
}

/// The bundle the server would hand out for `device`, without a one-time prekey or
/// certificate and without spending anything (read straight from the store).
pub async fn served_bundle(store: &Store, device: Id) -> quietline_proto::wire::Bundle {
    let row = store.bundle_keys(&device.0).await.unwrap().unwrap();
    quietline_proto::wire::Bundle {
        device_id: device,
        identity_key: Bytes(row.identity_key),
        signing_key: Bytes(row.signing_key),
        identity_signature: Bytes(row.identity_signature),
        signed_prekey: SignedPrekey {
            id: u32::try_from(row.signed_prekey_id).unwrap(),
            public_key: Bytes(row.signed_prekey),
            signature: Bytes(row.signed_prekey_sig),
        },
        one_time_prekey: None,
        certificate: None,
    }
}
