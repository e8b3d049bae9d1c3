//! What a device trusts, and the checks that keep a malicious relay out of its conversations
//! (docs/CRYPTO.md, "Trust").
//!
//! The relay hands out every public key, so on its own word it could put its own keys in an
//! advocate's bundle, add its own device to a recipient list, or start a session claiming to
//! be someone it is not. The rules here refuse all of that:
//!
//! - A survivor's device pins its organisation's key (built into its client, or trusted on
//!   first use with the fingerprint shown) and follows key replacements only when each is
//!   signed by the key before it. A member device is a recipient, or a sender it accepts, only
//!   with a certificate signed by that key naming that device and its exact keys.
//! - A member's device pins its own organisation's key the same way, and the survivor device
//!   of each conversation at first contact: a conversation has exactly that one survivor
//!   device, with that one identity.
//! - Once a device id is pinned to an identity, another identity under that id is refused
//!   ([`Refusal::IdentityChanged`]) and shown, never silently replaced.
//!
//! The state here is saved with the device's other secrets (it is not secret, but it is what
//! the device decided to trust, and an attacker who could edit it could undo those decisions).

use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::keys::PublicIdentity;
use quietline_proto::trust::{self, CertificateBody, OrgPublicKey, TrustError};
use quietline_proto::wire::{Bundle, Certificate, OrgKeyChain};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a device, a bundle or a first message was refused. Each names a different attack, so
/// an application can say what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The device id was pinned to another identity: a substituted key.
    #[error("the identity of this device changed")]
    IdentityChanged,
    /// A member device without a certificate (a device the relay added on its own).
    #[error("the device has no certificate from the organisation")]
    Uncertified,
    /// A certificate that does not verify under the pinned organisation key, or is expired.
    #[error("the device certificate is not signed by the organisation key")]
    BadCertificate,
    /// A valid certificate for other keys or another device than the ones presented.
    #[error("the certificate does not match the device's keys")]
    CertificateMismatch,
    /// A second survivor device in a conversation that already has one.
    #[error("a conversation has one survivor device; this is another")]
    UnexpectedSurvivorDevice,
    /// The organisation's key chain does not lead from the pinned key (a replaced key not
    /// signed by the old one).
    #[error("the organisation key changed without a signed hand-over")]
    OrgKeyChanged,
    /// No organisation key is pinned for the conversation or this device's organisation.
    #[error("no organisation key is pinned")]
    NoOrgKey,
    /// The bundle's own signatures (identity binding, signed prekey) do not verify.
    #[error("the device's keys are not signed by it")]
    BadKeys,
    /// The relay answered with a conversation this device knows under another organisation.
    #[error("the relay named a known conversation under another organisation")]
    ConversationMismatch,
}

/// First-message (X3DH) runs remembered, to drop replays even after their session is gone.
const SEEN_BASE_KEYS: usize = 4096;

/// Ended conversations whose survivor device stays pinned on a member device, so that a
/// relay's "closed" event cannot free the conversation for another identity.
const CLOSED_REMEMBERED: usize = 4096;

/// A device identity pinned by this device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pinned {
    dh: Bytes,
    signing: Bytes,
    /// A member device: the organisation whose certificate it showed. A survivor device: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    /// A member device: when the newest certificate it showed expires (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
}

impl Pinned {
    fn matches(&self, identity: &PublicIdentity) -> bool {
        self.dh.as_slice() == identity.dh_key() && self.signing.as_slice() == identity.signing_key()
    }
}

/// Counters of things a malicious relay may be doing that cannot be refused outright.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustReport {
    /// Bundles that came without a one-time prekey. A relay that withholds them weakens the
    /// forward secrecy of first messages; a few are normal when a device runs out.
    pub bundles_without_one_time_prekey: u64,
    /// First messages to this device that used no one-time prekey while it still held some:
    /// the relay handed out bundles without them.
    pub first_messages_without_one_time_prekey: u64,
    /// Devices, bundles and first messages refused by the rules above.
    pub refused: u64,
    /// Organisation keys trusted on first use (no built-in pin).
    pub trusted_on_first_use: u64,
}

/// The trust decisions of one device; saved with its state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    /// This is a survivor's device (it talks to organisations), not a member's.
    #[serde(default)]
    pub(crate) survivor: bool,
    /// Organisation code -> pinned key (the newest this device verified).
    #[serde(default)]
    pub(crate) org_keys: BTreeMap<String, Bytes>,
    /// This device's own organisation (member devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) my_org: Option<String>,
    /// This member device's own certificate, sent inside its first messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) my_certificate: Option<Certificate>,
    /// Conversation -> organisation (survivor devices).
    #[serde(default)]
    pub(crate) conversation_org: BTreeMap<Id, String>,
    /// Conversation -> its survivor device (member devices).
    #[serde(default)]
    pub(crate) survivors: BTreeMap<Id, Id>,
    /// Device id -> the identity pinned for it.
    #[serde(default)]
    pub(crate) identities: BTreeMap<Id, Pinned>,
    #[serde(default)]
    pub(crate) report: TrustReport,
    /// Ephemeral keys of first messages this device answered (newest last).
    #[serde(default)]
    seen_base_keys: std::collections::VecDeque<Bytes>,
    /// Conversations that ended, oldest first; their survivor pins are kept for a while.
    #[serde(default)]
    closed: std::collections::VecDeque<Id>,
}

impl TrustState {
    /// The pinned key of `org`.
    pub fn org_key(&self, org: &str) -> Option<OrgPublicKey> {
        self.org_keys
            .get(org)
            .and_then(|k| OrgPublicKey::from_slice(k.as_slice()).ok())
    }

    /// Pin `key` for `org` (a built-in pin, or one confirmed out of band). Replaces an older
    /// pin: only call with a key the user or the shipped client vouches for.
    pub fn pin_org_key(&mut self, org: &str, key: &OrgPublicKey) {
        self.org_keys
            .insert(org.to_owned(), Bytes(key.as_bytes().to_vec()));
    }

    /// Follow `chain` from the pinned key of `org` (or trust its head on first use when
    /// nothing is pinned and `allow_first_use`) and pin the current key. Returns it.
    pub(crate) fn accept_chain(
        &mut self,
        org: &str,
        chain: &OrgKeyChain,
        allow_first_use: bool,
    ) -> Result<OrgPublicKey, Refusal> {
        let current = match self.org_key(org) {
            Some(pinned) => {
                trust::verify_chain(&pinned, org, chain).map_err(|_| Refusal::OrgKeyChanged)?
            }
            None if allow_first_use => {
                let head = trust::chain_head(org, chain).map_err(|_| Refusal::OrgKeyChanged)?;
                self.report.trusted_on_first_use += 1;
                head
            }
            None => return Err(Refusal::NoOrgKey),
        };
        self.pin_org_key(org, &current);
        Ok(current)
    }

    /// Check a certificate for `device` with `identity` under the pinned key of `org`.
    fn check_certificate(
        &self,
        org: &str,
        cert: Option<&Certificate>,
        device: Id,
        identity: &PublicIdentity,
        now: i64,
    ) -> Result<CertificateBody, Refusal> {
        let key = self.org_key(org).ok_or(Refusal::NoOrgKey)?;
        let cert = cert.ok_or(Refusal::Uncertified)?;
        let body = key
            .verify_certificate(cert, org, now)
            .map_err(|e| match e {
                TrustError::KeyMismatch => Refusal::CertificateMismatch,
                _ => Refusal::BadCertificate,
            })?;
        if body.device_id != device
            || &body.identity_key != identity.dh_key()
            || &body.signing_key != identity.signing_key()
        {
            return Err(Refusal::CertificateMismatch);
        }
        Ok(body)
    }

    /// Pin `identity` for `device`, or check it against the one pinned.
    fn pin_identity(
        &mut self,
        device: Id,
        identity: &PublicIdentity,
        certified: Option<(&str, i64)>,
    ) -> Result<(), Refusal> {
        match self.identities.get_mut(&device) {
            Some(p) if p.matches(identity) => {
                if let Some((_, until)) = certified {
                    p.until = Some(p.until.map_or(until, |u| u.max(until)));
                }
                Ok(())
            }
            Some(_) => Err(Refusal::IdentityChanged),
            None => {
                self.identities.insert(
                    device,
                    Pinned {
                        dh: Bytes(identity.dh_key().to_vec()),
                        signing: Bytes(identity.signing_key().to_vec()),
                        org: certified.map(|(org, _)| org.to_owned()),
                        until: certified.map(|(_, until)| until),
                    },
                );
                Ok(())
            }
        }
    }

    /// May this device keep encrypting to `device` on the strength of what it pinned? A
    /// survivor device: yes. A member device: only while the newest certificate it showed is
    /// valid; after that its bundle (with a renewed certificate) must be checked again.
    pub(crate) fn certificate_current(&self, device: Id, now: i64) -> bool {
        match self.identities.get(&device) {
            Some(p) if p.org.is_none() => true,
            Some(p) => p.until.is_some_and(|u| now <= u),
            None => false,
        }
    }

    /// Has this device already answered a first message with this X3DH ephemeral key?
    pub(crate) fn seen_base_key(&self, ephemeral: &[u8; 32]) -> bool {
        self.seen_base_keys
            .iter()
            .any(|k| k.as_slice() == ephemeral)
    }

    pub(crate) fn remember_base_key(&mut self, ephemeral: [u8; 32]) {
        self.seen_base_keys.push_back(Bytes(ephemeral.to_vec()));
        while self.seen_base_keys.len() > SEEN_BASE_KEYS {
            self.seen_base_keys.pop_front();
        }
    }

    /// Does this member device's own certificate expire by `t` (or is there none)?
    pub(crate) fn own_certificate_expires_by(&self, t: i64) -> bool {
        match &self.my_certificate {
            Some(c) => {
                CertificateBody::decode(c.body.as_slice()).map_or(true, |b| b.not_after <= t)
            }
            None => true,
        }
    }

    /// The identity pinned for `device`.
    pub fn pinned_identity(&self, device: Id) -> Option<PublicIdentity> {
        let p = self.identities.get(&device)?;
        PublicIdentity::from_slices(p.dh.as_slice(), p.signing.as_slice()).ok()
    }

    /// Check this member device's own certificate before using it: issued under the pinned
    /// key of its organisation, for this device and its keys, valid now.
    pub(crate) fn check_own_certificate(
        &self,
        cert: &Certificate,
        me: Id,
        identity: &PublicIdentity,
        now: i64,
    ) -> Result<(), Refusal> {
        let org = self.my_org.as_deref().ok_or(Refusal::NoOrgKey)?;
        self.check_certificate(org, Some(cert), me, identity, now)
            .map(|_| ())
    }

    /// Is `identity` the one pinned for `device` (when one is)?
    pub(crate) fn check_pinned(
        &self,
        device: Id,
        identity: &PublicIdentity,
    ) -> Result<(), Refusal> {
        match self.identities.get(&device) {
            Some(p) if !p.matches(identity) => Err(Refusal::IdentityChanged),
            _ => Ok(()),
        }
    }

    /// The identity in a bundle, with its own signatures checked.
    pub(crate) fn bundle_identity(bundle: &Bundle) -> Result<PublicIdentity, Refusal> {
        PublicIdentity::from_signed(
            bundle.identity_key.as_slice(),
            bundle.signing_key.as_slice(),
            bundle.identity_signature.as_slice(),
        )
        .map_err(|_| Refusal::BadKeys)
    }

    /// Decide whether this device may encrypt to the device of `bundle` in `conversation`.
    ///
    /// `survivor_side`: this device is a survivor's, talking to the organisation `org` of
    /// the conversation: the bundle must be a certified member device of it. Otherwise this
    /// device is a member's: the bundle is either a certified device of its own organisation
    /// or the conversation's one survivor device (pinned here at first contact).
    pub(crate) fn admit_bundle(
        &mut self,
        conversation: Id,
        bundle: &Bundle,
        survivor_side: bool,
        now: i64,
    ) -> Result<(), Refusal> {
        let identity = Self::bundle_identity(bundle)?;
        self.check_pinned(bundle.device_id, &identity)?;
        if survivor_side {
            let org = self
                .conversation_org
                .get(&conversation)
                .cloned()
                .ok_or(Refusal::NoOrgKey)?;
            let body = self.check_certificate(
                &org,
                bundle.certificate.as_ref(),
                bundle.device_id,
                &identity,
                now,
            )?;
            return self.pin_identity(bundle.device_id, &identity, Some((&org, body.not_after)));
        }
        let org = self.my_org.clone().ok_or(Refusal::NoOrgKey)?;
        match &bundle.certificate {
            Some(_) => {
                let body = self.check_certificate(
                    &org,
                    bundle.certificate.as_ref(),
                    bundle.device_id,
                    &identity,
                    now,
                )?;
                self.pin_identity(bundle.device_id, &identity, Some((&org, body.not_after)))
            }
            None => self.admit_survivor(conversation, bundle.device_id, &identity),
        }
    }

    /// The member side's rule for the survivor device of `conversation`: the first one seen
    /// is pinned; any other device without a certificate is refused.
    fn admit_survivor(
        &mut self,
        conversation: Id,
        device: Id,
        identity: &PublicIdentity,
    ) -> Result<(), Refusal> {
        // A device pinned as a member's (it showed a certificate) is never a survivor.
        if self
            .identities
            .get(&device)
            .is_some_and(|p| p.org.is_some())
        {
            return Err(Refusal::UnexpectedSurvivorDevice);
        }
        match self.survivors.get(&conversation) {
            Some(d) if *d != device => Err(Refusal::UnexpectedSurvivorDevice),
            _ => {
                self.pin_identity(device, identity, None)?;
                self.survivors.insert(conversation, device);
                Ok(())
            }
        }
    }

    /// Decide whether to accept a first message in `conversation` from `from` with the
    /// authenticated sender `identity` and the certificate it carried.
    pub(crate) fn admit_sender(
        &mut self,
        conversation: Id,
        from: Id,
        identity: &PublicIdentity,
        cert: Option<&Certificate>,
        survivor_side: bool,
        now: i64,
    ) -> Result<(), Refusal> {
        self.check_pinned(from, identity)?;
        if survivor_side {
            let org = self
                .conversation_org
                .get(&conversation)
                .cloned()
                .ok_or(Refusal::NoOrgKey)?;
            let body = self.check_certificate(&org, cert, from, identity, now)?;
            return self.pin_identity(from, identity, Some((&org, body.not_after)));
        }
        match cert {
            Some(_) => {
                let org = self.my_org.clone().ok_or(Refusal::NoOrgKey)?;
                let body = self.check_certificate(&org, cert, from, identity, now)?;
                self.pin_identity(from, identity, Some((&org, body.not_after)))
            }
            None => self.admit_survivor(conversation, from, identity),
        }
    }

    /// A conversation ended (closed, purged, or so the relay says). The survivor side forgets
    /// which organisation it was with: nothing more may arrive in it. The member side keeps
    /// the conversation's survivor device and its identity pinned for the last
    /// [`CLOSED_REMEMBERED`] ended conversations, so a relay that announces a close cannot
    /// then slip in another identity under that device or another survivor device; a
    /// reopened conversation carries on with the same pinned device.
    pub(crate) fn forget_conversation(&mut self, conversation: Id) {
        self.conversation_org.remove(&conversation);
        if self.survivors.contains_key(&conversation) && !self.closed.contains(&conversation) {
            self.closed.push_back(conversation);
        }
        while self.closed.len() > CLOSED_REMEMBERED {
            let Some(old) = self.closed.pop_front() else {
                break;
            };
            if let Some(device) = self.survivors.remove(&old)
                && !self.survivors.values().any(|d| *d == device)
                && self
                    .identities
                    .get(&device)
                    .is_some_and(|p| p.org.is_none())
            {
                self.identities.remove(&device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quietline_proto::crypto::keys::DeviceSecrets;

    fn identity() -> PublicIdentity {
        DeviceSecrets::generate().unwrap().0.identity().public()
    }

    #[test]
    fn a_device_pinned_as_a_members_is_never_taken_for_a_survivor() {
        let mut t = TrustState::default();
        let colleague = Id([1; 16]);
        let id = identity();
        t.pin_identity(colleague, &id, Some(("hotline", 100)))
            .unwrap();
        assert_eq!(
            t.admit_sender(Id([9; 16]), colleague, &id, None, false, 0),
            Err(Refusal::UnexpectedSurvivorDevice)
        );
    }

    #[test]
    fn an_ended_conversation_keeps_its_survivor_pinned_for_a_while() {
        let mut t = TrustState::default();
        let (conv, survivor, id) = (Id([2; 16]), Id([3; 16]), identity());
        t.admit_sender(conv, survivor, &id, None, false, 0).unwrap();
        t.forget_conversation(conv);
        assert_eq!(
            t.admit_sender(conv, survivor, &identity(), None, false, 0),
            Err(Refusal::IdentityChanged)
        );
        assert_eq!(
            t.admit_sender(conv, Id([4; 16]), &identity(), None, false, 0),
            Err(Refusal::UnexpectedSurvivorDevice)
        );
        // The same survivor identity may come back (a reopened conversation).
        assert_eq!(t.admit_sender(conv, survivor, &id, None, false, 0), Ok(()));
        // Only the most recent ended conversations are remembered.
        for i in 0..=CLOSED_REMEMBERED {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&(i as u64 + 100).to_le_bytes());
            let (c, d) = (
                Id(b),
                Id({
                    let mut x = b;
                    x[15] = 1;
                    x
                }),
            );
            t.admit_sender(c, d, &identity(), None, false, 0).unwrap();
            t.forget_conversation(c);
        }
        assert!(t.survivors.len() <= CLOSED_REMEMBERED + 1);
        assert!(t.identities.len() <= CLOSED_REMEMBERED + 2);
    }

    #[test]
    fn answered_first_messages_are_remembered_and_bounded() {
        let mut t = TrustState::default();
        t.remember_base_key([5; 32]);
        assert!(t.seen_base_key(&[5; 32]));
        assert!(!t.seen_base_key(&[6; 32]));
        for i in 0..SEEN_BASE_KEYS {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            k[31] = 9;
            t.remember_base_key(k);
        }
        assert!(!t.seen_base_key(&[5; 32]), "the oldest is forgotten first");
        assert_eq!(t.seen_base_keys.len(), SEEN_BASE_KEYS);
    }
}
