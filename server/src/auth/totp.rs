//! TOTP (RFC 6238, SHA-1, 6 digits, 30 s) for member login. A code is accepted once: the
//! step it matched is returned so the store can refuse a replay.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

const STEP: u64 = 30;

fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<TOTP> {
    // ':' is not allowed in either label.
    let issuer = issuer.replace(':', " ");
    let account = account.replace(':', " ");
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        secret.to_vec(),
        Some(issuer),
        account,
    )
    .ok()
}

pub fn new_secret() -> Vec<u8> {
    crate::random::bytes::<20>().to_vec()
}

/// The `otpauth://` URI for an authenticator app.
pub fn uri(secret: &[u8], issuer: &str, account: &str) -> Option<String> {
    totp(secret, issuer, account).map(|t| t.get_url())
}

/// If `code` is valid at `now` (one step of skew either way), the step it matched.
pub fn check(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let t = totp(secret, "x", "x")?;
    let now = u64::try_from(now).ok()?;
    let mut matched = None;
    for time in [now.saturating_sub(STEP), now, now + STEP] {
        let expected = t.generate(time);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some((time / STEP) as i64);
        }
    }
    matched
}

/// The code for `now`: for tests and the admin CLI.
pub fn code_at(secret: &[u8], now: i64) -> Option<String> {
    totp(secret, "x", "x").map(|t| t.generate(now.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_current_code_and_refuses_others() {
        let s = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&s, now).unwrap();
        assert_eq!(check(&s, &code, now), Some(now / 30));
        assert!(check(&s, &code, now + 300).is_none());
        assert!(check(&s, "000000x", now).is_none());
        assert!(
            uri(&s, "Org: A", "alice")
                .unwrap()
                .starts_with("otpauth://totp/")
        );
    }
}
