//! The organisation key chain and member device certificates: public data the server keeps
//! and hands out but cannot create (docs/CRYPTO.md, "Trust").

use super::{Result, Store, with_db};

/// One link of an organisation's key chain.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgKeyRow {
    pub seq: i64,
    pub public_key: Vec<u8>,
    pub signature: Option<Vec<u8>>,
}

/// A member device as a supervisor sees it when certifying.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberDeviceRow {
    pub id: Vec<u8>,
    pub member_id: Vec<u8>,
    pub handle: String,
    pub role: String,
    pub identity_key: Vec<u8>,
    pub signing_key: Vec<u8>,
    pub identity_signature: Vec<u8>,
    pub certificate: Option<Vec<u8>>,
    pub certificate_sig: Option<Vec<u8>>,
}

const MEMBER_DEVICE_COLUMNS: &str = "d.id, d.member_id, m.handle, m.role, d.identity_key, \
     d.signing_key, d.identity_signature, d.certificate, d.certificate_sig";

impl Store {
    /// The organisation's key chain, oldest first (empty when no key was registered).
    pub async fn org_key_chain(&self, org: &[u8]) -> Result<Vec<OrgKeyRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT seq, public_key, signature FROM org_keys WHERE org_id = $1 ORDER BY seq",
            )
            .bind(org)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Append key number `seq` to the chain. Two supervisors racing to append the same
    /// number: one wins, the other gets [`super::StoreError::Conflict`] (primary key).
    pub async fn append_org_key(
        &self,
        org: &[u8],
        seq: i64,
        public_key: &[u8],
        signature: Option<&[u8]>,
        created_hour: i64,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO org_keys (org_id, seq, public_key, signature, created_hour) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(org)
            .bind(seq)
            .bind(public_key)
            .bind(signature)
            .bind(created_hour)
            .execute(pool)
            .await
            .map_err(super::on_conflict)?;
        });
        Ok(())
    }

    /// Member devices of an organisation's non-revoked members, with their certificates.
    pub async fn org_member_devices(&self, org: &[u8]) -> Result<Vec<MemberDeviceRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {MEMBER_DEVICE_COLUMNS} FROM devices d JOIN members m ON m.id = d.member_id \
                 WHERE m.org_id = $1 AND m.revoked = 0 ORDER BY m.handle, d.id"
            )))
            .bind(org)
            .fetch_all(pool)
            .await?
        }))
    }

    /// One member device with its member, or `None` (also for survivor devices).
    pub async fn member_device(&self, device: &[u8]) -> Result<Option<(MemberDeviceRow, Vec<u8>)>> {
        let row: Option<MemberDeviceRow> = with_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {MEMBER_DEVICE_COLUMNS} FROM devices d JOIN members m ON m.id = d.member_id \
                 WHERE d.id = $1 AND m.revoked = 0"
            )))
            .bind(device)
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else { return Ok(None) };
        let org: Vec<u8> = with_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT org_id FROM members WHERE id = $1")
                .bind(&row.member_id)
                .fetch_one(pool)
                .await?
        });
        Ok(Some((row, org)))
    }

    /// Store a device's certificate (replacing an older one).
    pub async fn set_certificate(
        &self,
        device: &[u8],
        body: &[u8],
        signature: &[u8],
        not_after: i64,
    ) -> Result<bool> {
        let done = with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE devices SET certificate = $1, certificate_sig = $2, certified_until = $3 \
                 WHERE id = $4 AND member_id IS NOT NULL",
            )
            .bind(body)
            .bind(signature)
            .bind(not_after)
            .bind(device)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Certified devices of a member, valid at `now` and seen at or after `live_since`:
    /// where a member's envelopes go.
    pub async fn certified_member_devices(
        &self,
        member: &[u8],
        now: i64,
        live_since: i64,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM devices WHERE member_id = $1 AND certified_until > $2 \
                 AND seen_hour >= $3 ORDER BY id",
            )
            .bind(member)
            .bind(now)
            .bind(live_since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Certified devices, valid at `now` and seen at or after `live_since`, of the on-duty,
    /// non-revoked members of an organisation: where a waiting conversation's envelopes go.
    pub async fn certified_on_duty_devices(
        &self,
        org: &[u8],
        now: i64,
        live_since: i64,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT d.id FROM devices d JOIN members m ON m.id = d.member_id \
                 WHERE m.org_id = $1 AND m.on_duty = 1 AND m.revoked = 0 \
                 AND d.certified_until > $2 AND d.seen_hour >= $3 ORDER BY d.id",
            )
            .bind(org)
            .bind(now)
            .bind(live_since)
            .fetch_all(pool)
            .await?
        }))
    }
}
