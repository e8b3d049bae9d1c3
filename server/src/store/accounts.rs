//! Organisations, members, refresh tokens and proof-of-work challenges.

use super::{Result, Store, on_conflict, with_db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Vec<u8>,
    pub code: String,
    pub name: String,
    pub out_of_hours_message: String,
    pub envelope_ttl_secs: i64,
    pub idle_ttl_secs: i64,
    pub purge_on_close: i64,
}

const ORG_COLUMNS: &str =
    "id, code, name, out_of_hours_message, envelope_ttl_secs, idle_ttl_secs, purge_on_close";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: Vec<u8>,
    pub org_id: Vec<u8>,
    pub handle: String,
    pub role: String,
    pub password_hash: Option<String>,
    pub totp_secret: Option<Vec<u8>>,
    pub last_totp_step: i64,
    pub on_duty: i64,
    pub revoked: i64,
    pub token_epoch: i64,
    pub failed_logins: i64,
    pub locked_until: i64,
}

const MEMBER_COLUMNS: &str = "m.id, m.org_id, m.handle, m.role, m.password_hash, m.totp_secret, \
    m.last_totp_step, m.on_duty, m.revoked, m.token_epoch, m.failed_logins, m.locked_until";

/// Who a refresh token belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub family: Vec<u8>,
    pub member_id: Option<Vec<u8>>,
    pub device_id: Option<Vec<u8>>,
    pub used: i64,
    pub expires_at: i64,
}

pub enum RefreshUse {
    /// Valid and now spent; issue the next token of the family.
    Fresh(RefreshRow),
    /// Already used: the family has been revoked (the row says whose it was).
    Reused(RefreshRow),
    Unknown,
}

impl Store {
    pub async fn create_org(&self, id: &[u8], code: &str, name: &str, hour: i64) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query("INSERT INTO orgs (id, code, name, created_hour) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(code)
                .bind(name)
                .bind(hour)
                .execute(pool)
                .await
                .map_err(on_conflict)?;
        });
        Ok(())
    }

    pub async fn org_by_code(&self, code: &str) -> Result<Option<OrgRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORG_COLUMNS} FROM orgs WHERE code = $1"
            )))
            .bind(code)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn org_by_id(&self, id: &[u8]) -> Result<Option<OrgRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Update an organisation's settings; `None` leaves a field as it is.
    pub async fn update_org_settings(
        &self,
        org: &[u8],
        message: Option<&str>,
        envelope_ttl_secs: Option<i64>,
        idle_ttl_secs: Option<i64>,
        purge_on_close: Option<bool>,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE orgs SET out_of_hours_message = COALESCE($1, out_of_hours_message), \
                 envelope_ttl_secs = COALESCE($2, envelope_ttl_secs), \
                 idle_ttl_secs = COALESCE($3, idle_ttl_secs), \
                 purge_on_close = COALESCE($5, purge_on_close) WHERE id = $4",
            )
            .bind(message)
            .bind(envelope_ttl_secs)
            .bind(idle_ttl_secs)
            .bind(org)
            .bind(purge_on_close.map(i64::from))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Create a member awaiting enrolment. `Conflict` if the handle is taken in the org.
    pub async fn create_invite(
        &self,
        member_id: &[u8],
        org: &[u8],
        handle: &str,
        role: &str,
        token_hash: &[u8],
        expires_at: i64,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO members (id, org_id, handle, role, enroll_token_hash, enroll_expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(member_id)
            .bind(org)
            .bind(handle)
            .bind(role)
            .bind(token_hash)
            .bind(expires_at)
            .execute(pool)
            .await
            .map_err(on_conflict)?;
        });
        Ok(())
    }

    /// Spend an enrolment token: set the password hash and TOTP secret. Returns the member,
    /// or `None` if the token is unknown, used or expired.
    pub async fn complete_enrolment(
        &self,
        token_hash: &[u8],
        now: i64,
        password_hash: &str,
        totp_secret: &[u8],
    ) -> Result<Option<MemberRow>> {
        let id: Option<Vec<u8>> = with_db!(self, write, |pool| {
            sqlx::query_scalar(
                "UPDATE members SET password_hash = $1, totp_secret = $2, \
                 enroll_token_hash = NULL, enroll_expires_at = NULL \
                 WHERE enroll_token_hash = $3 AND enroll_expires_at > $4 AND revoked = 0 \
                 RETURNING id",
            )
            .bind(password_hash)
            .bind(totp_secret)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        match id {
            Some(id) => self.member(&id).await,
            None => Ok(None),
        }
    }

    pub async fn member(&self, id: &[u8]) -> Result<Option<MemberRow>> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM members m WHERE m.id = $1");
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn member_by_handle(
        &self,
        org_code: &str,
        handle: &str,
    ) -> Result<Option<MemberRow>> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM members m JOIN orgs o ON o.id = m.org_id \
             WHERE o.code = $1 AND m.handle = $2"
        );
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(org_code)
                .bind(handle)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Reserve one login attempt for the member `handle` of organisation `org_code`, in one
    /// atomic update, before the password is checked: the member row if an attempt was
    /// left, `None` if the window is full or there is no such member.
    ///
    /// `failed_logins` counts the attempts of the current window and `locked_until` is when
    /// that window ends. A window starts at the first attempt after the previous one ended;
    /// at most `allowed` attempts are reserved in it, and a refused attempt changes nothing,
    /// so it cannot extend the window. Concurrent attempts serialise on the row, so no more
    /// than `allowed` ever get through.
    pub async fn reserve_login_attempt(
        &self,
        org_code: &str,
        handle: &str,
        now: i64,
        allowed: i64,
        window_secs: i64,
    ) -> Result<Option<MemberRow>> {
        let columns = MEMBER_COLUMNS.replace("m.", "");
        let sql = format!(
            "UPDATE members SET \
             failed_logins = CASE WHEN locked_until <= $3 THEN 1 ELSE failed_logins + 1 END, \
             locked_until = CASE WHEN locked_until <= $3 THEN $3 + $5 ELSE locked_until END \
             WHERE id = (SELECT m.id FROM members m JOIN orgs o ON o.id = m.org_id \
                         WHERE o.code = $1 AND m.handle = $2) \
             AND (locked_until <= $3 OR failed_logins < $4) \
             RETURNING {columns}"
        );
        Ok(with_db!(self, write, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(org_code)
                .bind(handle)
                .bind(now)
                .bind(allowed)
                .bind(window_secs)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Whether an enrolment token with this hash is waiting to be used (checked before the
    /// password is hashed; [`Store::complete_enrolment`] checks again atomically).
    pub async fn enrolment_pending(&self, token_hash: &[u8], now: i64) -> Result<bool> {
        let n: i64 = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM members WHERE enroll_token_hash = $1 \
                 AND enroll_expires_at > $2 AND revoked = 0",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        Ok(n > 0)
    }

    /// Record a successful login at TOTP step `step`. Returns false if the step was already
    /// used (a replayed code), in which case nothing changes.
    pub async fn login_succeeded(&self, member: &[u8], step: i64) -> Result<bool> {
        let n = with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE members SET failed_logins = 0, locked_until = 0, last_totp_step = $1 \
                 WHERE id = $2 AND last_totp_step < $1",
            )
            .bind(step)
            .bind(member)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Set a member's duty flag; returns false if the member does not exist.
    pub async fn set_duty(&self, member: &[u8], on: bool) -> Result<bool> {
        let n = with_db!(self, write, |pool| {
            sqlx::query("UPDATE members SET on_duty = $1 WHERE id = $2 AND revoked = 0")
                .bind(i64::from(on))
                .bind(member)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Revoke a member: no login, no tokens, off duty, unassigned from conversations.
    pub async fn revoke_member(&self, member: &[u8]) -> Result<bool> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE members SET revoked = 1, on_duty = 0, token_epoch = token_epoch + 1, \
                 enroll_token_hash = NULL WHERE id = $1",
            )
            .bind(member)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM refresh_tokens WHERE member_id = $1")
                .bind(member)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE conversations SET assigned_member = NULL WHERE assigned_member = $1",
            )
            .bind(member)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    // ------------------------------------------------------------ refresh tokens

    pub async fn insert_refresh(
        &self,
        hash: &[u8],
        family: &[u8],
        member: Option<&[u8]>,
        device: Option<&[u8]>,
        expires_at: i64,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO refresh_tokens (hash, family, member_id, device_id, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hash)
            .bind(family)
            .bind(member)
            .bind(device)
            .bind(expires_at)
            .execute(pool)
            .await
            .map_err(on_conflict)?;
        });
        Ok(())
    }

    /// Spend a refresh token. A second use of the same token revokes its whole family and
    /// bumps the subject's token epoch, so every access token of that session dies too.
    pub async fn use_refresh(&self, hash: &[u8], now: i64) -> Result<RefreshUse> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<RefreshRow> = sqlx::query_as(
                "SELECT family, member_id, device_id, used, expires_at FROM refresh_tokens WHERE hash = $1",
            )
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(RefreshUse::Unknown);
            };
            if row.expires_at <= now {
                sqlx::query("DELETE FROM refresh_tokens WHERE hash = $1")
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(RefreshUse::Unknown);
            }
            let spent =
                sqlx::query("UPDATE refresh_tokens SET used = 1 WHERE hash = $1 AND used = 0")
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if spent == 1 {
                tx.commit().await?;
                return Ok(RefreshUse::Fresh(row));
            }
            sqlx::query("DELETE FROM refresh_tokens WHERE family = $1")
                .bind(&row.family)
                .execute(&mut *tx)
                .await?;
            if let Some(device) = &row.device_id {
                sqlx::query("UPDATE devices SET token_epoch = token_epoch + 1 WHERE id = $1")
                    .bind(device)
                    .execute(&mut *tx)
                    .await?;
            } else if let Some(member) = &row.member_id {
                sqlx::query("UPDATE members SET token_epoch = token_epoch + 1 WHERE id = $1")
                    .bind(member)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(RefreshUse::Reused(row))
        })
    }

    /// The member and device a refresh token belongs to, used or not.
    pub async fn refresh_owner(
        &self,
        hash: &[u8],
    ) -> Result<Option<(Option<Vec<u8>>, Option<Vec<u8>>)>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as("SELECT member_id, device_id FROM refresh_tokens WHERE hash = $1")
                .bind(hash)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Logout: delete the refresh token's family and, when the session belongs to a device,
    /// bump that device's token epoch so the session's access tokens die with it. Returns
    /// the device, if any.
    pub async fn delete_refresh_family(&self, hash: &[u8]) -> Result<Option<Vec<u8>>> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let device: Option<Option<Vec<u8>>> =
                sqlx::query_scalar("SELECT device_id FROM refresh_tokens WHERE hash = $1")
                    .bind(hash)
                    .fetch_optional(&mut *tx)
                    .await?;
            sqlx::query(
                "DELETE FROM refresh_tokens WHERE family IN \
                 (SELECT family FROM refresh_tokens WHERE hash = $1)",
            )
            .bind(hash)
            .execute(&mut *tx)
            .await?;
            let device = device.flatten();
            if let Some(d) = &device {
                sqlx::query("UPDATE devices SET token_epoch = token_epoch + 1 WHERE id = $1")
                    .bind(d)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(device)
        })
    }

    // ------------------------------------------------------------ challenges

    pub async fn insert_challenge(
        &self,
        challenge: &[u8],
        bits: u8,
        expires_at: i64,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query("INSERT INTO challenges (challenge, bits, expires_at) VALUES ($1, $2, $3)")
                .bind(challenge)
                .bind(i64::from(bits))
                .bind(expires_at)
                .execute(pool)
                .await
                .map_err(on_conflict)?;
        });
        Ok(())
    }

    /// Spend a challenge: returns its difficulty if it existed and had not expired. Either
    /// way it is gone afterwards (single use).
    pub async fn take_challenge(&self, challenge: &[u8], now: i64) -> Result<Option<u8>> {
        let row: Option<(i64, i64)> = with_db!(self, write, |pool| {
            sqlx::query_as("DELETE FROM challenges WHERE challenge = $1 RETURNING bits, expires_at")
                .bind(challenge)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(bits, exp)| (exp > now).then(|| bits.clamp(0, 255) as u8)))
    }

    pub async fn count_challenges(&self) -> Result<i64> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM challenges")
                .fetch_one(pool)
                .await?
        }))
    }
}
