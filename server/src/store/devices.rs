//! Devices, their public keys and one-time prekeys.

use super::{DEVICE_ROWS, Result, Store, with_db};

#[derive(Debug, Clone)]
pub struct NewDevice<'a> {
    pub id: &'a [u8],
    pub member_id: Option<&'a [u8]>,
    pub identity_key: &'a [u8],
    pub signing_key: &'a [u8],
    pub identity_signature: &'a [u8],
    pub signed_prekey_id: u32,
    pub signed_prekey: &'a [u8],
    pub signed_prekey_sig: &'a [u8],
    pub exit_token_hash: Option<&'a [u8]>,
    pub created_hour: i64,
}

/// What authentication needs to know about a device.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceAuthRow {
    pub member_id: Option<Vec<u8>>,
    pub token_epoch: i64,
    pub hidden: i64,
    /// Member devices only: the hour it last authenticated.
    pub seen_hour: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BundleRow {
    pub id: Vec<u8>,
    pub identity_key: Vec<u8>,
    pub signing_key: Vec<u8>,
    pub signed_prekey_id: i64,
    pub signed_prekey: Vec<u8>,
    pub signed_prekey_sig: Vec<u8>,
    pub identity_signature: Vec<u8>,
    pub certificate: Option<Vec<u8>>,
    pub certificate_sig: Option<Vec<u8>>,
}

impl Store {
    /// Register a device with its keys in one transaction.
    pub async fn create_device(
        &self,
        d: &NewDevice<'_>,
        one_time: &[(u32, Vec<u8>)],
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO devices (id, member_id, identity_key, signing_key, signed_prekey_id, \
                 signed_prekey, signed_prekey_sig, exit_token_hash, created_hour, seen_hour, \
                 identity_signature) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 CASE WHEN $2 IS NULL THEN NULL ELSE $9 END, $10)",
            )
            .bind(d.id)
            .bind(d.member_id)
            .bind(d.identity_key)
            .bind(d.signing_key)
            .bind(i64::from(d.signed_prekey_id))
            .bind(d.signed_prekey)
            .bind(d.signed_prekey_sig)
            .bind(d.exit_token_hash)
            .bind(d.created_hour)
            .bind(d.identity_signature)
            .execute(&mut *tx)
            .await
            .map_err(super::on_conflict)?;
            for (key_id, key) in one_time {
                sqlx::query(
                    "INSERT INTO one_time_prekeys (device_id, key_id, public_key) VALUES ($1, $2, $3) \
                     ON CONFLICT (device_id, key_id) DO NOTHING",
                )
                .bind(d.id)
                .bind(i64::from(*key_id))
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn device_auth(&self, id: &[u8]) -> Result<Option<DeviceAuthRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT member_id, token_epoch, hidden, seen_hour FROM devices WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Replace the signed prekey (if given) and add one-time prekeys; returns how many
    /// one-time prekeys the device now has. Ids already present are ignored.
    pub async fn add_prekeys(
        &self,
        device: &[u8],
        signed: Option<(u32, &[u8], &[u8])>,
        one_time: &[(u32, Vec<u8>)],
        max_stored: i64,
    ) -> Result<Option<i64>> {
        let lock = self.lock_device_sql();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            // Held to the end: concurrent uploads cannot both pass the cap.
            sqlx::query(lock).bind(device).execute(&mut *tx).await?;
            let have: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM one_time_prekeys WHERE device_id = $1")
                    .bind(device)
                    .fetch_one(&mut *tx)
                    .await?;
            if have + one_time.len() as i64 > max_stored {
                return Ok(None);
            }
            if let Some((id, key, sig)) = signed {
                sqlx::query(
                    "UPDATE devices SET signed_prekey_id = $1, signed_prekey = $2, signed_prekey_sig = $3 WHERE id = $4",
                )
                .bind(i64::from(id))
                .bind(key)
                .bind(sig)
                .bind(device)
                .execute(&mut *tx)
                .await?;
            }
            for (key_id, key) in one_time {
                sqlx::query(
                    "INSERT INTO one_time_prekeys (device_id, key_id, public_key) VALUES ($1, $2, $3) \
                     ON CONFLICT (device_id, key_id) DO NOTHING",
                )
                .bind(device)
                .bind(i64::from(*key_id))
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM one_time_prekeys WHERE device_id = $1")
                    .bind(device)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(Some(count))
        })
    }

    pub async fn bundle_keys(&self, device: &[u8]) -> Result<Option<BundleRow>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, identity_key, signing_key, signed_prekey_id, signed_prekey, signed_prekey_sig, \
                 identity_signature, certificate, certificate_sig FROM devices WHERE id = $1",
            )
            .bind(device)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Take one one-time prekey of `device`, deleting it in the same statement, so no key is
    /// ever handed out twice, even to concurrent fetches on several replicas.
    pub async fn take_one_time_prekey(&self, device: &[u8]) -> Result<Option<(u32, Vec<u8>)>> {
        // Under PostgreSQL two transactions may select the same row; the loser's DELETE then
        // matches nothing and it tries the next key instead of handing out a duplicate.
        for _ in 0..8 {
            let row: Option<(i64, Vec<u8>)> = with_db!(self, write, |pool| {
                sqlx::query_as(
                    "DELETE FROM one_time_prekeys WHERE device_id = $1 AND key_id = \
                     (SELECT key_id FROM one_time_prekeys WHERE device_id = $1 ORDER BY key_id LIMIT 1) \
                     RETURNING key_id, public_key",
                )
                .bind(device)
                .fetch_optional(pool)
                .await?
            });
            if let Some((id, key)) = row {
                return Ok(Some((id.clamp(0, i64::from(u32::MAX)) as u32, key)));
            }
            if self.count_one_time_prekeys(device).await? == 0 {
                return Ok(None);
            }
        }
        Ok(None)
    }

    pub async fn count_one_time_prekeys(&self, device: &[u8]) -> Result<i64> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM one_time_prekeys WHERE device_id = $1")
                .bind(device)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Device ids of a member.
    pub async fn member_devices(&self, member: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT id FROM devices WHERE member_id = $1 ORDER BY id")
                .bind(member)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Device ids of a member seen at or after `live_since` (an hour): the devices a
    /// message or event for that member goes to.
    pub async fn live_member_devices(
        &self,
        member: &[u8],
        live_since: i64,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM devices WHERE member_id = $1 AND seen_hour >= $2 ORDER BY id",
            )
            .bind(member)
            .bind(live_since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Live device ids (seen at or after `live_since`) of the on-duty, non-revoked members
    /// of an organisation.
    pub async fn on_duty_devices(&self, org: &[u8], live_since: i64) -> Result<Vec<Vec<u8>>> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT d.id FROM devices d JOIN members m ON m.id = d.member_id \
                 WHERE m.org_id = $1 AND m.on_duty = 1 AND m.revoked = 0 AND d.seen_hour >= $2 \
                 ORDER BY d.id",
            )
            .bind(org)
            .bind(live_since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Record that a member device authenticated in `hour` (only ever moves forward).
    pub async fn touch_member_device(&self, device: &[u8], hour: i64) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE devices SET seen_hour = $1 WHERE id = $2 AND member_id IS NOT NULL \
                 AND (seen_hour IS NULL OR seen_hour < $1)",
            )
            .bind(hour)
            .bind(device)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Delete one device of `member` with everything tied to it; false if `member` has no
    /// such device.
    pub async fn delete_member_device(&self, member: &[u8], device: &[u8]) -> Result<bool> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("SELECT id FROM devices WHERE id = $1 AND member_id = $2")
                .bind(device)
                .bind(member)
                .fetch_optional(&mut *tx)
                .await?;
            if n.is_none() {
                return Ok(false);
            }
            for sql in DEVICE_ROWS {
                sqlx::query(sql).bind(device).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM devices WHERE id = $1 AND member_id = $2")
                .bind(device)
                .bind(member)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Delete member devices last seen before `live_since` (an hour) with everything tied
    /// to them; returns their ids.
    pub async fn cull_member_devices(&self, live_since: i64) -> Result<Vec<Vec<u8>>> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let ids: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT id FROM devices WHERE member_id IS NOT NULL AND seen_hour < $1",
            )
            .bind(live_since)
            .fetch_all(&mut *tx)
            .await?;
            let mut culled = Vec::with_capacity(ids.len());
            for id in ids {
                // Re-checked in the delete: a device seen meanwhile stays, whole.
                let gone = sqlx::query("DELETE FROM devices WHERE id = $1 AND seen_hour < $2")
                    .bind(&id)
                    .bind(live_since)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if gone == 1 {
                    for sql in DEVICE_ROWS {
                        sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
                    }
                    culled.push(id);
                }
            }
            tx.commit().await?;
            Ok(culled)
        })
    }
}
