//! Quick exit (docs/SAFETY.md): find a device by its exit token, hide it, wipe it, bring it back.
//!
//! [`Store::quick_exit`] runs one fixed list of statements for every mode and for unknown
//! tokens; only the ids bound to them differ (a decoy id that matches no row stands in for
//! the work a request does not do). That keeps the database work, and so the answer's
//! timing, the same whatever the mode and whether or not the token was valid.

use super::{NewEvent, Result, Store, to_id, with_db};
use quietline_proto::Id;

/// The ids one [`Store::quick_exit`] acts on. Pass a fresh random id (matching nothing) for
/// each part the request must not do.
#[derive(Debug, Clone, Copy)]
pub struct ExitTargets<'a> {
    /// Device to hide: epoch bumped, `hidden = 1`, refresh tokens deleted.
    pub hide: &'a [u8],
    /// Device to wipe with its conversation and every row that names either.
    pub wipe: &'a [u8],
    /// A fresh random 32-byte value, written and deleted again in the transaction.
    pub scratch: &'a [u8],
}

impl Store {
    /// The survivor device holding the exit token with this hash, if any.
    pub async fn device_by_exit_token(&self, exit_hash: &[u8]) -> Result<Option<Id>> {
        let id: Option<Vec<u8>> = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM devices WHERE exit_token_hash = $1 AND member_id IS NULL",
            )
            .bind(exit_hash)
            .fetch_optional(pool)
            .await?
        });
        id.map(|i| to_id(&i)).transpose()
    }

    /// Hide and/or wipe, and store `events`, in ONE transaction (docs/THREAT_MODEL.md, invariant 4):
    /// either the device is gone (or hidden) and the advocate is told, or nothing happened.
    ///
    /// The statement list is the same on every call. The wipe deletes explicitly rather than
    /// trusting `ON DELETE CASCADE`, because events name conversations without a foreign key.
    /// The scratch row at the end makes every commit write and flush, so an exit that
    /// matched nothing costs a durable commit just like one that deleted rows.
    pub async fn quick_exit(
        &self,
        t: ExitTargets<'_>,
        events: &[NewEvent],
        events_expire_at: i64,
        max_events_per_device: i64,
    ) -> Result<()> {
        const CONVERSATION_OF: &str = "(SELECT id FROM conversations WHERE survivor_device = $1)";
        let wipe: [String; 8] = [
            format!("DELETE FROM envelopes WHERE conversation_id IN {CONVERSATION_OF}"),
            format!("DELETE FROM events WHERE conversation_id IN {CONVERSATION_OF}"),
            "DELETE FROM envelopes WHERE recipient = $1".into(),
            "DELETE FROM events WHERE recipient = $1".into(),
            "DELETE FROM one_time_prekeys WHERE device_id = $1".into(),
            "DELETE FROM refresh_tokens WHERE device_id = $1".into(),
            "DELETE FROM conversations WHERE survivor_device = $1".into(),
            "DELETE FROM devices WHERE id = $1 AND member_id IS NULL".into(),
        ];
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE devices SET hidden = 1, token_epoch = token_epoch + 1 \
                 WHERE id = $1 AND member_id IS NULL",
            )
            .bind(t.hide)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM refresh_tokens WHERE device_id = $1")
                .bind(t.hide)
                .execute(&mut *tx)
                .await?;
            for sql in &wipe {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(t.wipe)
                    .execute(&mut *tx)
                    .await?;
            }
            for e in events {
                sqlx::query(super::envelopes::INSERT_EVENT)
                    .bind(&e.recipient)
                    .bind(&e.id)
                    .bind(e.kind)
                    .bind(&e.conversation_id)
                    .bind(events_expire_at)
                    .bind(max_events_per_device)
                    .bind(i64::from(e.coalesce))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO challenges (challenge, bits, expires_at) VALUES ($1, 0, 0)")
                .bind(t.scratch)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM challenges WHERE challenge = $1")
                .bind(t.scratch)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The survivor device holding the exit token with this hash, with its registered
    /// Ed25519 signing key and whether it is hidden.
    pub async fn exit_device_keys(&self, exit_hash: &[u8]) -> Result<Option<(Id, Vec<u8>, bool)>> {
        let row: Option<(Vec<u8>, Vec<u8>, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, signing_key, hidden FROM devices \
                 WHERE exit_token_hash = $1 AND member_id IS NULL",
            )
            .bind(exit_hash)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(id, key, hidden)| Ok((to_id(&id)?, key, hidden != 0)))
            .transpose()
    }

    /// Bring a hidden survivor device back: un-hide it and replace its exit token hash with
    /// `new_exit_hash`, only if it still holds `old_exit_hash` (so two returns racing with
    /// one token cannot both win). Returns its token epoch, or `None` if nothing matched.
    pub async fn return_device(
        &self,
        device: &[u8],
        old_exit_hash: &[u8],
        new_exit_hash: &[u8],
    ) -> Result<Option<i64>> {
        Ok(with_db!(self, write, |pool| {
            sqlx::query_scalar(
                "UPDATE devices SET hidden = 0, exit_token_hash = $1 \
                 WHERE id = $2 AND exit_token_hash = $3 AND hidden = 1 AND member_id IS NULL \
                 RETURNING token_epoch",
            )
            .bind(new_exit_hash)
            .bind(device)
            .bind(old_exit_hash)
            .fetch_optional(pool)
            .await?
        }))
    }
}
