//! Push registrations: a device's wake-signal endpoint, its safe hours and the expiry of its
//! rate limit. The row is deleted with the device (foreign key), so the URL is kept no longer
//! than the device it wakes.

use super::{Result, Store, with_db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PushRow {
    pub device_id: Vec<u8>,
    pub endpoint: String,
    pub utc_offset_minutes: i64,
    /// JSON list of [`quietline_proto::wire::SafeWindow`].
    pub safe_hours: String,
    pub next_wake_at: i64,
}

impl Store {
    /// Create or replace the registration of `device`. A replacement keeps the pending rate
    /// limit, so registering again is no way around it.
    pub async fn put_push(
        &self,
        device: &[u8],
        endpoint: &str,
        utc_offset_minutes: i64,
        safe_hours: &str,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO push_registrations (device_id, endpoint, utc_offset_minutes, safe_hours) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO UPDATE SET \
                 endpoint = excluded.endpoint, utc_offset_minutes = excluded.utc_offset_minutes, \
                 safe_hours = excluded.safe_hours",
            )
            .bind(device)
            .bind(endpoint)
            .bind(utc_offset_minutes)
            .bind(safe_hours)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Forget the registration of `device`; `false` if it had none.
    pub async fn delete_push(&self, device: &[u8]) -> Result<bool> {
        let n = with_db!(self, write, |pool| {
            sqlx::query("DELETE FROM push_registrations WHERE device_id = $1")
                .bind(device)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    pub async fn push_registration(&self, device: &[u8]) -> Result<Option<PushRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT device_id, endpoint, utc_offset_minutes, safe_hours, next_wake_at \
                 FROM push_registrations WHERE device_id = $1",
            )
            .bind(device)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Take the right to wake `device` now: succeeds for one caller only (on any replica),
    /// and only if the rate limit has expired and the device is not hidden by a quick exit.
    /// Sets the next permitted time to `next`.
    pub async fn take_wake_slot(&self, device: &[u8], now: i64, next: i64) -> Result<bool> {
        let n = with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE push_registrations SET next_wake_at = $3 \
                 WHERE device_id = $1 AND next_wake_at <= $2 \
                 AND device_id IN (SELECT id FROM devices WHERE hidden = 0)",
            )
            .bind(device)
            .bind(now)
            .bind(next)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }

    /// Registrations whose rate limit has expired, of devices not hidden, that have an
    /// unexpired envelope or event waiting: the candidates for a wake when a window opens.
    pub async fn push_due(&self, now: i64, limit: i64) -> Result<Vec<PushRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT p.device_id, p.endpoint, p.utc_offset_minutes, p.safe_hours, p.next_wake_at \
                 FROM push_registrations p JOIN devices d ON d.id = p.device_id \
                 WHERE p.next_wake_at <= $1 AND d.hidden = 0 AND ( \
                   EXISTS (SELECT 1 FROM envelopes e WHERE e.recipient = p.device_id AND e.expires_at > $1) \
                   OR EXISTS (SELECT 1 FROM events v WHERE v.recipient = p.device_id AND v.expires_at > $1)) \
                 ORDER BY p.device_id LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Reset rate limits that have expired to 0, so the table does not keep the time of the
    /// last wake longer than the limit lasts. Returns how many were reset.
    pub async fn clear_expired_wake_limits(&self, now: i64) -> Result<u64> {
        Ok(with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE push_registrations SET next_wake_at = 0 \
                 WHERE next_wake_at <> 0 AND next_wake_at <= $1",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }
}
