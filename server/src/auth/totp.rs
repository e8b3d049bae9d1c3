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

    /// The RFC 6238 appendix B secret, so the expected codes are known answers.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_the_rfc_6238_vectors() {
        // The RFC lists 8 digits; ours are the last 6.
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t).unwrap(), code, "t={t}");
            assert_eq!(check(RFC_SECRET, code, t), Some(t / 30), "t={t}");
        }
    }

    #[test]
    fn accepts_current_code_and_refuses_others() {
        let s = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&s, now).unwrap();
        assert_eq!(check(&s, &code, now), Some(now / 30));
        assert!(check(&s, &code, now + 300).is_none());
        assert!(check(&s, "000000x", now).is_none());
        assert!(check(&s, "", now).is_none());
        assert!(
            uri(&s, "Org: A", "alice")
                .unwrap()
                .starts_with("otpauth://totp/")
        );
    }

    #[test]
    fn a_wrong_six_digit_code_is_refused() {
        // At t=59 the codes of the steps around it are 287082's neighbours; none is 287083.
        let t = 59;
        for near in [t - 30, t, t + 30] {
            assert_ne!(code_at(RFC_SECRET, near).unwrap(), "287083");
        }
        assert!(check(RFC_SECRET, "287083", t).is_none());
        assert!(check(RFC_SECRET, "000000", t).is_none());
        assert!(check(RFC_SECRET, "2870820", t).is_none());
        assert!(check(RFC_SECRET, "28708", t).is_none());
    }

    #[test]
    fn one_step_of_skew_is_accepted_and_two_are_not() {
        // `start` is the first second of step k.
        let start = 1_800_000_000;
        let k = start / 30;
        let code = code_at(RFC_SECRET, start).unwrap();
        // The code of step k, checked from step k+1 (clock ahead): first and last second.
        assert_eq!(check(RFC_SECRET, &code, start + 30), Some(k));
        assert_eq!(check(RFC_SECRET, &code, start + 59), Some(k));
        // From step k+2: refused.
        assert!(check(RFC_SECRET, &code, start + 60).is_none());
        // Checked from step k-1 (clock behind): first and last second.
        assert_eq!(check(RFC_SECRET, &code, start - 30), Some(k));
        assert_eq!(check(RFC_SECRET, &code, start - 1), Some(k));
        // From step k-2: refused.
        assert!(check(RFC_SECRET, &code, start - 31).is_none());
        // The last second of step k still matches step k itself.
        assert_eq!(check(RFC_SECRET, &code, start + 29), Some(k));
    }
}
