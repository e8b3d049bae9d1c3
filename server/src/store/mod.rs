//! Storage: the only module that speaks SQL (architecture invariant).
//!
//! One [`Store`] over either the embedded SQLite database (WAL, `synchronous=FULL`) or
//! PostgreSQL. Queries are written once, in the SQL both accept (`$n` parameters, integer
//! flags, `ON CONFLICT`, `RETURNING`), and [`with_db!`] runs the same text on whichever pool
//! is configured. SQLite writes go through a single writer connection, so they never fail
//! with `SQLITE_BUSY`, and reads use the same connection so they always see the latest
//! commit. Nothing here decodes an envelope.

mod accounts;
mod conversations;
mod devices;
mod durability;
mod envelopes;
mod exit;
mod push;
mod stream_tickets;
mod trust;

pub use accounts::*;
pub use conversations::*;
pub use devices::*;
pub use envelopes::*;
pub use exit::*;
pub use push::*;
pub use stream_tickets::*;
pub use trust::*;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write.
    #[error("conflict")]
    Conflict,
    /// A recipient's queue is full.
    #[error("quota exceeded")]
    Quota,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The database does not report the durability settings accepted messages rely on.
    #[error("the database is not durable: {0}")]
    NotDurable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Map a unique-constraint violation to [`StoreError::Conflict`]; the one place that knows
/// how each database reports it.
pub(crate) fn on_conflict(e: sqlx::Error) -> StoreError {
    match e.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Db(e),
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// Run `$body` with `$pool` bound to the configured database's read or write pool.
macro_rules! with_db {
    ($store:expr, $kind:ident, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { $kind: $pool, .. } => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
}

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Store {
    /// Open the SQLite database `quietline.db` in `data_dir`, creating both if missing.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("quietline.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an envelope answered "accepted" survives power loss (invariant 5).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted rows and freed pages are overwritten with zeros, so a wiped envelope's
            // bytes do not linger in free space of the database file.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        SQLITE_MIGRATIONS.run(&write).await?;
        // Reads share the writer connection. A separate pool of read-only connections was
        // measured to return stale snapshots right after a commit (a claim not yet visible
        // to the next request), and every SQLite statement here takes microseconds.
        let store = Store {
            db: Db::Sqlite {
                read: write.clone(),
                write,
            },
        };
        store.check_durability().await?;
        Ok(store)
    }

    /// Connect to PostgreSQL and apply migrations.
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Store> {
        let options = PgConnectOptions::from_str(url)?
            // Durability of accepted envelopes does not depend on the server's default.
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        let store = Store {
            db: Db::Postgres(pool),
        };
        store.check_durability().await?;
        Ok(store)
    }

    /// A statement that, run in a transaction with a device id as `$1`, holds that device's
    /// row until the transaction ends, so a count of the device's rows followed by an insert
    /// cannot race another transaction doing the same (quota, prekey cap). PostgreSQL: a row
    /// lock. SQLite: every write transaction already runs alone on the one writer connection.
    pub(crate) fn lock_device_sql(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "SELECT 1 FROM devices WHERE id = $1",
            Db::Postgres(_) => "SELECT 1 FROM devices WHERE id = $1 FOR UPDATE",
        }
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL pool, for LISTEN/NOTIFY.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(p) => Some(p),
            Db::Sqlite { .. } => None,
        }
    }

    /// Readiness: the database answers and every migration this build knows is applied.
    pub async fn ready(&self) -> Result<bool> {
        let expected = match self.db {
            Db::Sqlite { .. } => SQLITE_MIGRATIONS.iter().count(),
            Db::Postgres(_) => POSTGRES_MIGRATIONS.iter().count(),
        } as i64;
        let applied: i64 = with_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(pool)
                .await?
        });
        Ok(applied >= expected)
    }

    /// Remove and return a secret that older versions kept in the `server_secrets` table
    /// (the token signing key), so it can be moved out of the database.
    pub async fn take_legacy_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(with_db!(self, write, |pool| {
            sqlx::query_scalar("DELETE FROM server_secrets WHERE name = $1 RETURNING value")
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Put a legacy secret back (when it could not be written elsewhere).
    pub async fn restore_legacy_secret(&self, name: &str, value: &[u8]) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// After deleting survivor data: on SQLite, copy the write-ahead log into the database
    /// file (where `secure_delete` has zeroed the deleted cells) and truncate the log, so the
    /// old page images holding the deleted bytes leave the log file at once. Failures are
    /// logged; the data is deleted either way and the next checkpoint catches up.
    pub async fn after_purge(&self) {
        if let Db::Sqlite { write, .. } = &self.db
            && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(write)
                .await
        {
            tracing::warn!(error = %e, "checkpoint after a purge failed");
        }
    }

    /// Online backup of the SQLite database to `dest` (`VACUUM INTO`).
    pub async fn backup_sqlite(&self, dest: &Path) -> Result<bool> {
        match &self.db {
            Db::Sqlite { write, .. } => {
                sqlx::query("VACUUM INTO $1")
                    .bind(dest.to_string_lossy().into_owned())
                    .execute(write)
                    .await?;
                Ok(true)
            }
            Db::Postgres(_) => Ok(false),
        }
    }

    /// Every row of every table, rendered as text: for tests that prove what is (not) stored.
    pub async fn dump_all_tables(&self) -> Result<Vec<(String, String)>> {
        const TABLES: &[&str] = &[
            "orgs",
            "members",
            "devices",
            "one_time_prekeys",
            "refresh_tokens",
            "challenges",
            "conversations",
            "envelopes",
            "events",
            "push_registrations",
            "org_keys",
            "server_secrets",
            "stream_tickets",
        ];
        let mut out = Vec::new();
        for table in TABLES {
            let sql = format!("SELECT * FROM {table}");
            let rows = with_db!(self, read, |pool| {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(render_row).collect::<Vec<_>>()
            });
            for row in rows {
                out.push((table.to_string(), row));
            }
        }
        Ok(out)
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Render a row as `col=value` pairs; blobs as hex and as base64url so either encoding of a
/// secret can be searched for.
fn render_row<R: sqlx::Row>(row: &R) -> String
where
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    use sqlx::Column;
    let mut out = String::new();
    for (i, col) in row.columns().iter().enumerate() {
        let value = if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
            s
        } else if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(i) {
            n.to_string()
        } else if let Ok(Some(b)) = row.try_get::<Option<Vec<u8>>, _>(i) {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("{hex} {}", quietline_proto::b64::encode(&b))
        } else {
            String::from("NULL")
        };
        out.push_str(&format!("{}={} ", col.name(), value));
    }
    out
}

/// Convert a stored blob to an [`quietline_proto::Id`]; a wrong length means a corrupt row.
pub(crate) fn to_id(bytes: &[u8]) -> Result<quietline_proto::Id> {
    quietline_proto::Id::from_slice(bytes)
        .ok_or_else(|| StoreError::Db(sqlx::Error::Decode("stored id has the wrong length".into())))
}

impl Store {
    /// PostgreSQL: publish wake-ups to the other replicas, all in one statement (so the cost
    /// does not grow with the count; quick exit relies on that). SQLite: a single process,
    /// nothing to do.
    pub async fn notify_replicas(&self, payloads: &[String]) -> Result<()> {
        if let Db::Postgres(pool) = &self.db
            && !payloads.is_empty()
        {
            sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(crate::hub::PG_CHANNEL)
                .bind(payloads)
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}
