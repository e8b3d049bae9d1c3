//! Short-lived access tokens: HS256 JWTs with a key id, so the signing secret can rotate
//! (`jwt_previous_secrets` keeps old ones valid for verification).
//!
//! The token says who (a survivor device, or a member and optionally their device) and
//! carries the subject's token epoch; every request also checks the epoch against the
//! database, so a wipe, hide, revocation or refresh-token reuse kills tokens at once
//! (docs/THREAT_MODEL.md, invariant 4). Expiry is checked against the injectable clock.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use quietline_proto::Id;
use serde::{Deserialize, Serialize};
use sha2::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A survivor's device.
    Survivor { device: Id },
    /// A member, signed in from one of their devices or (before registering one) none.
    Member { member: Id, device: Option<Id> },
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Subject id: the device (typ "d") or the member (typ "m").
    sub: String,
    typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dev: Option<String>,
    /// Token epoch of the subject when issued.
    ep: i64,
    iat: i64,
    exp: i64,
}

/// A verified token: who, the epoch it was issued at, and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub subject: Subject,
    pub epoch: i64,
    /// Unix seconds (on the server's clock) from which the token is refused.
    pub expires_at: i64,
}

pub struct Keys {
    kid: String,
    encoding: EncodingKey,
    decoding: Vec<(String, DecodingKey)>,
    ttl: i64,
}

fn kid(secret: &[u8]) -> String {
    let d = sha2::Sha256::digest(secret);
    d[..6].iter().map(|b| format!("{b:02x}")).collect()
}

impl Keys {
    pub fn new(
        secret: &[u8],
        previous: &[&[u8]],
        ttl_secs: u64,
    ) -> Result<Keys, jsonwebtoken::errors::Error> {
        let mut decoding = vec![(kid(secret), DecodingKey::from_secret(secret)?)];
        for p in previous {
            decoding.push((kid(p), DecodingKey::from_secret(p)?));
        }
        Ok(Keys {
            kid: kid(secret),
            encoding: EncodingKey::from_secret(secret)?,
            decoding,
            ttl: ttl_secs.min(i64::MAX as u64) as i64,
        })
    }

    pub fn ttl(&self) -> u64 {
        self.ttl as u64
    }

    pub fn issue(
        &self,
        subject: Subject,
        epoch: i64,
        now: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let (sub, typ, dev) = match subject {
            Subject::Survivor { device } => (device.to_string(), "d", None),
            Subject::Member { member, device } => {
                (member.to_string(), "m", device.map(|d| d.to_string()))
            }
        };
        let claims = Claims {
            sub,
            typ: typ.into(),
            dev,
            ep: epoch,
            iat: now,
            exp: now.saturating_add(self.ttl),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }

    /// Verify signature, key id and expiry (against `now`). `None` for anything invalid.
    pub fn verify(&self, token: &str, now: i64) -> Option<Verified> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::HS256 {
            return None;
        }
        let kid = header.kid?;
        let (_, key) = self.decoding.iter().find(|(k, _)| *k == kid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false; // checked below against the injectable clock
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).ok()?;
        let c = data.claims;
        if c.exp <= now {
            return None;
        }
        let subject = match c.typ.as_str() {
            "d" if c.dev.is_none() => Subject::Survivor {
                device: c.sub.parse().ok()?,
            },
            "m" => Subject::Member {
                member: c.sub.parse().ok()?,
                device: match c.dev {
                    Some(d) => Some(d.parse().ok()?),
                    None => None,
                },
            },
            _ => return None,
        };
        Some(Verified {
            subject,
            epoch: c.ep,
            expires_at: c.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_and_verifies_and_refuses_expired_forged_and_unknown_keys() {
        let keys = Keys::new(&[1; 32], &[], 300).unwrap();
        let sub = Subject::Survivor {
            device: Id([9; 16]),
        };
        let t = keys.issue(sub, 3, 1000).unwrap();
        assert_eq!(
            keys.verify(&t, 1000),
            Some(Verified {
                subject: sub,
                epoch: 3,
                expires_at: 1300,
            })
        );
        assert_eq!(keys.verify(&t, 1300), None, "expired");
        let other = Keys::new(&[2; 32], &[], 300).unwrap();
        assert_eq!(other.verify(&t, 1000), None, "other secret");
        let mut forged = t.clone();
        forged.pop();
        forged.push('A');
        assert_eq!(keys.verify(&forged, 1000), None);
        assert_eq!(keys.verify("not.a.token", 1000), None);
    }

    #[test]
    fn previous_secret_still_verifies_after_rotation() {
        let old = Keys::new(&[1; 32], &[], 300).unwrap();
        let t = old
            .issue(
                Subject::Member {
                    member: Id([1; 16]),
                    device: None,
                },
                0,
                10,
            )
            .unwrap();
        let rotated = Keys::new(&[2; 32], &[&[1; 32]], 300).unwrap();
        assert!(rotated.verify(&t, 11).is_some());
        let new = rotated
            .issue(
                Subject::Member {
                    member: Id([1; 16]),
                    device: Some(Id([2; 16])),
                },
                0,
                10,
            )
            .unwrap();
        assert!(old.verify(&new, 11).is_none());
    }
}
