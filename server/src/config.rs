//! Configuration: defaults < TOML file < `QUIETLINE_*` environment variables (docs/OPERATIONS.md).
//!
//! Every field has a doc comment; `quietline config example` prints them with the defaults,
//! and a test checks the committed `deploy/quietline.example.toml` is current. A variable
//! `QUIETLINE_<KEY>_FILE` reads the value from a file, for secrets mounted by the orchestrator.
//! Secrets are [`Secret`]s, so printing the config (done at start) redacts them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};

/// A secret string: `Debug` and `Serialize` print `***`; the bytes are zeroed on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(zeroize::Zeroizing::new(s.into()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

macro_rules! config_struct {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr ; )*) => {
        /// Server configuration. See `quietline config example`.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $name: $ty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $name: $default, )* }
            }
        }

        impl Config {
            /// Every key with its doc comment, in declaration order.
            pub const FIELDS: &'static [(&'static str, &'static str)] = &[
                $( (stringify!($name), concat!($($doc, "\n"),+)) ),*
            ];
        }
    };
}

config_struct! {
    /// Address the API listens on. Put a TLS proxy in front of it.
    listen: String = "127.0.0.1:8080".into();
    /// Address of the admin listener serving `/metrics` (Prometheus). Loopback by default;
    /// an empty string disables it.
    admin_listen: String = "127.0.0.1:9090".into();
    /// Directory for the embedded SQLite database (created if missing).
    data_dir: PathBuf = PathBuf::from("./data");
    /// `postgres://...` to use PostgreSQL instead of the embedded SQLite database.
    /// Empty means SQLite in `data_dir`.
    database_url: Secret = Secret::default();
    /// Maximum PostgreSQL connections in the pool (SQLite uses one connection).
    database_max_connections: u32 = 16;
    /// Every API route is served under this prefix (for example `/x7k2`), so the host and
    /// path reveal nothing to a network observer. Empty means no prefix.
    route_prefix: String = String::new();
    /// The advocate dashboard is served at `<route_prefix>/<web_path>/` (one path segment of
    /// letters, digits, `-`, `_` or `.`). Anyone who knows the path can load the page (it
    /// holds no data); choose an unguessable one where the host must not be recognised.
    /// Empty serves no dashboard.
    web_path: String = "app".into();
    /// Secret for signing access tokens (at least 32 bytes). Empty means: generate one on
    /// first start and keep it in the file `jwt_secret` (mode 0600) in `data_dir`, never in
    /// the database, so a database backup cannot forge tokens. PostgreSQL replicas must share
    /// one secret: set it here (or with `QUIETLINE_JWT_SECRET_FILE`), otherwise each replica
    /// uses its own file and warns at start.
    jwt_secret: Secret = Secret::default();
    /// Previous token secrets still accepted for verification during a rotation.
    jwt_previous_secrets: Vec<Secret> = Vec::new();
    /// Lifetime of access tokens, in seconds.
    access_token_ttl_secs: u64 = 300;
    /// Lifetime of refresh tokens, in seconds.
    refresh_token_ttl_secs: u64 = 30 * 24 * 3600;
    /// Proof-of-work difficulty for anonymous registration, in leading zero bits.
    pow_bits: u8 = 18;
    /// Lifetime of a proof-of-work challenge, in seconds.
    challenge_ttl_secs: u64 = 300;
    /// Challenges per minute (per replica) before the proof-of-work difficulty rises by one
    /// bit for every doubling of the rate.
    pow_adaptive_per_minute: u32 = 120;
    /// Most bits the adaptive difficulty adds to `pow_bits`.
    pow_max_extra_bits: u8 = 6;
    /// Requests per second one device or member may make on average (in-memory, per replica,
    /// keyed by the authenticated subject, never by IP address).
    rate_limit_per_second: u32 = 20;
    /// Burst size of that rate limit.
    rate_limit_burst: u32 = 200;
    /// Lifetime of an enrolment invitation, in seconds.
    invite_ttl_secs: u64 = 7 * 24 * 3600;
    /// Lifetime of events (workflow and safety notices) not yet fetched, in seconds.
    /// Undelivered envelopes live as long as their organisation sets (7 days by default).
    event_ttl_secs: u64 = 7 * 24 * 3600;
    /// Upper bound an organisation may set for undelivered envelopes, in seconds.
    max_envelope_ttl_secs: u64 = 30 * 24 * 3600;
    /// Upper bound an organisation may set for idle conversations, in seconds.
    max_idle_ttl_secs: u64 = 90 * 24 * 3600;
    /// Most undelivered envelopes one device may hold; senders get `quota_exceeded` beyond it.
    device_quota: u32 = 5000;
    /// Most envelopes in one request (one per recipient device).
    max_envelopes_per_message: u32 = 64;
    /// Largest request body, in bytes.
    max_body_bytes: usize = 2 * 1024 * 1024;
    /// Requests taking longer than this many seconds are answered with `timeout`.
    request_timeout_secs: u64 = 30;
    /// Seconds between runs of the retention sweeper.
    sweep_interval_secs: u64 = 60;
    /// Lifetime of a survivor device that has no conversation, in seconds. A device that
    /// registers and never opens a conversation (or whose conversation was purged before it
    /// opened another) is deleted with its keys and tokens once it is this old.
    orphan_device_ttl_secs: u64 = 24 * 3600;
    /// Member devices (browsers, apps) not seen for this many seconds are removed by the
    /// sweeper, and messages are encrypted only to devices seen within this time.
    member_device_ttl_secs: u64 = 30 * 24 * 3600;
    /// Serve `/healthz`, `/readyz` and `/v1/openapi.json` on the admin listener instead of
    /// under `route_prefix` on the API listener. Needs `admin_listen`.
    health_on_admin: bool = false;
    /// Login attempts one member account allows per `login_window_secs`. Each attempt is
    /// counted before its password is checked (so concurrent guesses cannot exceed it); a
    /// successful login resets the count. Beyond it every attempt on that account gets the
    /// same `unauthorized` answer as a wrong password until the window ends.
    login_failures_before_backoff: u32 = 5;
    /// Length of a member's login-attempt window, in seconds. This bounds how long anyone
    /// who knows a handle can lock that member out with wrong guesses: the window starts at
    /// the first attempt and attempts made while it is full do not extend it.
    login_window_secs: u64 = 300;
    /// No failed login is answered sooner than this many milliseconds after it arrived, so
    /// an unknown handle, a wrong password, a wrong code and a full window look alike. Keep
    /// it above the time one argon2 verification takes on this machine.
    login_answer_floor_ms: u64 = 250;
    /// Most argon2 password hashes or verifications running at once (each holds about
    /// 19 MiB). Further logins and enrolments wait their turn; this bounds their memory.
    argon2_concurrency: u32 = 2;
    /// Most logins and enrolments waiting for an argon2 slot; beyond it they are answered
    /// `rate_limited` at once.
    argon2_queue: u32 = 32;
    /// Threads in the blocking pool (argon2 and other blocking work), per process.
    blocking_threads: u32 = 8;
    /// Proof-of-work challenges handed out per second on average, for everyone together
    /// (`POST /v1/devices/challenge`). Beyond it callers get `rate_limited`. Like every
    /// limit below it is global and in memory, keyed by nothing that identifies a caller.
    challenge_per_second: u32 = 20;
    /// Burst size of the challenge limit.
    challenge_burst: u32 = 100;
    /// Anonymous device registrations per second on average, for everyone together.
    register_per_second: u32 = 10;
    /// Burst size of the registration limit.
    register_burst: u32 = 50;
    /// Enrolments (`POST /v1/auth/enroll`) per second on average, for everyone together.
    enroll_per_second: u32 = 2;
    /// Burst size of the enrolment limit.
    enroll_burst: u32 = 10;
    /// Logins per second on average, for everyone together. A flood is answered
    /// `rate_limited` whatever handle it names.
    login_per_second: u32 = 5;
    /// Burst size of the login limit.
    login_burst: u32 = 20;
    /// Returns after `hide` (`POST /v1/exit/return`) per second on average, for everyone.
    exit_return_per_second: u32 = 5;
    /// Burst size of the return limit.
    exit_return_burst: u32 = 20;
    /// Quick exits (`POST /v1/exit`) doing their work at the same time. Further exits queue
    /// and get the same answer when their turn comes, so the answer stays uniform.
    exit_concurrency: u32 = 4;
    /// Most quick exits waiting in that queue; beyond it an exit is answered `rate_limited`
    /// before its token is looked at (so that answer says nothing about the token), and the
    /// client tries again.
    exit_queue: u32 = 256;
    /// Most open connections to the API listener; further connections wait to be accepted.
    max_connections: u32 = 20_000;
    /// Seconds a client may take to send a request's headers before the connection is
    /// closed (slow-header attacks).
    header_read_timeout_secs: u64 = 10;
    /// Most live streams (`GET /v1/stream`) one device may hold on one replica; the next
    /// is refused with `rate_limited`.
    streams_per_device: u32 = 4;
    /// Seconds between re-checks of a live stream's caller against the database, so a
    /// revocation made elsewhere (the admin command, another replica) ends the stream.
    /// The caller is also checked on every wake-up, and the stream ends when its access
    /// token expires.
    stream_recheck_secs: u64 = 30;
    /// Frames per second a client may send on one stream on average; a client that sends
    /// faster gets a `rate_limited` error frame and the stream is closed.
    stream_frames_per_second: u32 = 20;
    /// Burst size of the stream frame limit.
    stream_frames_burst: u32 = 100;
    /// Largest WebSocket frame and message a client may send on a stream, in bytes.
    stream_max_message_bytes: usize = 64 * 1024;
    /// Most undelivered envelopes one recipient device may hold from one conversation that
    /// is still waiting in the queue, so one waiting survivor cannot fill every on-duty
    /// advocate's quota. Assigned conversations are bounded by `device_quota` only.
    waiting_quota_per_recipient: u32 = 50;
    /// Most undelivered events (workflow and safety notices) one device may hold; further
    /// events for it are not stored. A `queue_changed` notice already pending is not stored
    /// twice.
    max_events_per_device: u32 = 1000;
    /// Least number of seconds between two wake signals to one device. A wake is content-free
    /// and sent only inside the device's safe hours; this bounds how often a phone can buzz.
    /// The limit is stored rounded up to the hour (no stored time gives the wake's minute
    /// back), so the next wake also waits for the following full hour.
    push_min_interval_secs: u64 = 900;
    /// Accept push endpoints over plain `http://` and on loopback or private addresses.
    /// For tests and development only: leave it off in production, where every endpoint must
    /// be a public HTTPS push gateway.
    push_allow_insecure: bool = false;
    /// Log level of the server (`error`, `warn`, `info`, `debug`, `trace`); libraries stay at
    /// `warn`. A full tracing directive is also taken. Connection logs (peer addresses) are
    /// always off.
    log_level: String = "info".into();
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("cannot read {var}: {source}")]
    SecretFile { var: String, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Load from an optional TOML file and the given environment (a list of key/value pairs,
    /// so tests need not touch the process environment).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        // The default table carries "***" for secrets; put the real defaults back.
        table.insert("database_url".into(), toml::Value::String(String::new()));
        table.insert("jwt_secret".into(), toml::Value::String(String::new()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let file_table: toml::Table =
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?;
            for (k, v) in file_table {
                table.insert(k, v);
            }
        }
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("QUIETLINE_") else {
                continue;
            };
            let (key, value) = match rest.strip_suffix("_FILE") {
                Some(key) if Self::has_key(&key.to_ascii_lowercase()) => {
                    let text = std::fs::read_to_string(&value).map_err(|source| {
                        ConfigError::SecretFile {
                            var: var.clone(),
                            source,
                        }
                    })?;
                    (
                        key.to_ascii_lowercase(),
                        text.trim_end_matches(['\n', '\r']).to_owned(),
                    )
                }
                _ => (rest.to_ascii_lowercase(), value),
            };
            if !Self::has_key(&key) {
                continue; // QUIETLINE_CONFIG, QUIETLINE_TEST_* and the like
            }
            let typed = match table.get(&key) {
                Some(toml::Value::String(_)) => toml::Value::String(value),
                Some(toml::Value::Array(_)) => toml::Value::Array(
                    value
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                ),
                _ => parse_scalar(&value).ok_or_else(|| {
                    ConfigError::Invalid(format!("{var} is not a valid value for `{key}`"))
                })?,
            };
            table.insert(key, typed);
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn has_key(key: &str) -> bool {
        Self::FIELDS.iter().any(|(k, _)| *k == key)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !self.route_prefix.is_empty()
            && (!self.route_prefix.starts_with('/')
                || self.route_prefix.ends_with('/')
                || self.route_prefix.contains("//"))
        {
            return bad("route_prefix must start with '/' and not end with '/'");
        }
        if !self.web_path.is_empty()
            && (self.web_path.len() > 64
                || !self
                    .web_path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                || self.web_path.starts_with('.')
                || ["v1", "healthz", "readyz"].contains(&self.web_path.as_str()))
        {
            return bad("web_path must be one path segment that is no API route");
        }
        if !self.jwt_secret.expose().is_empty() && self.jwt_secret.expose().len() < 32 {
            return bad("jwt_secret must be at least 32 bytes");
        }
        if self.pow_bits > quietline_proto::pow::MAX_BITS {
            return bad("pow_bits is above 32");
        }
        if self.access_token_ttl_secs == 0 || self.refresh_token_ttl_secs == 0 {
            return bad("token lifetimes must be positive");
        }
        if self.max_body_bytes < 64 * 1024 {
            return bad("max_body_bytes must be at least 65536");
        }
        if self.sweep_interval_secs == 0
            || self.request_timeout_secs == 0
            || self.push_min_interval_secs == 0
            || self.login_window_secs == 0
            || self.header_read_timeout_secs == 0
            || self.stream_recheck_secs == 0
            || self.orphan_device_ttl_secs == 0
            || self.member_device_ttl_secs == 0
        {
            return bad("intervals must be positive");
        }
        if self.argon2_concurrency == 0
            || self.blocking_threads == 0
            || self.exit_concurrency == 0
            || self.max_connections == 0
            || self.streams_per_device == 0
        {
            return bad("concurrency limits must be positive");
        }
        if self.stream_max_message_bytes < 1024 {
            return bad("stream_max_message_bytes must be at least 1024");
        }
        if self.health_on_admin && self.admin_listen.is_empty() {
            return bad("health_on_admin needs admin_listen");
        }
        Ok(())
    }

    /// The example config: every key, commented with its doc, set to its default.
    pub fn example() -> String {
        let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
        let mut out = String::from(
            "# Quietline server configuration.\n\
             # Precedence: defaults < this file (QUIETLINE_CONFIG=path) < QUIETLINE_<KEY> variables.\n\
             # QUIETLINE_<KEY>_FILE=path reads a value from a file (for secrets).\n\
             # Generated by `quietline config example`.\n",
        );
        for (key, doc) in Self::FIELDS {
            out.push('\n');
            for line in doc.lines() {
                out.push('#');
                if !line.is_empty() && !line.starts_with(' ') {
                    out.push(' ');
                }
                out.push_str(line);
                out.push('\n');
            }
            let value = match defaults.get(*key) {
                Some(toml::Value::String(s)) if s == "***" => toml::Value::String(String::new()),
                Some(v) => v.clone(),
                None => toml::Value::String(String::new()),
            };
            out.push_str(&format!("# env: QUIETLINE_{}\n", key.to_ascii_uppercase()));
            out.push_str(&format!("{key} = {value}\n"));
        }
        out
    }

    /// A one-line, redacted summary for the start-up log.
    pub fn redacted(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn uses_postgres(&self) -> bool {
        let url = self.database_url.expose();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }
}

fn parse_scalar(value: &str) -> Option<toml::Value> {
    let doc: toml::Table = toml::from_str(&format!("v = {value}")).ok()?;
    doc.get("v").cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\npow_bits = 4\n").unwrap();
        let c = Config::load(Some(&file), env(&[("QUIETLINE_POW_BITS", "7")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.pow_bits, 7);
        assert_eq!(c.device_quota, 5000);
    }

    #[test]
    fn file_suffix_reads_secrets_and_debug_redacts_them() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
        let c = Config::load(
            None,
            env(&[("QUIETLINE_JWT_SECRET_FILE", secret.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.jwt_secret.expose(), "0123456789abcdef0123456789abcdef");
        assert!(!format!("{c:?}").contains("0123456789"));
        assert!(!c.redacted().contains("0123456789"));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::load(None, env(&[("QUIETLINE_POW_BITS", "many")])).is_err());
        assert!(Config::load(None, env(&[("QUIETLINE_ROUTE_PREFIX", "x/")])).is_err());
        assert!(Config::load(None, env(&[("QUIETLINE_JWT_SECRET", "short")])).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        assert!(Config::load(Some(&file), env(&[])).is_err());
    }

    #[test]
    fn web_path_must_be_one_segment_that_is_no_api_route() {
        for bad in [
            "a/b", "/app", "app/", "..", ".hidden", "v1", "healthz", "sp ace",
        ] {
            let r = Config::load(None, env(&[("QUIETLINE_WEB_PATH", bad)]));
            assert!(r.is_err(), "{bad:?} accepted");
        }
        for good in ["", "app", "desk-7f3k", "a.b_c"] {
            let c = Config::load(None, env(&[("QUIETLINE_WEB_PATH", good)])).unwrap();
            assert_eq!(c.web_path, good);
        }
    }

    #[test]
    fn example_parses_back_to_the_defaults_and_names_every_key() {
        let example = Config::example();
        for (key, _) in Config::FIELDS {
            assert!(example.contains(&format!("\n{key} = ")), "{key} missing");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(&file, &example).unwrap();
        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(c.listen, Config::default().listen);
    }

    #[test]
    fn committed_example_config_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/quietline.example.toml");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed,
            Config::example(),
            "run `cargo run -p quietline-server -- config example > deploy/quietline.example.toml`"
        );
    }
}
