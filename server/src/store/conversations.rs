//! Conversations: the queue, claims, transfers and purge.

use super::{Result, Store, on_conflict, with_db};

/// Every row tied to one device other than the device row itself, deleted explicitly
/// rather than trusting `ON DELETE CASCADE` alone. `$1` is the device id.
pub(crate) const DEVICE_ROWS: [&str; 5] = [
    "DELETE FROM envelopes WHERE recipient = $1",
    "DELETE FROM events WHERE recipient = $1",
    "DELETE FROM one_time_prekeys WHERE device_id = $1",
    "DELETE FROM refresh_tokens WHERE device_id = $1",
    "DELETE FROM push_registrations WHERE device_id = $1",
];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: Vec<u8>,
    pub org_id: Vec<u8>,
    pub survivor_device: Vec<u8>,
    pub assigned_member: Option<Vec<u8>>,
    pub urgent: i64,
    pub language: Option<String>,
    pub queue_seq: i64,
    pub opened_hour: i64,
    pub closed: i64,
}

const COLUMNS: &str = "id, org_id, survivor_device, assigned_member, urgent, language, queue_seq, opened_hour, closed";

/// Whose view of the conversation list.
pub enum ListFor<'a> {
    /// An advocate: the org's waiting queue and their own conversations.
    Advocate { org: &'a [u8], member: &'a [u8] },
    /// A supervisor: every conversation of the org.
    Supervisor { org: &'a [u8] },
}

impl Store {
    /// Open a conversation for a survivor device; `Conflict` if the device already has one.
    pub async fn create_conversation(
        &self,
        id: &[u8],
        org: &[u8],
        device: &[u8],
        urgent: bool,
        language: Option<&str>,
        hour: i64,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO conversations (id, org_id, survivor_device, urgent, language, queue_seq, \
                 opened_hour, active_hour) VALUES ($1, $2, $3, $4, $5, \
                 (SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM conversations), $6, $6)",
            )
            .bind(id)
            .bind(org)
            .bind(device)
            .bind(i64::from(urgent))
            .bind(language)
            .bind(hour)
            .execute(pool)
            .await
            .map_err(on_conflict)?;
        });
        Ok(())
    }

    pub async fn conversation(&self, id: &[u8]) -> Result<Option<ConversationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM conversations WHERE id = $1");
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn conversation_of_device(&self, device: &[u8]) -> Result<Option<ConversationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM conversations WHERE survivor_device = $1");
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(device)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Position in the org's waiting queue (1 = next): urgent first, then first come.
    pub async fn queue_position(&self, c: &ConversationRow) -> Result<i64> {
        let ahead: i64 = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM conversations WHERE org_id = $1 AND assigned_member IS NULL \
                 AND closed = 0 AND (urgent > $2 OR (urgent = $2 AND queue_seq < $3))",
            )
            .bind(&c.org_id)
            .bind(c.urgent)
            .bind(c.queue_seq)
            .fetch_one(pool)
            .await?
        });
        Ok(ahead + 1)
    }

    pub async fn list_conversations(&self, who: ListFor<'_>) -> Result<Vec<ConversationRow>> {
        let order = "ORDER BY assigned_member IS NOT NULL, urgent DESC, queue_seq";
        Ok(match who {
            ListFor::Advocate { org, member } => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM conversations WHERE org_id = $1 \
                     AND (assigned_member IS NULL OR assigned_member = $2) {order}"
                );
                with_db!(self, read, |pool| {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(org)
                        .bind(member)
                        .fetch_all(pool)
                        .await?
                })
            }
            ListFor::Supervisor { org } => {
                let sql = format!("SELECT {COLUMNS} FROM conversations WHERE org_id = $1 {order}");
                with_db!(self, read, |pool| {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(org)
                        .fetch_all(pool)
                        .await?
                })
            }
        })
    }

    /// Claim a waiting conversation. Exactly one of any number of concurrent claims wins.
    pub async fn claim(&self, conversation: &[u8], member: &[u8], hour: i64) -> Result<bool> {
        let n = with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE conversations SET assigned_member = $1, active_hour = $2 \
                 WHERE id = $3 AND assigned_member IS NULL AND closed = 0",
            )
            .bind(member)
            .bind(hour)
            .bind(conversation)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Move a conversation from `from` (the current assignee) to `to`.
    pub async fn transfer(
        &self,
        conversation: &[u8],
        from: &[u8],
        to: &[u8],
        hour: i64,
    ) -> Result<bool> {
        let n = with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE conversations SET assigned_member = $1, active_hour = $2 \
                 WHERE id = $3 AND assigned_member = $4",
            )
            .bind(to)
            .bind(hour)
            .bind(conversation)
            .bind(from)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn touch_conversation(&self, conversation: &[u8], hour: i64) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE conversations SET active_hour = $1 WHERE id = $2 AND active_hour < $1",
            )
            .bind(hour)
            .bind(conversation)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Close without purging: delete the envelopes and events, keep the row marked closed.
    pub async fn close_keeping(&self, conversation: &[u8], hour: i64) -> Result<()> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM envelopes WHERE conversation_id = $1")
                .bind(conversation)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM events WHERE conversation_id = $1")
                .bind(conversation)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE conversations SET closed = 1, active_hour = $1 WHERE id = $2")
                .bind(hour)
                .bind(conversation)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Reopen a closed conversation (the survivor came back).
    pub async fn reopen(&self, conversation: &[u8], hour: i64) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query("UPDATE conversations SET closed = 0, active_hour = $1 WHERE id = $2")
                .bind(hour)
                .bind(conversation)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Delete a conversation with its envelopes, the events that name it, and its survivor
    /// device with everything tied to that device (keys, prekeys, refresh tokens, push
    /// registration, pending envelopes and events), in one transaction. Returns the purged
    /// survivor device id, or `None` if the conversation was already gone.
    pub async fn purge_conversation(&self, conversation: &[u8]) -> Result<Option<Vec<u8>>> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM envelopes WHERE conversation_id = $1")
                .bind(conversation)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM events WHERE conversation_id = $1")
                .bind(conversation)
                .execute(&mut *tx)
                .await?;
            let device: Option<Vec<u8>> = sqlx::query_scalar(
                "DELETE FROM conversations WHERE id = $1 RETURNING survivor_device",
            )
            .bind(conversation)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(device) = &device {
                for sql in DEVICE_ROWS {
                    sqlx::query(sql).bind(device).execute(&mut *tx).await?;
                }
                sqlx::query("DELETE FROM devices WHERE id = $1 AND member_id IS NULL")
                    .bind(device)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(device)
        })
    }

    /// Delete survivor devices created at or before `created_by_hour` that have no
    /// conversation, with everything tied to them; returns their ids.
    pub async fn sweep_orphan_devices(&self, created_by_hour: i64) -> Result<Vec<Vec<u8>>> {
        const ORPHANS: &str = "SELECT d.id FROM devices d WHERE d.member_id IS NULL \
             AND d.created_hour <= $1 AND NOT EXISTS \
             (SELECT 1 FROM conversations c WHERE c.survivor_device = d.id)";
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let ids: Vec<Vec<u8>> = sqlx::query_scalar(ORPHANS)
                .bind(created_by_hour)
                .fetch_all(&mut *tx)
                .await?;
            let mut swept = Vec::with_capacity(ids.len());
            for id in ids {
                // Re-checked in the delete: a device that opened a conversation meanwhile
                // stays, whole.
                let gone = sqlx::query(
                    "DELETE FROM devices WHERE id = $1 AND member_id IS NULL AND NOT EXISTS \
                     (SELECT 1 FROM conversations c WHERE c.survivor_device = devices.id)",
                )
                .bind(&id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if gone == 1 {
                    for sql in DEVICE_ROWS {
                        sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
                    }
                    swept.push(id);
                }
            }
            tx.commit().await?;
            Ok(swept)
        })
    }

    /// Conversations idle past their organisation's `idle_ttl_secs` at `now`.
    pub async fn idle_conversations(&self, now: i64) -> Result<Vec<Vec<u8>>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT c.id FROM conversations c JOIN orgs o ON o.id = c.org_id \
                 WHERE c.active_hour + o.idle_ttl_secs <= $1",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Waiting conversations' survivor devices in an org (to tell them someone is on duty).
    pub async fn waiting_survivor_devices(&self, org: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT survivor_device, id FROM conversations \
                 WHERE org_id = $1 AND assigned_member IS NULL AND closed = 0",
            )
            .bind(org)
            .fetch_all(pool)
            .await?
        }))
    }
}
