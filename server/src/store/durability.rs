//! The durability settings the relay's promise rests on ("accepted" means on disk), read
//! back from the live connections at start-up: SQLite in WAL with `synchronous=FULL`,
//! PostgreSQL with `synchronous_commit=on` and `fsync=on`. A store that reports anything
//! else refuses to open.

use super::{Db, Result, Store, StoreError};

/// What each setting must read, per database.
const SQLITE_EXPECTED: &[(&str, &str)] = &[("synchronous", "2"), ("journal_mode", "wal")];
const POSTGRES_EXPECTED: &[(&str, &str)] = &[("synchronous_commit", "on"), ("fsync", "on")];

impl Store {
    /// The durability settings as the database reports them on a pooled connection.
    pub async fn durability_settings(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        match &self.db {
            Db::Sqlite { write, .. } => {
                // The writer is the one connection that commits.
                let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(write)
                    .await?;
                let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(write)
                    .await?;
                out.push(("synchronous".to_owned(), synchronous.to_string()));
                out.push(("journal_mode".to_owned(), journal.to_lowercase()));
            }
            Db::Postgres(pool) => {
                for name in ["synchronous_commit", "fsync"] {
                    let value: String = sqlx::query_scalar("SELECT current_setting($1)")
                        .bind(name)
                        .fetch_one(pool)
                        .await?;
                    out.push((name.to_owned(), value));
                }
            }
        }
        Ok(out)
    }

    /// Refuse to run unless every durability setting reads as expected.
    pub async fn check_durability(&self) -> Result<()> {
        let expected = match self.db {
            Db::Sqlite { .. } => SQLITE_EXPECTED,
            Db::Postgres(_) => POSTGRES_EXPECTED,
        };
        check_settings(expected, &self.durability_settings().await?)
    }
}

/// `Ok` when every expected setting is present in `actual` with its expected value.
fn check_settings(expected: &[(&str, &str)], actual: &[(String, String)]) -> Result<()> {
    for (name, value) in expected {
        let got = actual
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        if got != Some(*value) {
            return Err(StoreError::NotDurable(format!(
                "{name} is {}, must be {value}",
                got.unwrap_or("unset")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_durable_settings_pass() {
        assert!(check_settings(SQLITE_EXPECTED, &settings(SQLITE_EXPECTED)).is_ok());
        assert!(check_settings(POSTGRES_EXPECTED, &settings(POSTGRES_EXPECTED)).is_ok());
        // synchronous=NORMAL (1) loses the last commits on power failure.
        let normal = settings(&[("synchronous", "1"), ("journal_mode", "wal")]);
        assert!(matches!(
            check_settings(SQLITE_EXPECTED, &normal),
            Err(StoreError::NotDurable(_))
        ));
        let off = settings(&[("synchronous_commit", "off"), ("fsync", "on")]);
        assert!(check_settings(POSTGRES_EXPECTED, &off).is_err());
        let local = settings(&[("synchronous_commit", "local"), ("fsync", "on")]);
        assert!(check_settings(POSTGRES_EXPECTED, &local).is_err());
        let no_fsync = settings(&[("synchronous_commit", "on"), ("fsync", "off")]);
        assert!(check_settings(POSTGRES_EXPECTED, &no_fsync).is_err());
        assert!(check_settings(POSTGRES_EXPECTED, &[]).is_err());
    }
}
