//! The encrypting client: one device's secrets and sessions on top of [`Api`].
//!
//! [`SecureClient`] encrypts each message separately to every recipient device of a
//! conversation (fan-out over pairwise sessions, docs/CRYPTO.md), opening sessions from
//! bundles where it has none; retries with the relay's list when it answers `409
//! stale_recipients`; decrypts incoming envelopes, creating responder sessions from first
//! messages; drops duplicates by envelope id (delivery is at least once); and acknowledges
//! an envelope only after it is processed and the state is saved. The relay sees only
//! padded ciphertext (docs/THREAT_MODEL.md, invariant 1).
//!
//! Ordering rules that keep keys safe across crashes: the state is saved *after* a ratchet
//! step and *before* the ciphertext leaves the device (no message key is ever used twice),
//! and *before* an envelope is acknowledged. A rotated refresh token is saved at once, since
//! presenting the old one again would revoke the whole token family.

use crate::api::{Api, ExitMode, Token, random_id};
use crate::error::{Error, Result};
use crate::message::{Body, PAYLOAD_VERSION, Payload};
use crate::state::{DeviceState, StateFile};
use crate::stream::Stream;
use crate::trust::{Refusal, TrustReport};
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::CryptoError;
use quietline_proto::crypto::OsRandom;
use quietline_proto::crypto::envelope;
use quietline_proto::crypto::keys::{
    DeviceSecrets, PublicIdentity, SIGNED_PREKEY_GRACE_SECS, conversation_safety_number,
    safety_number,
};
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::x3dh;
use quietline_proto::trust::OrgPublicKey;
use quietline_proto::wire::{
    self, ConversationOpened, Event, EventKind, OpenConversation, OutgoingEnvelope, SendMessage,
    ServerFrame, TokenPair,
};
use quietline_proto::{ErrorBody, Id};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How many times a send is retried after `409 stale_recipients`.
const SEND_ATTEMPTS: usize = 4;

/// The longest access-token lifetime the client believes, whatever the relay says.
const MAX_ACCESS_LIFETIME_SECS: u64 = 86_400;

/// Most devices a recipient list (or a 409 answer) may name; a longer one is refused.
const MAX_RECIPIENTS: usize = 64;

/// Refresh the access token when it has less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// A decrypted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The envelope (message) id.
    pub id: Id,
    pub conversation_id: Id,
    /// The sending device, as the authenticated plaintext says.
    pub from: Id,
    pub body: Body,
}

impl Received {
    pub fn text(&self) -> Option<&str> {
        self.body.as_text()
    }
}

/// What [`SecureClient::poll`] and [`SecureClient::next`] hand back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    Message(Received),
    /// A workflow or safety event from the relay (never message content).
    Event(Event),
    /// An envelope that could not be decrypted (tampered, for a lost session, or a first
    /// message naming a prekey this device no longer holds). It is acknowledged, so it does
    /// not come back.
    Undecryptable {
        id: Id,
        conversation_id: Id,
        error: CryptoError,
    },
    /// A first message that decrypted but whose sender this device does not trust: a
    /// changed identity, a member device without a valid certificate, a second survivor
    /// device. Its content is dropped unread and it is acknowledged. An application shows
    /// this as a warning (docs/CRYPTO.md, "Trust").
    Refused {
        id: Id,
        conversation_id: Id,
        reason: Refusal,
    },
}

/// Why an envelope did not open.
enum OpenError {
    Crypto(CryptoError),
    Refused(Refusal),
}

impl From<CryptoError> for OpenError {
    fn from(e: CryptoError) -> Self {
        OpenError::Crypto(e)
    }
}

/// The time source of the client, in Unix seconds (tests move it).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn system_clock() -> Clock {
    Arc::new(|| i64::try_from(unix_now()).unwrap_or(i64::MAX))
}

/// One-time prekeys a device keeps on the relay: below the first, it tops up to the second.
pub const ONE_TIME_PREKEYS_LOW: u32 = 20;
pub const ONE_TIME_PREKEYS_TARGET: u32 = 100;

/// The result of a send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub message_id: Id,
    /// The devices the message was encrypted to.
    pub devices: Vec<Id>,
    /// Envelopes the relay holds durably.
    pub accepted: u32,
}

/// One device's end-to-end encrypted view of the relay.
pub struct SecureClient {
    relay: Api,
    api: Api,
    state: DeviceState,
    file: Option<StateFile>,
    access_expires: Option<Instant>,
    recipients: HashMap<Id, Vec<Id>>,
    clock: Clock,
}

impl std::fmt::Debug for SecureClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureClient")
            .field("relay", &self.relay.base_url())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SecureClient {
    // ------------------------------------------------------------ creation

    /// Register a new anonymous survivor device on the relay (keys generated here,
    /// proof-of-work solved) and return its client. `relay` needs no token.
    pub async fn register_survivor(relay: &Api) -> Result<SecureClient> {
        let (secrets, keys) = DeviceSecrets::generate_at(unix_now())?;
        let reg = relay.register_survivor(keys).await?;
        Ok(Self::from_registration(relay, secrets, reg))
    }

    /// Register a new device for the member whose access token `member` holds (from
    /// [`Api::login`]) and return its client, holding the device-bound tokens.
    pub async fn register_member_device(member: &Api) -> Result<SecureClient> {
        let (secrets, keys) = DeviceSecrets::generate_at(unix_now())?;
        let reg = member.register_member_device(keys).await?;
        Ok(Self::from_registration(member, secrets, reg))
    }

    fn from_registration(
        relay: &Api,
        secrets: DeviceSecrets,
        reg: wire::DeviceRegistered,
    ) -> SecureClient {
        let mut state = DeviceState::new(
            reg.device_id,
            secrets,
            Some(Token::new(reg.tokens.refresh_token.as_str())),
            reg.exit_token.as_deref().map(Token::new),
        );
        state.trust.survivor = reg.exit_token.is_some();
        let mut client = SecureClient::resume(relay, state, None);
        client.set_tokens(&reg.tokens);
        client
    }

    /// A client for a device whose state was kept. With no `access_token`, the first call
    /// refreshes with the stored refresh token.
    pub fn resume(relay: &Api, state: DeviceState, access_token: Option<Token>) -> SecureClient {
        let relay = relay.without_token();
        let api = match &access_token {
            Some(t) => relay.with_token(t.clone()),
            None => relay.clone(),
        };
        SecureClient {
            relay,
            api,
            state,
            file: None,
            access_expires: access_token.map(|_| Instant::now() + REFRESH_MARGIN * 2),
            recipients: HashMap::new(),
            clock: system_clock(),
        }
    }

    /// Load a device's state from its sealed file; later changes are saved there.
    pub fn load(relay: &Api, file: StateFile) -> Result<SecureClient> {
        let state = file.load()?;
        let mut client = SecureClient::resume(relay, state, None);
        client.file = Some(file);
        Ok(client)
    }

    /// Keep the state in `file` from now on (saved at once, then after every change).
    pub fn persist_to(&mut self, file: StateFile) -> Result<()> {
        file.save(&self.state)?;
        self.file = Some(file);
        Ok(())
    }

    /// Save the state now, if it has a file.
    pub fn save(&self) -> Result<()> {
        match &self.file {
            Some(f) => f.save(&self.state),
            None => Ok(()),
        }
    }

    // ------------------------------------------------------------ accessors

    pub fn device_id(&self) -> Id {
        self.state.device_id()
    }

    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    /// The device's token for `POST /v1/exit` (survivor devices only).
    pub fn exit_token(&self) -> Option<&Token> {
        self.state.exit_token.as_ref()
    }

    /// This device's public identity.
    pub fn identity(&self) -> PublicIdentity {
        self.state.secrets.identity().public()
    }

    /// The safety numbers of this device with each peer device in `conversation`, for
    /// comparison out of band (docs/THREAT_MODEL.md, abuser posing as advocate).
    pub fn safety_numbers(&self, conversation: Id) -> Vec<(Id, String)> {
        let me = self.identity();
        self.state
            .session_devices(conversation)
            .into_iter()
            .filter_map(|d| {
                let s = self.state.sessions.get(&(conversation, d))?.first()?;
                Some((d, safety_number(&me, s.peer_identity())))
            })
            .collect()
    }

    /// The safety number of a conversation: the organisation key's fingerprint and the
    /// survivor device's, 60 digits. The survivor and every advocate of the organisation
    /// see the same number, and it stays the same across transfers and new advocate devices
    /// (docs/CRYPTO.md, "Safety numbers"). `None` until both are known here.
    pub fn conversation_safety_number(&self, conversation: Id) -> Option<String> {
        let trust = &self.state.trust;
        if trust.survivor {
            let org = trust.conversation_org.get(&conversation)?;
            Some(conversation_safety_number(
                &trust.org_key(org)?,
                &self.identity(),
            ))
        } else {
            let org = trust.org_key(trust.my_org.as_deref()?)?;
            let device = trust.survivors.get(&conversation)?;
            let identity = trust.pinned_identity(*device)?;
            Some(conversation_safety_number(&org, &identity))
        }
    }

    /// Use `clock` (Unix seconds) for certificate validity, key rotation and the expiry of
    /// skipped message keys instead of the system clock.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Counters of what a relay may be doing that cannot be refused outright.
    pub fn trust_report(&self) -> TrustReport {
        self.state.trust.report
    }

    /// Pin `key` as the key of organisation `org` (from the organisation's own client build
    /// or its published fingerprint). Keys the relay serves later must chain to it.
    pub fn pin_org_key(&mut self, org: &str, key: &OrgPublicKey) -> Result<()> {
        self.state.trust.pin_org_key(org, key);
        self.save()
    }

    /// The pinned key of `org`, whose fingerprint an application shows.
    pub fn org_key(&self, org: &str) -> Option<OrgPublicKey> {
        self.state.trust.org_key(org)
    }

    /// Fetch `org`'s key chain and follow it from the pinned key; with none pinned, trust
    /// the current key on first use (counted in [`TrustReport::trusted_on_first_use`]; show
    /// its fingerprint). [`Error::Untrusted`] with [`Refusal::OrgKeyChanged`] when the chain
    /// does not lead from the pinned key.
    pub async fn verify_org_key(&mut self, org: &str) -> Result<OrgPublicKey> {
        let chain = self.relay.org_key(org).await?;
        let key = self
            .state
            .trust
            .accept_chain(org, &chain, true)
            .map_err(|r| refused(self.state.device_id, r))?;
        self.save()?;
        Ok(key)
    }

    /// For a member device: adopt `org` as this device's organisation (verifying its key as
    /// [`SecureClient::verify_org_key`] does) and fetch this device's certificate if a
    /// supervisor has made one. Returns whether the device is certified.
    pub async fn join_org(&mut self, org: &str) -> Result<bool> {
        self.verify_org_key(org).await?;
        self.state.trust.my_org = Some(org.to_owned());
        self.save()?;
        self.refresh_certificate().await
    }

    /// Fetch this member device's certificate and keep it if it is valid for this device's
    /// own keys under the pinned organisation key. Returns whether it has one.
    pub async fn refresh_certificate(&mut self) -> Result<bool> {
        let cert = match self.api().await?.my_certificate().await {
            Ok(c) => c,
            Err(e) if e.is(quietline_proto::ErrorCode::NotFound) => return Ok(false),
            Err(e) => return Err(e),
        };
        let me = self.state.device_id;
        let identity = self.identity();
        let now = self.now();
        self.state
            .trust
            .check_own_certificate(&cert, me, &identity, now)
            .map_err(|r| refused(me, r))?;
        self.state.trust.my_certificate = Some(cert);
        self.save()?;
        Ok(true)
    }

    /// The typed API with this device's current access token (refreshed if needed).
    pub async fn api(&mut self) -> Result<Api> {
        let fresh = matches!(self.access_expires, Some(t) if t > Instant::now() + REFRESH_MARGIN);
        if !fresh {
            self.refresh().await?;
        }
        Ok(self.api.clone())
    }

    /// Rotate the tokens now with the stored refresh token.
    pub async fn refresh(&mut self) -> Result<()> {
        let refresh = self.state.refresh_token.clone().ok_or(Error::NoToken)?;
        let pair = self.relay.refresh(refresh.as_str()).await?;
        self.set_tokens(&pair);
        // Saved before anything else: the old refresh token is spent.
        self.save()
    }

    /// Use tokens obtained elsewhere for this device (for example from a login bound to
    /// this device's id). The refresh token is saved at once.
    pub fn adopt_tokens(&mut self, pair: &TokenPair) -> Result<()> {
        self.set_tokens(pair);
        self.save()
    }

    fn set_tokens(&mut self, pair: &TokenPair) {
        self.state.refresh_token = Some(Token::new(pair.refresh_token.as_str()));
        self.api = self.relay.with_token(pair.access_token.as_str());
        // The lifetime comes from the relay: clamped, so no answer can overflow the clock.
        let lifetime = Duration::from_secs(pair.expires_in.min(MAX_ACCESS_LIFETIME_SECS));
        self.access_expires = Instant::now().checked_add(lifetime);
    }

    // ------------------------------------------------------------ conversations

    /// Open contact with an organisation (survivor devices). Starts a session with every
    /// device in the answer right away: fetching those bundles spent their one-time prekeys.
    pub async fn open_conversation(
        &mut self,
        org: &str,
        req: &OpenConversation,
    ) -> Result<ConversationOpened> {
        if self.state.trust.org_key(org).is_none() || self.state.trust.survivor {
            self.verify_org_key(org).await?;
        }
        let opened = self.api().await?.open_conversation(org, req).await?;
        let conversation = opened.conversation.id;
        // An id this device already knows for another organisation is refused: the relay
        // cannot move a conversation under an organisation key it controls.
        if let Some(known) = self.state.trust.conversation_org.get(&conversation)
            && known != org
        {
            self.state.trust.report.refused += 1;
            self.save()?;
            return Err(refused(conversation, Refusal::ConversationMismatch));
        }
        if opened.recipients.len() > MAX_RECIPIENTS {
            return Err(Error::State(
                "the relay named too many recipient devices".into(),
            ));
        }
        self.state.conversations.insert(conversation);
        self.state
            .trust
            .conversation_org
            .insert(conversation, org.to_owned());
        // Every bundle is checked before any session is made: one refused device refuses
        // the whole answer, and nothing is ever encrypted to it.
        let now = self.now();
        for bundle in &opened.recipients {
            self.admit(conversation, bundle, now)?;
        }
        let mut devices = Vec::with_capacity(opened.recipients.len());
        for bundle in &opened.recipients {
            let session = x3dh::initiate(self.state.secrets.identity(), bundle, conversation)?;
            self.state
                .insert_session(conversation, bundle.device_id, session);
            devices.push(bundle.device_id);
        }
        self.recipients.insert(conversation, devices);
        self.save()?;
        Ok(opened)
    }

    /// Close a conversation (members) and forget its sessions.
    pub async fn close(&mut self, conversation: Id) -> Result<()> {
        self.api().await?.close(conversation).await?;
        self.forget_conversation(conversation)
    }

    /// Forget every session of a conversation (after it was closed or purged).
    pub fn forget_conversation(&mut self, conversation: Id) -> Result<()> {
        self.state.forget_conversation(conversation);
        self.state.trust.forget_conversation(conversation);
        self.recipients.remove(&conversation);
        self.save()
    }

    /// Quick exit with this device's exit token. For `wipe` and `duress` the local state
    /// file (and its lock) is destroyed and the state in memory dropped, whatever the relay
    /// answered.
    pub async fn quick_exit(&mut self, mode: ExitMode) -> Result<()> {
        let token = self.state.exit_token.clone().ok_or(Error::NoToken)?;
        // For wipe and duress the phone is cleared first: a relay that stalls its answer (or
        // a phone killed while it waits) must not keep the state alive.
        if matches!(mode, ExitMode::Wipe | ExitMode::Duress) {
            // Nothing of this device stays in memory either: the old state (secrets,
            // sessions, tokens, pins) is dropped, and wiped as it drops, in exchange for a
            // throwaway one that belongs to no relay.
            let throwaway = DeviceSecrets::generate_with(&mut OsRandom, 0)?.0;
            self.state = DeviceState::new(self.state.device_id, throwaway, None, None);
            self.recipients.clear();
        }
        let mut local = Ok(());
        if matches!(mode, ExitMode::Wipe | ExitMode::Duress)
            && let Some(f) = self.file.take()
        {
            local = f.destroy();
        }
        let remote = self.relay.exit(token.as_str(), mode).await;
        local.and(remote)
    }

    /// Come back after `hide`: solve a fresh proof-of-work, sign its challenge with this
    /// device's identity key, and adopt the new tokens and the new exit token the relay
    /// answers with (the old exit token stops working). Saved at once.
    pub async fn come_back(&mut self) -> Result<()> {
        let token = self.state.exit_token.clone().ok_or(Error::NoToken)?;
        let challenge = self.relay.challenge().await?;
        let pow = crate::api::solve_challenge(challenge).await?;
        let back = self
            .relay
            .exit_return(token.as_str(), pow, self.state.secrets.identity())
            .await?;
        self.state.exit_token = Some(Token::new(back.exit_token.as_str()));
        self.set_tokens(&back.tokens);
        self.save()
    }

    // ------------------------------------------------------------ sending

    /// Encrypt and send a text message to every current recipient device.
    pub async fn send_text(&mut self, conversation: Id, text: &str) -> Result<Sent> {
        self.send(conversation, &Body::text(text)).await
    }

    /// Encrypt `body` separately to every recipient device of `conversation` and submit
    /// the envelopes as one message. On `409 stale_recipients` it encrypts for the devices
    /// in the relay's list (reusing the ciphertexts already made) and tries again with the
    /// same message id. [`Error::NoRecipients`] when nobody can receive yet.
    pub async fn send(&mut self, conversation: Id, body: &Body) -> Result<Sent> {
        // A member device certified since it joined (or whose certificate expires within a
        // day) picks its certificate up here, so its first messages carry a valid one.
        let trust = &self.state.trust;
        if !trust.survivor
            && trust.my_org.is_some()
            && trust.own_certificate_expires_by(self.now() + 86_400)
        {
            self.refresh_certificate().await?;
        }
        let mut payload = Payload {
            v: PAYLOAD_VERSION,
            from: self.state.device_id,
            cert: None,
            body: body.clone(),
        };
        let plaintext = Zeroizing::new(serde_json::to_vec(&payload)?);
        // First messages of a member device carry its certificate.
        payload.cert = self.state.trust.my_certificate.clone();
        let first_plaintext = match payload.cert {
            Some(_) => Zeroizing::new(serde_json::to_vec(&payload)?),
            None => plaintext.clone(),
        };
        let message_id = random_id()?;
        let mut devices = match self.recipients.get(&conversation) {
            Some(list) if !list.is_empty() => list.clone(),
            _ => self.fetch_recipients(conversation).await?,
        };
        let mut sealed: HashMap<Id, Vec<u8>> = HashMap::new();
        for _ in 0..SEND_ATTEMPTS {
            if devices.is_empty() {
                self.recipients.remove(&conversation);
                return Err(Error::NoRecipients);
            }
            // Every new device is checked (and its session made) before anything is
            // encrypted: a refused device in the list refuses the whole send.
            for device in &devices {
                if !sealed.contains_key(device)
                    && let Err(e) = self.ensure_session(conversation, *device).await
                {
                    self.recipients.remove(&conversation);
                    return Err(e);
                }
            }
            let mut stepped = false;
            for device in &devices {
                if !sealed.contains_key(device) {
                    let ct =
                        self.encrypt_for(conversation, *device, &plaintext, &first_plaintext)?;
                    sealed.insert(*device, ct);
                    stepped = true;
                }
            }
            if stepped {
                self.save()?;
            }
            let req = SendMessage {
                message_id,
                envelopes: devices
                    .iter()
                    .filter_map(|d| {
                        sealed.get(d).map(|ct| OutgoingEnvelope {
                            device_id: *d,
                            ciphertext: Bytes(ct.clone()),
                        })
                    })
                    .collect(),
            };
            match self.api().await?.send(conversation, &req).await {
                Ok(accepted) => {
                    self.recipients.insert(conversation, devices.clone());
                    return Ok(Sent {
                        message_id,
                        devices,
                        accepted: accepted.accepted,
                    });
                }
                Err(e) => match e.stale_recipients() {
                    Some(list) => devices = recipient_list(list)?,
                    None => {
                        self.recipients.remove(&conversation);
                        return Err(e);
                    }
                },
            }
        }
        self.recipients.remove(&conversation);
        Err(Error::State(
            "the recipient list kept changing; try again".into(),
        ))
    }

    async fn fetch_recipients(&mut self, conversation: Id) -> Result<Vec<Id>> {
        let list = recipient_list(&self.api().await?.recipients(conversation).await?.devices)?;
        self.recipients.insert(conversation, list.clone());
        Ok(list)
    }

    /// Make sure there is a session with `device` that can send, starting one from its
    /// bundle if needed, after the trust checks on the bundle; a member device whose
    /// certificate has expired since it was checked is checked again first.
    async fn ensure_session(&mut self, conversation: Id, device: Id) -> Result<()> {
        let now = self.now();
        let ready = self
            .state
            .sessions
            .get(&(conversation, device))
            .is_some_and(|list| !list.is_empty());
        if ready && self.state.trust.certificate_current(device, now) {
            return Ok(());
        }
        // No session, or a member device whose certificate has expired since: its bundle,
        // with a certificate valid now, is checked (again).
        let bundle = self.api().await?.bundle(device).await?;
        if bundle.device_id != device {
            return Err(Error::State(
                "the relay answered with another device's bundle".into(),
            ));
        }
        self.admit(conversation, &bundle, now)?;
        if !ready {
            let session = x3dh::initiate(self.state.secrets.identity(), &bundle, conversation)?;
            self.state.insert_session(conversation, device, session);
        }
        Ok(())
    }

    /// The trust checks on a bundle (docs/CRYPTO.md, "Trust"), and the count of bundles
    /// that came without a one-time prekey.
    fn admit(&mut self, conversation: Id, bundle: &wire::Bundle, now: i64) -> Result<()> {
        let survivor = self.state.trust.survivor;
        if let Err(r) = self
            .state
            .trust
            .admit_bundle(conversation, bundle, survivor, now)
        {
            self.state.trust.report.refused += 1;
            self.save()?;
            return Err(refused(bundle.device_id, r));
        }
        if bundle.one_time_prekey.is_none() {
            self.state.trust.report.bundles_without_one_time_prekey += 1;
        }
        Ok(())
    }

    /// Encrypt for one device with its first session that can send; `first` (which may carry
    /// this device's certificate) while that session still sends first messages.
    fn encrypt_for(
        &mut self,
        conversation: Id,
        device: Id,
        plaintext: &[u8],
        first: &[u8],
    ) -> Result<Vec<u8>> {
        let list = self
            .state
            .sessions
            .get_mut(&(conversation, device))
            .ok_or_else(|| Error::State("no session with a recipient".into()))?;
        for session in list.iter_mut() {
            let pt = if session.is_established() {
                plaintext
            } else {
                first
            };
            match session.encrypt(pt) {
                Ok(ct) => return Ok(ct),
                Err(CryptoError::NotReady) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::State("no session with a recipient can send".into()))
    }

    // ------------------------------------------------------------ receiving

    /// Fetch waiting envelopes and events over HTTP, decrypt, save, then acknowledge them.
    pub async fn poll(&mut self) -> Result<Vec<Incoming>> {
        let inbox = self.api().await?.inbox().await?;
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for env in &inbox.envelopes {
            ids.push(env.id);
            if let Some(inc) = self.open_envelope(env) {
                out.push(inc);
            }
        }
        let mut prune = false;
        for ev in &inbox.events {
            ids.push(ev.id);
            out.push(self.handle_event(ev));
            prune |= Self::needs_prune(ev);
        }
        self.save()?;
        if prune {
            self.prune_conversations().await?;
        }
        if !ids.is_empty() {
            self.api().await?.ack(&ids).await?;
        }
        Ok(out)
    }

    /// Open the live stream with a fresh access token.
    pub async fn connect(&mut self) -> Result<Stream> {
        self.api().await?.stream().await
    }

    /// Read frames until one yields something for the application; `Ok(None)` when the
    /// stream closed. Each envelope or event is acknowledged on the stream after the state
    /// is saved.
    ///
    /// Not cancel-safe at the point between decrypting and acknowledging; inside
    /// `tokio::select!`, read with [`Stream::next`] and pass the frame to
    /// [`SecureClient::handle_frame`] instead.
    pub async fn next(&mut self, stream: &mut Stream) -> Result<Option<Incoming>> {
        while let Some(frame) = stream.next().await? {
            if let Some(inc) = self.handle_frame(stream, frame).await? {
                return Ok(Some(inc));
            }
        }
        Ok(None)
    }

    /// Process one frame from the stream: decrypt or handle it, save, acknowledge.
    /// `Ok(None)` for frames with nothing for the application (acks, duplicates).
    pub async fn handle_frame(
        &mut self,
        stream: &mut Stream,
        frame: ServerFrame,
    ) -> Result<Option<Incoming>> {
        match frame {
            ServerFrame::Envelope(env) => {
                let inc = self.open_envelope(&env);
                self.save()?;
                stream.ack(&[env.id]).await?;
                Ok(inc)
            }
            ServerFrame::Event(ev) => {
                let inc = self.handle_event(&ev);
                self.save()?;
                if Self::needs_prune(&ev) {
                    self.prune_conversations().await?;
                }
                stream.ack(&[ev.id]).await?;
                Ok(Some(inc))
            }
            ServerFrame::Acked(_) => Ok(None),
            ServerFrame::Error(detail) => Err(Error::Api {
                status: detail.code.status(),
                body: ErrorBody { error: detail },
            }),
        }
    }

    /// Decrypt one envelope (no network, no save). `None` for a duplicate.
    pub fn open_envelope(&mut self, env: &wire::Envelope) -> Option<Incoming> {
        if self.state.has_seen(env.id) {
            return None;
        }
        let result = self.decrypt(env.conversation_id, env.ciphertext.as_slice());
        self.state.mark_seen(env.id);
        match result {
            Ok(Some((from, body))) => Some(Incoming::Message(Received {
                id: env.id,
                conversation_id: env.conversation_id,
                from,
                body,
            })),
            Ok(None) => None,
            Err(OpenError::Crypto(error)) => Some(Incoming::Undecryptable {
                id: env.id,
                conversation_id: env.conversation_id,
                error,
            }),
            Err(OpenError::Refused(reason)) => {
                self.state.trust.report.refused += 1;
                Some(Incoming::Refused {
                    id: env.id,
                    conversation_id: env.conversation_id,
                    reason,
                })
            }
        }
    }

    /// `Ok(None)`: a duplicate of a message already opened.
    fn decrypt(
        &mut self,
        conversation: Id,
        bytes: &[u8],
    ) -> std::result::Result<Option<(Id, Body)>, OpenError> {
        let prekey = envelope::peek(bytes)?.prekey;
        let now = self.now();
        let now_secs = u64::try_from(now).ok();
        let mut hit: Option<(Id, usize, Zeroizing<Vec<u8>>)> = None;
        let lo = (conversation, Id([0; 16]));
        let hi = (conversation, Id([0xff; 16]));
        'search: for ((_, device), list) in self.state.sessions.range_mut(lo..=hi) {
            for (i, session) in list.iter_mut().enumerate() {
                match session.decrypt_with(bytes, &mut OsRandom, now_secs) {
                    Ok(pt) => {
                        hit = Some((*device, i, pt));
                        break 'search;
                    }
                    Err(CryptoError::Duplicate) => return Ok(None),
                    Err(_) => continue,
                }
            }
        }
        let (from, plaintext) = match hit {
            Some((device, index, pt)) => {
                // The session that worked becomes the one to answer on.
                if let Some(head) = self
                    .state
                    .sessions
                    .get_mut(&(conversation, device))
                    .and_then(|list| list.get_mut(..=index))
                {
                    head.rotate_right(1);
                }
                (device, pt)
            }
            None => {
                let header = prekey.ok_or(CryptoError::DecryptFailed)?;
                // A first message whose X3DH run this device already answered is a replay
                // (possible when it used no one-time prekey), even once its session is gone.
                if self.state.trust.seen_base_key(&header.ephemeral) {
                    return Ok(None);
                }
                // Worked on a copy: a refused sender consumes no one-time prekey.
                let mut trial = self.state.secrets.clone();
                let (session, pt) = Session::respond_with(
                    &mut trial,
                    conversation,
                    bytes,
                    &mut OsRandom,
                    now_secs,
                )?;
                let payload = parse(&pt)?;
                let survivor = self.state.trust.survivor;
                self.state
                    .trust
                    .admit_sender(
                        conversation,
                        payload.from,
                        session.peer_identity(),
                        payload.cert.as_ref(),
                        survivor,
                        now,
                    )
                    .map_err(OpenError::Refused)?;
                if header.one_time_prekey_id.is_none()
                    && self.state.secrets.one_time_prekey_count() > 0
                {
                    self.state
                        .trust
                        .report
                        .first_messages_without_one_time_prekey += 1;
                }
                self.state.secrets = trial;
                self.state.trust.remember_base_key(header.ephemeral);
                self.state
                    .insert_session(conversation, payload.from, session);
                (payload.from, pt)
            }
        };
        self.state.conversations.insert(conversation);
        let payload = parse(&plaintext)?;
        Ok(Some((from, payload.body)))
    }

    /// Forget every known conversation the relay no longer has (it answers 404 for it).
    /// The relay does not repeat a purged conversation's id in the `conversation_closed`
    /// event, so this is how a client learns which one ended. Returns the ones forgotten.
    pub async fn prune_conversations(&mut self) -> Result<Vec<Id>> {
        let known: Vec<Id> = self.state.conversations().collect();
        let mut gone = Vec::new();
        for c in known {
            match self.api().await?.conversation(c).await {
                Ok(_) => {}
                Err(e) if e.is(quietline_proto::ErrorCode::NotFound) => {
                    self.state.forget_conversation(c);
                    self.state.trust.forget_conversation(c);
                    self.recipients.remove(&c);
                    gone.push(c);
                }
                Err(e) => return Err(e),
            }
        }
        if !gone.is_empty() {
            self.save()?;
        }
        Ok(gone)
    }

    /// Does this event end a conversation without saying which?
    fn needs_prune(ev: &Event) -> bool {
        matches!(
            ev.kind,
            EventKind::ConversationClosed | EventKind::EndedBySurvivor
        ) && ev.conversation_id.is_none()
    }

    /// Apply an event to the local view (recipient lists, closed conversations). For a
    /// closing event without a conversation id, call [`SecureClient::prune_conversations`]
    /// ([`SecureClient::poll`] and [`SecureClient::handle_frame`] do).
    pub fn handle_event(&mut self, ev: &Event) -> Incoming {
        match ev.kind {
            EventKind::AdvocateAvailable
            | EventKind::RecipientsChanged
            | EventKind::TransferredToYou
            | EventKind::SurvivorReturned => match ev.conversation_id {
                Some(c) => {
                    self.recipients.remove(&c);
                }
                None => self.recipients.clear(),
            },
            EventKind::ConversationClosed | EventKind::EndedBySurvivor => {
                if let Some(c) = ev.conversation_id {
                    self.state.forget_conversation(c);
                    self.state.trust.forget_conversation(c);
                    self.recipients.remove(&c);
                }
            }
            EventKind::QueueChanged | EventKind::SurvivorLeft | EventKind::PossibleDuress => {}
        }
        Incoming::Event(ev.clone())
    }

    // ------------------------------------------------------------ prekeys

    /// Make sure the relay holds at least `min` one-time prekeys for this device, topping
    /// up to `target`. The new secrets are saved before their public halves are uploaded.
    pub async fn replenish_prekeys(&mut self, min: u32, target: u32) -> Result<u32> {
        let api = self.api().await?;
        let current = api
            .upload_prekeys(&wire::UploadPrekeys {
                signed_prekey: None,
                one_time_prekeys: Vec::new(),
            })
            .await?
            .one_time_prekeys;
        if current >= min {
            return Ok(current);
        }
        let n = usize::try_from(target.saturating_sub(current)).unwrap_or(0);
        let new = self.state.secrets.generate_one_time_prekeys(n)?;
        self.save()?;
        let count = api
            .upload_prekeys(&wire::UploadPrekeys {
                signed_prekey: None,
                one_time_prekeys: new,
            })
            .await?;
        Ok(count.one_time_prekeys)
    }
}

impl SecureClient {
    /// Keep this device's prekeys healthy: rotate the signed prekey when it is older than
    /// [`SIGNED_PREKEY_ROTATION_SECS`](quietline_proto::crypto::keys::SIGNED_PREKEY_ROTATION_SECS) (the previous one still answers first messages for
    /// [`SIGNED_PREKEY_GRACE_SECS`], then it is erased), and top the one-time prekeys up to
    /// [`ONE_TIME_PREKEYS_TARGET`] when fewer than [`ONE_TIME_PREKEYS_LOW`] are left. New
    /// secrets are saved before their public halves are uploaded. Returns whether the
    /// signed prekey was rotated.
    pub async fn maintain_keys(&mut self) -> Result<bool> {
        let now = u64::try_from(self.now()).unwrap_or(0);
        let mut rotated = false;
        if self.state.secrets.needs_rotation(now) {
            let signed = self.state.secrets.rotate_signed_prekey_at(now)?;
            self.save()?;
            self.api()
                .await?
                .upload_prekeys(&wire::UploadPrekeys {
                    signed_prekey: Some(signed),
                    one_time_prekeys: Vec::new(),
                })
                .await?;
            rotated = true;
        }
        if self
            .state
            .secrets
            .expire_previous_signed_prekey(now, SIGNED_PREKEY_GRACE_SECS)
        {
            self.save()?;
        }
        self.replenish_prekeys(ONE_TIME_PREKEYS_LOW, ONE_TIME_PREKEYS_TARGET)
            .await?;
        Ok(rotated)
    }
}

/// A recipient list from the relay, de-duplicated and bounded.
fn recipient_list(list: &[Id]) -> Result<Vec<Id>> {
    let mut out: Vec<Id> = Vec::with_capacity(list.len().min(MAX_RECIPIENTS));
    for d in list {
        if !out.contains(d) {
            if out.len() == MAX_RECIPIENTS {
                return Err(Error::State(
                    "the relay named too many recipient devices".into(),
                ));
            }
            out.push(*d);
        }
    }
    Ok(out)
}

/// The SDK error for a refusal by the trust rules.
fn refused(device: Id, reason: Refusal) -> Error {
    match reason {
        Refusal::IdentityChanged => Error::IdentityChanged { device },
        reason => Error::Untrusted { device, reason },
    }
}

fn parse(plaintext: &[u8]) -> std::result::Result<Payload, CryptoError> {
    let payload: Payload = serde_json::from_slice(plaintext).map_err(|_| CryptoError::Malformed)?;
    if payload.v != PAYLOAD_VERSION {
        return Err(CryptoError::UnsupportedVersion);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quietline_proto::wire::{Bundle, Envelope};

    /// Two devices wired together without a relay: `a` starts a session from `b`'s bundle.
    fn pair() -> (SecureClient, SecureClient, Bundle) {
        let relay = Api::new("http://127.0.0.1:1").unwrap();
        let (sa, _) = DeviceSecrets::generate().unwrap();
        let (sb, kb) = DeviceSecrets::generate().unwrap();
        let a = SecureClient::resume(
            &relay,
            DeviceState::new(Id([0xa; 16]), sa, None, None),
            None,
        );
        let b = SecureClient::resume(
            &relay,
            DeviceState::new(Id([0xb; 16]), sb, None, None),
            None,
        );
        let bundle = Bundle {
            device_id: Id([0xb; 16]),
            identity_key: kb.identity_key,
            signing_key: kb.signing_key,
            identity_signature: kb.identity_signature,
            signed_prekey: kb.signed_prekey,
            one_time_prekey: kb.one_time_prekeys.first().cloned(),
            certificate: None,
        };
        (a, b, bundle)
    }

    fn seal_for(c: &mut SecureClient, conv: Id, to: Id, text: &str) -> Envelope {
        let payload = Payload {
            v: PAYLOAD_VERSION,
            from: c.device_id(),
            cert: None,
            body: Body::text(text),
        };
        let pt = serde_json::to_vec(&payload).unwrap();
        let ct = c.state.sessions.get_mut(&(conv, to)).unwrap()[0]
            .encrypt(&pt)
            .unwrap();
        Envelope {
            id: random_id().unwrap(),
            conversation_id: conv,
            ciphertext: Bytes(ct),
            expires_at: 0,
        }
    }

    #[test]
    fn first_message_creates_a_responder_session_and_replies_flow_back() {
        let (mut a, mut b, bundle) = pair();
        let conv = Id([0xc; 16]);
        let s = x3dh::initiate(a.state.secrets.identity(), &bundle, conv).unwrap();
        a.state.insert_session(conv, b.device_id(), s);

        let e1 = seal_for(&mut a, conv, b.device_id(), "hello");
        assert!(quietline_proto::padding::is_bucket(e1.ciphertext.len()));
        let got = b.open_envelope(&e1).unwrap();
        match &got {
            Incoming::Message(m) => {
                assert_eq!(m.text(), Some("hello"));
                assert_eq!(m.from, a.device_id());
            }
            other => panic!("{other:?}"),
        }
        // Redelivery of the same envelope id is dropped.
        assert_eq!(b.open_envelope(&e1), None);

        let e2 = seal_for(&mut b, conv, a.device_id(), "hi, I'm here");
        match a.open_envelope(&e2).unwrap() {
            Incoming::Message(m) => assert_eq!(m.text(), Some("hi, I'm here")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.safety_numbers(conv)[0].1,
            b.safety_numbers(conv)[0].1,
            "both sides see the same safety number"
        );
    }

    #[test]
    fn a_tampered_or_foreign_envelope_is_reported_not_fatal() {
        let (mut a, mut b, bundle) = pair();
        let conv = Id([0xc; 16]);
        let s = x3dh::initiate(a.state.secrets.identity(), &bundle, conv).unwrap();
        a.state.insert_session(conv, b.device_id(), s);
        let mut e = seal_for(&mut a, conv, b.device_id(), "hello");
        let last = e.ciphertext.0.len() - 1;
        e.ciphertext.0[last] ^= 1;
        assert!(matches!(
            b.open_envelope(&e),
            Some(Incoming::Undecryptable { .. })
        ));
        // The same bytes under another conversation id do not open either.
        let mut e = seal_for(&mut a, conv, b.device_id(), "hello");
        e.conversation_id = Id([0xd; 16]);
        assert!(matches!(
            b.open_envelope(&e),
            Some(Incoming::Undecryptable { .. })
        ));
        // The untampered next message still opens.
        let e = seal_for(&mut a, conv, b.device_id(), "again");
        assert!(matches!(b.open_envelope(&e), Some(Incoming::Message(_))));
    }

    #[test]
    fn state_with_sessions_survives_save_and_load() {
        let (mut a, mut b, bundle) = pair();
        let conv = Id([0xc; 16]);
        let s = x3dh::initiate(a.state.secrets.identity(), &bundle, conv).unwrap();
        a.state.insert_session(conv, b.device_id(), s);
        let e1 = seal_for(&mut a, conv, b.device_id(), "one");
        b.open_envelope(&e1).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let key = quietline_proto::crypto::StoreKey::generate().unwrap();
        b.persist_to(StateFile::new(dir.path().join("b"), key.clone()).unwrap())
            .unwrap();
        b.file = None; // releases the state's lock
        let relay = Api::new("http://127.0.0.1:1").unwrap();
        let file = StateFile::new(dir.path().join("b"), key).unwrap();
        let mut b2 = SecureClient::load(&relay, file).unwrap();
        assert_eq!(b2.open_envelope(&e1), None, "seen ids persist");
        let e2 = seal_for(&mut a, conv, b.device_id(), "two");
        match b2.open_envelope(&e2).unwrap() {
            Incoming::Message(m) => assert_eq!(m.text(), Some("two")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn skipped_message_keys_expire_by_the_clients_clock() {
        use quietline_proto::crypto::session::SKIPPED_MAX_AGE_SECS;
        let (mut a, mut b, bundle) = pair();
        let now = Arc::new(std::sync::atomic::AtomicI64::new(1_800_000_000));
        let clock = now.clone();
        b.set_clock(Arc::new(move || {
            clock.load(std::sync::atomic::Ordering::SeqCst)
        }));
        let conv = Id([0xc; 16]);
        let s = x3dh::initiate(a.state.secrets.identity(), &bundle, conv).unwrap();
        a.state.insert_session(conv, b.device_id(), s);
        let first = seal_for(&mut a, conv, b.device_id(), "one");
        let late = seal_for(&mut a, conv, b.device_id(), "two (delayed)");
        let third = seal_for(&mut a, conv, b.device_id(), "three");
        assert!(matches!(
            b.open_envelope(&first),
            Some(Incoming::Message(_))
        ));
        // "two" is skipped: its key is kept, stamped with b's clock.
        assert!(matches!(
            b.open_envelope(&third),
            Some(Incoming::Message(_))
        ));
        let age = i64::try_from(SKIPPED_MAX_AGE_SECS).unwrap() + 60;
        now.fetch_add(age, std::sync::atomic::Ordering::SeqCst);
        // A week later the skipped key is gone: the message does not open (the ratchet
        // cannot tell an expired key from a spent one, so it is dropped as a duplicate).
        assert!(
            !matches!(b.open_envelope(&late), Some(Incoming::Message(_))),
            "a week later the skipped key is gone"
        );

        // Within the age the delayed message still opens.
        let (mut a, mut b, bundle) = pair();
        let s = x3dh::initiate(a.state.secrets.identity(), &bundle, conv).unwrap();
        a.state.insert_session(conv, b.device_id(), s);
        let first = seal_for(&mut a, conv, b.device_id(), "one");
        let late = seal_for(&mut a, conv, b.device_id(), "two (delayed)");
        let third = seal_for(&mut a, conv, b.device_id(), "three");
        b.open_envelope(&first).unwrap();
        b.open_envelope(&third).unwrap();
        match b.open_envelope(&late) {
            Some(Incoming::Message(m)) => assert_eq!(m.text(), Some("two (delayed)")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_token_lifetime_from_the_relay_cannot_overflow_the_clock() {
        let (mut a, _, _) = pair();
        a.adopt_tokens(&TokenPair {
            access_token: "a".into(),
            expires_in: u64::MAX,
            refresh_token: "r".into(),
        })
        .unwrap();
        let left = a.access_expires.unwrap() - Instant::now();
        assert!(left <= Duration::from_secs(MAX_ACCESS_LIFETIME_SECS));
    }

    #[test]
    fn recipient_lists_are_deduplicated_and_bounded() {
        let d = Id([1; 16]);
        assert_eq!(recipient_list(&[d, d, d]).unwrap(), vec![d]);
        let many: Vec<Id> = (0..=MAX_RECIPIENTS)
            .map(|i| {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&(i as u64).to_le_bytes());
                Id(b)
            })
            .collect();
        assert!(recipient_list(&many).is_err());
    }

    /// A relay that never answers the exit call does not keep the phone's state alive: the
    /// file is gone while the call still waits.
    #[tokio::test]
    async fn wipe_clears_the_phone_before_the_relay_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stall = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket); // accepted, never answered
            }
        });
        let relay = Api::new(&format!("http://{addr}")).unwrap();
        let (secrets, _) = DeviceSecrets::generate().unwrap();
        let state = DeviceState::new(Id([7; 16]), secrets, None, Some(Token::new("exit")));
        let mut c = SecureClient::resume(&relay, state, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let key = quietline_proto::crypto::StoreKey::generate().unwrap();
        c.persist_to(StateFile::new(&path, key).unwrap()).unwrap();
        assert!(path.exists());
        let waited =
            tokio::time::timeout(Duration::from_millis(500), c.quick_exit(ExitMode::Wipe)).await;
        assert!(waited.is_err(), "the relay is still silent");
        assert!(!path.exists(), "the state went before the relay answered");
        assert!(c.state().sessions.is_empty() && c.exit_token().is_none());
        stall.abort();
    }

    #[test]
    fn closing_events_forget_the_sessions() {
        let (mut a, _b, bundle) = pair();
        let conv = Id([0xc; 16]);
        let s = x3dh::initiate(a.state.secrets.identity(), &bundle, conv).unwrap();
        a.state.insert_session(conv, Id([0xb; 16]), s);
        assert_eq!(a.state.session_devices(conv).len(), 1);
        a.handle_event(&Event {
            id: Id([1; 16]),
            kind: EventKind::ConversationClosed,
            conversation_id: Some(conv),
        });
        assert!(a.state.session_devices(conv).is_empty());
    }
}
