//! Conversations: the queue, claims, transfers and purge.

use super::{Result, Store, on_conflict, with_db};

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

    /// Delete a conversation with its envelopes and the events that name it.
    pub async fn purge_conversation(&self, conversation: &[u8]) -> Result<bool> {
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
            let n = sqlx::query("DELETE FROM conversations WHERE id = $1")
                .bind(conversation)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n == 1)
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
                "SELECT survivor_device, id FROM conversations WHERE org_id = $1 AND assigned_member IS NULL",
            )
            .bind(org)
            .fetch_all(pool)
            .await?
        }))
    }
}
