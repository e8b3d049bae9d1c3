//! What the schema itself promises (docs/SAFETY.md): envelopes have no sender column, no
//! table has a column for an address, agent, phone, e-mail or sender; and the durability
//! settings an "accepted" answer relies on are in force on the live connections.

use quietline_tests::*;
use std::time::Duration;

/// Every table's columns as the database reports them: `(table, column)`.
async fn columns(s: &TestServer) -> Vec<(String, String)> {
    use sqlx::{ConnectOptions, Connection};
    match s.backend {
        Backend::Sqlite => {
            let file = s.data_dir.as_ref().unwrap().path().join("quietline.db");
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(file)
                .read_only(true)
                .busy_timeout(Duration::from_secs(10))
                .connect()
                .await
                .unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let mut out = Vec::new();
            for t in tables {
                let cols: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(&t)
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                out.extend(cols.into_iter().map(|c| (t.clone(), c)));
            }
            out
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(s.database_url.as_ref().unwrap())
                .await
                .unwrap();
            sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        }
    }
}

async fn envelopes_have_no_sender_column(backend: Backend) {
    let s = TestServer::start(backend).await;
    let all = columns(&s).await;
    let mut envelopes: Vec<&str> = all
        .iter()
        .filter(|(t, _)| t == "envelopes")
        .map(|(_, c)| c.as_str())
        .collect();
    envelopes.sort_unstable();
    // Exactly these: a new column must be argued for here and in docs/SAFETY.md.
    assert_eq!(
        envelopes,
        [
            "ciphertext",
            "conversation_id",
            "expires_at",
            "id",
            "recipient",
            "seq"
        ]
    );
    assert!(
        all.iter().any(|(t, _)| t == "devices"),
        "every table is listed"
    );
    for (table, column) in &all {
        let c = column.to_lowercase();
        for banned in [
            "sender", "from", "author", "ip", "addr", "agent", "phone", "email", "e_mail",
        ] {
            let hit = c == banned
                || c.starts_with(&format!("{banned}_"))
                || c.ends_with(&format!("_{banned}"))
                || c.contains(&format!("_{banned}_"));
            assert!(!hit, "{table}.{column} looks like {banned}");
        }
    }
    s.stop().await;
}

/// The settings are read back from the server's own pool, not from the options it sets.
async fn durable_settings_are_in_force_on_the_live_pool(backend: Backend) {
    let s = TestServer::start(backend).await;
    let settings = s.store().durability_settings().await.unwrap();
    let get = |name: &str| {
        settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not reported"))
    };
    match backend {
        Backend::Sqlite => {
            assert_eq!(get("synchronous"), "2", "synchronous=FULL");
            assert_eq!(get("journal_mode"), "wal");
        }
        Backend::Postgres => {
            assert_eq!(get("synchronous_commit"), "on");
            assert_eq!(get("fsync"), "on");
        }
    }
    s.store().check_durability().await.unwrap();
    s.stop().await;
}

quietline_tests::on_both!(
    envelopes_have_no_sender_column,
    durable_settings_are_in_force_on_the_live_pool,
);
