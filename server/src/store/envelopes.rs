//! Envelopes and events: stored until acknowledged or expired, then deleted.

use super::{Result, Store, StoreError, with_db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnvelopeRow {
    pub seq: i64,
    pub id: Vec<u8>,
    pub conversation_id: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub expires_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub id: Vec<u8>,
    pub kind: String,
    pub conversation_id: Option<Vec<u8>>,
}

/// One event to store for one device.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub recipient: Vec<u8>,
    pub id: Vec<u8>,
    pub kind: &'static str,
    pub conversation_id: Option<Vec<u8>>,
    /// Not stored when the device already holds an event of the same kind (a notice that
    /// only says "look again", like `queue_changed`).
    pub coalesce: bool,
}

/// The one statement that stores an event: nothing when the recipient already holds `$6`
/// events, or when `$7` is 1 and it holds one of the same kind (events per device are
/// bounded, docs/THREAT_MODEL.md, flooding).
pub(crate) const INSERT_EVENT: &str = "INSERT INTO events (recipient, id, kind, conversation_id, expires_at) \
     SELECT $1, $2, $3, $4, $5 \
     WHERE (SELECT COUNT(*) FROM events WHERE recipient = $1) < $6 \
     AND NOT ($7 = 1 AND EXISTS (SELECT 1 FROM events WHERE recipient = $1 AND kind = $3))";

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub envelopes: u64,
    pub events: u64,
    pub challenges: u64,
    pub refresh_tokens: u64,
    pub invitations: u64,
    /// Filled in by the sweeper: conversations purged for being idle too long.
    pub idle_conversations: u64,
    /// Filled in by the sweeper: survivor devices deleted for having no conversation.
    pub orphan_devices: u64,
    /// Filled in by the sweeper: member devices deleted for being unseen too long.
    pub member_devices: u64,
}

impl Store {
    /// Store one message's envelopes (one per recipient device) in one transaction; returns
    /// once it is committed, i.e. durable. A resend with the same message id stores nothing
    /// new. `Quota` if any recipient already holds `quota` envelopes, or, with
    /// `per_conversation`, that many from this conversation; then nothing is stored.
    pub async fn insert_message(
        &self,
        conversation: &[u8],
        message_id: &[u8],
        envelopes: &[(Vec<u8>, Vec<u8>)],
        expires_at: i64,
        quota: i64,
        per_conversation: Option<i64>,
    ) -> Result<()> {
        // Lock every recipient first, in one order, so concurrent messages cannot both pass
        // the quota count (and cannot deadlock each other).
        let mut locked: Vec<&Vec<u8>> = envelopes.iter().map(|(r, _)| r).collect();
        locked.sort();
        locked.dedup();
        let lock = self.lock_device_sql();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for recipient in &locked {
                sqlx::query(lock).bind(*recipient).execute(&mut *tx).await?;
            }
            for (recipient, ciphertext) in envelopes {
                let held: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM envelopes WHERE recipient = $1")
                        .bind(recipient)
                        .fetch_one(&mut *tx)
                        .await?;
                let over_conversation = match per_conversation {
                    Some(cap) => {
                        let from_here: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM envelopes \
                             WHERE recipient = $1 AND conversation_id = $2",
                        )
                        .bind(recipient)
                        .bind(conversation)
                        .fetch_one(&mut *tx)
                        .await?;
                        from_here >= cap
                    }
                    None => false,
                };
                if held >= quota || over_conversation {
                    let duplicate: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM envelopes WHERE recipient = $1 AND id = $2",
                    )
                    .bind(recipient)
                    .bind(message_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if duplicate == 0 {
                        return Err(StoreError::Quota);
                    }
                }
                sqlx::query(
                    "INSERT INTO envelopes (recipient, id, conversation_id, ciphertext, expires_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (recipient, id) DO NOTHING",
                )
                .bind(recipient)
                .bind(message_id)
                .bind(conversation)
                .bind(ciphertext)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Undelivered, unexpired envelopes for `device` after `after_seq`, oldest first.
    pub async fn pending_envelopes(
        &self,
        device: &[u8],
        after_seq: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<EnvelopeRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT seq, id, conversation_id, ciphertext, expires_at FROM envelopes \
                 WHERE recipient = $1 AND seq > $2 AND expires_at > $3 ORDER BY seq LIMIT $4",
            )
            .bind(device)
            .bind(after_seq)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn pending_events(
        &self,
        device: &[u8],
        after_seq: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT seq, id, kind, conversation_id FROM events \
                 WHERE recipient = $1 AND seq > $2 AND expires_at > $3 ORDER BY seq LIMIT $4",
            )
            .bind(device)
            .bind(after_seq)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Delete acknowledged envelopes and events of `device`; ids of other devices' rows
    /// match nothing. Returns how many rows were deleted.
    pub async fn ack(&self, device: &[u8], ids: &[Vec<u8>]) -> Result<u64> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut deleted = 0;
            for id in ids {
                deleted += sqlx::query("DELETE FROM envelopes WHERE recipient = $1 AND id = $2")
                    .bind(device)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                deleted += sqlx::query("DELETE FROM events WHERE recipient = $1 AND id = $2")
                    .bind(device)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }

    /// Store events, each only if its recipient holds fewer than `max_per_device` (and, for
    /// a coalescing kind, none of that kind). Returns how many were stored.
    pub async fn insert_events(
        &self,
        events: &[NewEvent],
        expires_at: i64,
        max_per_device: i64,
    ) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut stored = 0;
            for e in events {
                stored += sqlx::query(INSERT_EVENT)
                    .bind(&e.recipient)
                    .bind(&e.id)
                    .bind(e.kind)
                    .bind(&e.conversation_id)
                    .bind(expires_at)
                    .bind(max_per_device)
                    .bind(i64::from(e.coalesce))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(stored)
        })
    }

    /// Pending events for a device (for tests).
    pub async fn count_events(&self, device: &[u8]) -> Result<i64> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE recipient = $1")
                .bind(device)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Pending envelopes for a device (for quotas and tests).
    pub async fn count_envelopes(&self, device: &[u8]) -> Result<i64> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM envelopes WHERE recipient = $1")
                .bind(device)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Delete everything past its expiry.
    pub async fn sweep(&self, now: i64) -> Result<Swept> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let envelopes = sqlx::query("DELETE FROM envelopes WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let events = sqlx::query("DELETE FROM events WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let challenges = sqlx::query("DELETE FROM challenges WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let refresh_tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let invitations = sqlx::query(
                "UPDATE members SET enroll_token_hash = NULL, enroll_expires_at = NULL \
                 WHERE enroll_expires_at <= $1",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Swept {
                envelopes,
                events,
                challenges,
                refresh_tokens,
                invitations,
                ..Swept::default()
            })
        })
    }
}
