//! Who is calling, and member sign-in: enrolment, login with password + TOTP and back-off,
//! refresh-token rotation with reuse detection, logout.

use crate::app::AppState;
use crate::auth::jwt::Subject;
use crate::auth::{password, totp};
use crate::error::{Error, Result};
use crate::limits::AnonRoute;
use crate::store::{MemberRow, RefreshUse, to_id};
use quietline_proto::wire::{Enroll, Enrolled, LoggedIn, Login, Role, TokenPair};
use quietline_proto::{ErrorCode, Id};

/// An authenticated caller, checked against the database on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Survivor {
        device: Id,
    },
    Member {
        member: Id,
        org: Id,
        role: Role,
        device: Option<Id>,
    },
}

impl Caller {
    pub fn device(&self) -> Option<Id> {
        match self {
            Caller::Survivor { device } => Some(*device),
            Caller::Member { device, .. } => *device,
        }
    }
}

/// Verify an access token and that its subject still exists with the same token epoch
/// (wipe, hide, revocation and refresh reuse bump or remove it).
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller> {
    let verified = state
        .keys
        .verify(token, state.now())
        .ok_or_else(Error::unauthorized)?;
    caller_for(state, verified.subject, verified.epoch).await
}

/// The caller a credential for `subject` issued at token `epoch` stands for, if the subject
/// still exists with that epoch; `unauthorized` otherwise. Shared by access tokens and
/// stream tickets, so both are refused the moment a wipe, hide or revocation happens.
pub async fn caller_for(state: &AppState, subject: Subject, epoch: i64) -> Result<Caller> {
    match subject {
        Subject::Survivor { device } => {
            let row = state
                .store
                .device_auth(&device.0)
                .await?
                .ok_or_else(Error::unauthorized)?;
            if row.member_id.is_some() || row.token_epoch != epoch || row.hidden != 0 {
                return Err(Error::unauthorized());
            }
            Ok(Caller::Survivor { device })
        }
        Subject::Member { member, device } => {
            let row = state
                .store
                .member(&member.0)
                .await?
                .ok_or_else(Error::unauthorized)?;
            if row.revoked != 0 || row.password_hash.is_none() {
                return Err(Error::unauthorized());
            }
            let device_epoch = match device {
                Some(device) => {
                    let d = state
                        .store
                        .device_auth(&device.0)
                        .await?
                        .ok_or_else(Error::unauthorized)?;
                    if d.member_id.as_deref() != Some(&member.0[..]) {
                        return Err(Error::unauthorized());
                    }
                    // Seen this hour: keeps the device live for fan-out and culling. At most
                    // one write per device and hour.
                    let now_hour = crate::clock::hour(state.now());
                    if d.seen_hour.is_none_or(|h| h < now_hour) {
                        state.store.touch_member_device(&device.0, now_hour).await?;
                    }
                    Some(d.token_epoch)
                }
                None => None,
            };
            if member_epoch(row.token_epoch, device_epoch) != epoch {
                return Err(Error::unauthorized());
            }
            Ok(Caller::Member {
                member,
                org: to_id(&row.org_id)?,
                role: Role::parse(&row.role).ok_or_else(|| Error::internal("bad role"))?,
                device,
            })
        }
    }
}

/// The epoch a member's access token carries: the member's own epoch (bumped by revocation),
/// plus, for a token bound to one of the member's devices, that device's epoch (bumped when a
/// refresh token of that device's session is reused, and on logout). Both only ever grow, so
/// the sum changes whenever either does, and a bump of either ends the token.
pub fn member_epoch(member: i64, device: Option<i64>) -> i64 {
    member.saturating_add(device.unwrap_or(0))
}

/// The current token epoch of a member, bound to `device` if given.
pub async fn current_member_epoch(
    state: &AppState,
    member: i64,
    device: Option<Id>,
) -> Result<i64> {
    let device_epoch = match device {
        Some(d) => Some(
            state
                .store
                .device_auth(&d.0)
                .await?
                .ok_or_else(Error::unauthorized)?
                .token_epoch,
        ),
        None => None,
    };
    Ok(member_epoch(member, device_epoch))
}

/// Issue an access token and start (or continue) a refresh-token family.
pub async fn issue_tokens(
    state: &AppState,
    subject: Subject,
    epoch: i64,
    family: Option<Vec<u8>>,
) -> Result<TokenPair> {
    let now = state.now();
    let access_token = state
        .keys
        .issue(subject, epoch, now)
        .map_err(Error::internal)?;
    let refresh_token = crate::random::token();
    let family = family.unwrap_or_else(|| crate::random::bytes::<16>().to_vec());
    let (member, device) = match subject {
        Subject::Survivor { device } => (None, Some(device)),
        Subject::Member { member, device } => (Some(member), device),
    };
    state
        .store
        .insert_refresh(
            &crate::random::token_hash(&refresh_token),
            &family,
            member.as_ref().map(|m| &m.0[..]),
            device.as_ref().map(|d| &d.0[..]),
            crate::clock::expiry(now, state.config.refresh_token_ttl_secs),
        )
        .await?;
    Ok(TokenPair {
        access_token,
        expires_in: state.keys.ttl(),
        refresh_token,
    })
}

fn valid_handle(h: &str) -> bool {
    (1..=64).contains(&h.len())
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

pub fn check_handle(h: &str) -> Result<()> {
    if valid_handle(h) {
        Ok(())
    } else {
        Err(Error::bad_request())
    }
}

/// `POST /v1/auth/enroll`.
pub async fn enroll(state: &AppState, req: Enroll) -> Result<Enrolled> {
    let len = req.password.chars().count();
    if !(password::MIN_LENGTH..=password::MAX_LENGTH).contains(&len) || req.token.len() > 128 {
        return Err(Error::bad_request());
    }
    crate::service::limit_anonymous(state, AnonRoute::Enroll)?;
    // The token is checked before any argon2 work, so a caller without a valid invitation
    // costs one indexed read, not 19 MiB and tens of milliseconds.
    let token_hash = crate::random::token_hash(&req.token);
    if !state
        .store
        .enrolment_pending(&token_hash, state.now())
        .await?
    {
        return Err(Error::unauthorized());
    }
    let pw = req.password.clone();
    let hash = argon2(state, move || password::hash(&pw))
        .await?
        .map_err(Error::internal)?;
    let secret = totp::new_secret();
    let member = state
        .store
        .complete_enrolment(&token_hash, state.now(), &hash, &secret)
        .await?
        .ok_or_else(Error::unauthorized)?;
    let org = state
        .store
        .org_by_id(&member.org_id)
        .await?
        .ok_or_else(|| Error::internal("member without org"))?;
    Ok(Enrolled {
        member_id: to_id(&member.id)?,
        totp_uri: totp::uri(&secret, &org.name, &member.handle)
            .ok_or_else(|| Error::internal("totp uri"))?,
    })
}

/// Run argon2 work on the blocking pool, in one of the `argon2_concurrency` slots; when
/// `argon2_queue` callers already wait for one, `rate_limited` at once. This bounds the
/// memory argon2 can take (about 19 MiB per slot) however many requests arrive.
async fn argon2<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let Some(slot) = state.limits.argon2.acquire().await else {
        metrics::counter!("quietline_rate_limited_total", "route" => "argon2").increment(1);
        return Err(Error::new(ErrorCode::RateLimited));
    };
    let out = tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::internal)?;
    drop(slot);
    Ok(out)
}

/// `POST /v1/auth/login`.
///
/// Every failure gets the same answer, `unauthorized`, no sooner than
/// `login_answer_floor_ms` after the request arrived: an unknown handle, a revoked member, a
/// wrong password, a wrong or replayed code and a full attempt window all look alike, and
/// each costs one argon2 verification (against a decoy hash when there is no real one).
/// `rate_limited` comes only from the global login limit, which knows no handles.
///
/// Attempts are reserved before the password is checked, in one atomic update
/// ([`crate::store::Store::reserve_login_attempt`]): at most `login_failures_before_backoff`
/// attempts per member per `login_window_secs` are ever checked, however many arrive at
/// once. The window starts at its first attempt and is not extended by attempts made while
/// it is full, so a stranger who knows a handle can keep that member out for at most one
/// window at a time; a successful login empties it.
pub async fn login(state: &AppState, req: Login) -> Result<LoggedIn> {
    if req.org.len() > 64
        || req.handle.len() > 64
        || req.password.len() > password::MAX_LENGTH
        || req.totp.len() > 16
    {
        return Err(Error::bad_request());
    }
    crate::service::limit_anonymous(state, AnonRoute::Login)?;
    let started = tokio::time::Instant::now();
    let floor = std::time::Duration::from_millis(state.config.login_answer_floor_ms);
    match try_login(state, &req).await {
        Ok(Some(out)) => Ok(out),
        Ok(None) => {
            tokio::time::sleep_until(started + floor).await;
            Err(Error::unauthorized())
        }
        Err(e) if e.code == ErrorCode::RateLimited => Err(e),
        Err(e) => {
            tokio::time::sleep_until(started + floor).await;
            Err(e)
        }
    }
}

/// The login itself; `None` for every kind of refusal.
async fn try_login(state: &AppState, req: &Login) -> Result<Option<LoggedIn>> {
    let now = state.now();
    // A slot first, so a full argon2 queue refuses before an attempt is spent.
    let Some(slot) = state.limits.argon2.acquire().await else {
        metrics::counter!("quietline_rate_limited_total", "route" => "argon2").increment(1);
        return Err(Error::new(ErrorCode::RateLimited));
    };
    let member: Option<MemberRow> = state
        .store
        .reserve_login_attempt(
            &req.org,
            &req.handle,
            now,
            i64::from(state.config.login_failures_before_backoff),
            state.config.login_window_secs as i64,
        )
        .await?;
    let stored = member
        .as_ref()
        .and_then(|m| m.password_hash.clone())
        .unwrap_or_else(|| password::decoy().to_owned());
    let pw = req.password.clone();
    let password_ok = tokio::task::spawn_blocking(move || password::verify(&pw, &stored))
        .await
        .map_err(Error::internal)?;
    drop(slot);
    let Some(member) = member else {
        return Ok(None);
    };
    if member.revoked != 0 || member.password_hash.is_none() || !password_ok {
        return Ok(None);
    }
    let Some(step) = member
        .totp_secret
        .as_deref()
        .and_then(|s| totp::check(s, &req.totp, now))
    else {
        return Ok(None);
    };
    if !state.store.login_succeeded(&member.id, step).await? {
        return Ok(None); // a replayed TOTP code
    }
    let member_id = to_id(&member.id)?;
    if let Some(device) = req.device_id {
        let d = state.store.device_auth(&device.0).await?;
        if d.and_then(|d| d.member_id).as_deref() != Some(&member.id[..]) {
            return Ok(None);
        }
    }
    let role = Role::parse(&member.role).ok_or_else(|| Error::internal("bad role"))?;
    let epoch = current_member_epoch(state, member.token_epoch, req.device_id).await?;
    let tokens = issue_tokens(
        state,
        Subject::Member {
            member: member_id,
            device: req.device_id,
        },
        epoch,
        None,
    )
    .await?;
    Ok(Some(LoggedIn {
        member_id,
        role,
        tokens,
    }))
}

/// `POST /v1/auth/refresh`: rotate. A reused token revokes its whole family.
pub async fn refresh(state: &AppState, token: &str) -> Result<TokenPair> {
    if token.len() > 128 {
        return Err(Error::unauthorized());
    }
    let row = match state
        .store
        .use_refresh(&crate::random::token_hash(token), state.now())
        .await?
    {
        RefreshUse::Fresh(row) => row,
        RefreshUse::Reused(row) => {
            tracing::warn!("refresh token reused; its session was revoked");
            // The epoch bump already refuses the session's access tokens; live streams end now
            // too (on every replica), not at their next re-check.
            let devices = match (&row.device_id, &row.member_id) {
                (Some(d), _) => vec![d.clone()],
                (None, Some(m)) => state.store.member_devices(m).await?,
                (None, None) => Vec::new(),
            };
            let ids: Vec<Id> = devices.iter().filter_map(|d| Id::from_slice(d)).collect();
            crate::service::events::close_streams(state, &ids).await;
            return Err(Error::unauthorized());
        }
        RefreshUse::Unknown => return Err(Error::unauthorized()),
    };
    let (subject, epoch) = match (&row.member_id, &row.device_id) {
        (Some(member), device) => {
            let m = state
                .store
                .member(member)
                .await?
                .ok_or_else(Error::unauthorized)?;
            if m.revoked != 0 {
                return Err(Error::unauthorized());
            }
            let device = match device {
                Some(d) => Some(to_id(d)?),
                None => None,
            };
            (
                Subject::Member {
                    member: to_id(member)?,
                    device,
                },
                current_member_epoch(state, m.token_epoch, device).await?,
            )
        }
        (None, Some(device)) => {
            let d = state
                .store
                .device_auth(device)
                .await?
                .ok_or_else(Error::unauthorized)?;
            if d.hidden != 0 {
                return Err(Error::unauthorized());
            }
            (
                Subject::Survivor {
                    device: to_id(device)?,
                },
                d.token_epoch,
            )
        }
        (None, None) => return Err(Error::unauthorized()),
    };
    issue_tokens(state, subject, epoch, Some(row.family)).await
}

/// `POST /v1/auth/logout`: end the refresh-token family. When the session belongs to a
/// device, its token epoch is bumped too, so the session's access tokens and live streams
/// end now rather than at expiry. With `remove_device`, a browser session ends with its
/// device: keys, prekeys, push registration and pending envelopes go, and no further message
/// is encrypted to it.
pub async fn logout(state: &AppState, token: &str, remove_device: bool) -> Result<()> {
    if token.len() <= 128 {
        let hash = crate::random::token_hash(token);
        let owner = if remove_device {
            state.store.refresh_owner(&hash).await?
        } else {
            None
        };
        if let Some(device) = state.store.delete_refresh_family(&hash).await? {
            crate::service::events::close_streams(state, &[to_id(&device)?]).await;
        }
        if let Some((Some(member), Some(device))) = owner
            && state.store.delete_member_device(&member, &device).await?
        {
            crate::service::devices::close_streams(state, &[device]).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_short_and_plain() {
        assert!(valid_handle("alice.b-1"));
        assert!(!valid_handle("alice b"));
        assert!(!valid_handle(""));
    }

    #[test]
    fn a_bump_of_either_epoch_changes_a_member_device_token_epoch() {
        assert_ne!(member_epoch(3, Some(4)), member_epoch(3, Some(5)));
        assert_ne!(member_epoch(3, Some(4)), member_epoch(4, Some(4)));
        assert_eq!(member_epoch(3, None), 3);
    }
}
