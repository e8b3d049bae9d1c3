//! Stream tickets: single-use, 30-second stand-ins for an access token when opening the
//! WebSocket stream from a browser. Only the SHA-256 hash of a ticket is stored, and the
//! first attempt to use a ticket deletes it, whatever the outcome.

use super::{Result, Store, with_db};

/// What a ticket stands for: the subject and token epoch of the access token it was traded
/// for, and when it stops being honoured.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StreamTicketRow {
    pub hash: Vec<u8>,
    pub device_id: Vec<u8>,
    pub member_id: Option<Vec<u8>>,
    pub token_epoch: i64,
    /// When the access token the ticket was traded for expires: a stream opened with the
    /// ticket ends then.
    pub access_expires_at: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn insert_stream_ticket(&self, ticket: &StreamTicketRow) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO stream_tickets (hash, device_id, member_id, token_epoch, \
                 access_expires_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&ticket.hash)
            .bind(&ticket.device_id)
            .bind(&ticket.member_id)
            .bind(ticket.token_epoch)
            .bind(ticket.access_expires_at)
            .bind(ticket.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Delete the ticket with this hash and return it. Of two concurrent uses at most one
    /// gets the row, on either database.
    pub async fn take_stream_ticket(&self, hash: &[u8]) -> Result<Option<StreamTicketRow>> {
        Ok(with_db!(self, write, |pool| {
            sqlx::query_as(
                "DELETE FROM stream_tickets WHERE hash = $1 \
                 RETURNING hash, device_id, member_id, token_epoch, access_expires_at, expires_at",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Delete tickets that expired unused; returns how many.
    pub async fn sweep_stream_tickets(&self, now: i64) -> Result<u64> {
        Ok(with_db!(self, write, |pool| {
            sqlx::query("DELETE FROM stream_tickets WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
