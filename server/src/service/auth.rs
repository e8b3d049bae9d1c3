//! Who is calling, and member sign-in: enrolment, login with password + TOTP and back-off,
//! refresh-token rotation with reuse detection, logout.

use crate::app::AppState;
use crate::auth::jwt::Subject;
use crate::auth::{password, totp};
use crate::error::{Error, Result};
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
            if row.revoked != 0 || row.token_epoch != epoch || row.password_hash.is_none() {
                return Err(Error::unauthorized());
            }
            if let Some(device) = device {
                let d = state
                    .store
                    .device_auth(&device.0)
                    .await?
                    .ok_or_else(Error::unauthorized)?;
                if d.member_id.as_deref() != Some(&member.0[..]) {
                    return Err(Error::unauthorized());
                }
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
            now + state.config.refresh_token_ttl_secs as i64,
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
    let pw = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)?;
    let secret = totp::new_secret();
    let member = state
        .store
        .complete_enrolment(
            &crate::random::token_hash(&req.token),
            state.now(),
            &hash,
            &secret,
        )
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

/// Back-off after repeated failures: doubling from 1 s, capped at 15 minutes.
fn backoff(failures: i64, allowed: i64) -> i64 {
    let over = (failures + 1 - allowed).max(0);
    if over == 0 {
        0
    } else {
        (1i64 << over.min(10)).min(900)
    }
}

/// `POST /v1/auth/login`. Unknown handle, wrong password, wrong code and back-off all get
/// the same answer; an unknown handle still costs one argon2 verification.
pub async fn login(state: &AppState, req: Login) -> Result<LoggedIn> {
    if req.org.len() > 64
        || req.handle.len() > 64
        || req.password.len() > password::MAX_LENGTH
        || req.totp.len() > 16
    {
        return Err(Error::bad_request());
    }
    let now = state.now();
    let member: Option<MemberRow> = state.store.member_by_handle(&req.org, &req.handle).await?;
    let stored = member
        .as_ref()
        .and_then(|m| m.password_hash.clone())
        .unwrap_or_else(|| password::decoy().to_owned());
    let pw = req.password.clone();
    let password_ok = tokio::task::spawn_blocking(move || password::verify(&pw, &stored))
        .await
        .map_err(Error::internal)?;
    let Some(member) = member else {
        return Err(Error::unauthorized());
    };
    if member.revoked != 0 || member.password_hash.is_none() {
        return Err(Error::unauthorized());
    }
    if member.locked_until > now {
        return Err(Error::new(ErrorCode::RateLimited));
    }
    let step = member
        .totp_secret
        .as_deref()
        .and_then(|s| totp::check(s, &req.totp, now));
    let allowed = i64::from(state.config.login_failures_before_backoff);
    let (true, Some(step)) = (password_ok, step) else {
        let wait = backoff(member.failed_logins, allowed);
        state.store.login_failed(&member.id, now + wait).await?;
        return Err(Error::unauthorized());
    };
    if !state.store.login_succeeded(&member.id, step).await? {
        return Err(Error::unauthorized()); // a replayed TOTP code
    }
    let member_id = to_id(&member.id)?;
    if let Some(device) = req.device_id {
        let d = state.store.device_auth(&device.0).await?;
        if d.and_then(|d| d.member_id).as_deref() != Some(&member.id[..]) {
            return Err(Error::unauthorized());
        }
    }
    let role = Role::parse(&member.role).ok_or_else(|| Error::internal("bad role"))?;
    let tokens = issue_tokens(
        state,
        Subject::Member {
            member: member_id,
            device: req.device_id,
        },
        member.token_epoch,
        None,
    )
    .await?;
    Ok(LoggedIn {
        member_id,
        role,
        tokens,
    })
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
        RefreshUse::Reused => {
            tracing::warn!("refresh token reused; its session was revoked");
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
                m.token_epoch,
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

/// `POST /v1/auth/logout`: end the refresh-token family.
pub async fn logout(state: &AppState, token: &str) -> Result<()> {
    if token.len() <= 128 {
        state
            .store
            .delete_refresh_family(&crate::random::token_hash(token))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_after_the_allowance_and_is_capped() {
        assert_eq!(backoff(0, 5), 0);
        assert_eq!(backoff(3, 5), 0);
        assert_eq!(backoff(4, 5), 0);
        assert_eq!(backoff(5, 5), 2);
        assert_eq!(backoff(6, 5), 4);
        assert_eq!(backoff(60, 5), 900);
        assert!(valid_handle("alice.b-1"));
        assert!(!valid_handle("alice b"));
        assert!(!valid_handle(""));
    }
}
