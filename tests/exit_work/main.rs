//! Every call of `POST /v1/exit` runs the same database statements, whatever the mode and
//! whether the token is real, unknown, missing or the body malformed (docs/SAFETY.md: "the
//! server does the same database work in every case").
//!
//! Its own test binary: it installs a process-wide tracing layer that records every
//! statement sqlx runs (target `sqlx::query`), which would mix with other tests' statements
//! in the shared integration binary. Each case runs on a fresh database with no background
//! tasks, and the pool is closed (so every statement has been logged) before reading.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use quietline_server::AppState;
use quietline_server::clock::{Clock, ManualClock};
use quietline_server::store::NewDevice;
use quietline_tests::*;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::layer::SubscriberExt;

static CAPTURED: Mutex<Option<Vec<String>>> = Mutex::new(None);
/// The SQLite and PostgreSQL halves run one at a time: the capture is process-wide.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Default)]
struct Statement {
    summary: String,
    full: String,
}

impl tracing::field::Visit for Statement {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.full = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

struct Capture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut st = Statement::default();
        event.record(&mut st);
        let text = if st.full.trim().is_empty() {
            st.summary
        } else {
            st.full
        };
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(list) = CAPTURED.lock().unwrap().as_mut() {
            list.push(text);
        }
    }
}

fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .expect("the only subscriber in this binary");
    });
}

/// A fresh store with one survivor device in a waiting conversation (nobody assigned,
/// nobody on duty, so no exit tells anyone); the device's exit token.
async fn fresh(backend: Backend) -> (AppState, String, Option<tempfile::TempDir>) {
    let mut config = test_config();
    let dir = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            config.data_dir = dir.path().to_owned();
            Some(dir)
        }
        Backend::Postgres => {
            let url = fresh_postgres_database(&postgres_url().unwrap()).await;
            config.database_url = quietline_server::config::Secret::new(url);
            None
        }
    };
    let state = AppState::new(config, ManualClock::starting_now() as Arc<dyn Clock>)
        .await
        .unwrap();
    let org = random_id().0;
    state
        .store
        .create_org(&org, "hotline", "Hotline", 0)
        .await
        .unwrap();
    let device = random_id().0;
    let token = quietline_server::random::token();
    let hash = quietline_server::random::token_hash(&token);
    let key = [7u8; 32];
    state
        .store
        .create_device(
            &NewDevice {
                id: &device,
                member_id: None,
                identity_key: &key,
                signing_key: &key,
                identity_signature: &[7u8; 64],
                signed_prekey_id: 1,
                signed_prekey: &key,
                signed_prekey_sig: &[7u8; 64],
                exit_token_hash: Some(&hash),
                created_hour: 0,
            },
            &[(1, vec![7u8; 32])],
        )
        .await
        .unwrap();
    state
        .store
        .create_conversation(&random_id().0, &org, &device, false, None, 0)
        .await
        .unwrap();
    (state, token, dir)
}

async fn every_exit_runs_the_same_database_statements(backend: Backend) {
    let _one = ONE_AT_A_TIME.lock().await;
    install();
    let cases: [(&str, &str, &[u8]); 6] = [
        ("hide", "real", br#"{"mode":"hide"}"#),
        ("wipe", "real", br#"{"mode":"wipe"}"#),
        ("duress", "real", br#"{"mode":"duress"}"#),
        ("unknown token", "unknown", br#"{"mode":"wipe"}"#),
        ("no token", "none", br#"{"mode":"wipe"}"#),
        ("malformed body", "real", b"mode=wipe"),
    ];
    let mut seen: Vec<(&str, Vec<String>)> = Vec::new();
    for (label, token, body) in cases {
        let (state, real, _dir) = fresh(backend).await;
        let unknown = quietline_server::random::token();
        let token = match token {
            "real" => Some(real.as_str()),
            "unknown" => Some(unknown.as_str()),
            _ => None,
        };
        *CAPTURED.lock().unwrap() = Some(Vec::new());
        quietline_server::service::exit::exit(&state, token, body)
            .await
            .unwrap();
        let devices_left = state
            .store
            .dump_all_tables()
            .await
            .unwrap()
            .into_iter()
            .filter(|(t, _)| t == "devices")
            .count();
        let wiped = matches!(label, "wipe" | "duress");
        assert_eq!(
            devices_left,
            usize::from(!wiped),
            "{label}: the exit happened"
        );
        state.store.close().await;
        let mut statements = CAPTURED.lock().unwrap().take().unwrap();
        // The dump above is the test's own reading, not the exit's work.
        let dump_at = statements
            .iter()
            .position(|s| s.starts_with("SELECT * FROM orgs"))
            .expect("the dump was captured");
        statements.truncate(dump_at);
        // LISTEN for replica wake-ups runs on its own connection, at its own pace.
        statements.retain(|s| !s.starts_with("LISTEN") && !s.starts_with("UNLISTEN"));
        // Who hears of the exit is one device-list read in every case; which list (the
        // assigned advocate's devices, or every on-duty device while the conversation
        // waits) depends on the mode. Both are the same kind of indexed read.
        for s in &mut statements {
            if s.starts_with("SELECT id FROM devices WHERE member_id = $1")
                || s.starts_with("SELECT d.id FROM devices d JOIN members m ON m.id = d.member_id")
            {
                *s = "<one device-list read>".to_owned();
            }
        }
        seen.push((label, statements));
    }
    let (first_label, first) = &seen[0];
    assert!(
        first.iter().any(|s| s.contains("DELETE FROM devices")),
        "statements were captured: {first:?}"
    );
    assert_eq!(
        first
            .iter()
            .filter(|s| *s == "<one device-list read>")
            .count(),
        1,
        "{first:?}"
    );
    for (label, statements) in &seen[1..] {
        assert_eq!(
            statements, first,
            "{label} ran other statements than {first_label}"
        );
    }
}

quietline_tests::on_both!(every_exit_runs_the_same_database_statements);
