//! Request and response bodies of the relay API (ARCHITECTURE.md).
//!
//! Every request type refuses unknown fields, so a typo in a client is a clear 400 rather
//! than a silently ignored setting. Nothing here carries a phone number, e-mail, name, IP
//! address or user agent: there is no field for one (docs/THREAT_MODEL.md, invariant 2).

use crate::Id;
use crate::b64::Bytes;
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

// ---------------------------------------------------------------- health

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `ok` when serving.
    pub status: String,
}

// ---------------------------------------------------------------- tokens

/// Tokens returned on registration, login and refresh.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenPair {
    /// Short-lived JWT for the `Authorization: Bearer` header.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque, single-use refresh token; rotated on every refresh.
    pub refresh_token: String,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: String,
    /// Also remove the member device this session belongs to (a browser being signed out
    /// for good). Ignored for survivor devices, which leave by quick exit.
    #[serde(default)]
    pub remove_device: bool,
}

// ---------------------------------------------------------------- devices

/// A proof-of-work challenge for anonymous registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Challenge {
    /// 32 random bytes; single use.
    pub challenge: Bytes,
    /// Required leading zero bits of SHA-256(label || challenge || nonce as u64 LE).
    pub bits: u8,
    /// Seconds until the challenge expires.
    pub expires_in: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PowSolution {
    pub challenge: Bytes,
    pub nonce: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedPrekey {
    pub id: u32,
    /// X25519 public key, 32 bytes.
    pub public_key: Bytes,
    /// Ed25519 signature over the public key by the device's signing key, 64 bytes.
    pub signature: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OneTimePrekey {
    pub id: u32,
    /// X25519 public key, 32 bytes.
    pub public_key: Bytes,
}

/// A device's public keys. The server stores them and hands them out; it never holds a
/// private key (docs/THREAT_MODEL.md, invariant 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceKeys {
    /// X25519 identity key, 32 bytes.
    pub identity_key: Bytes,
    /// Ed25519 signing key, 32 bytes.
    pub signing_key: Bytes,
    /// Ed25519 signature by `signing_key` over the identity-binding label followed by
    /// `identity_key`, 64 bytes: binds the X25519 identity key to the signing key.
    pub identity_signature: Bytes,
    pub signed_prekey: SignedPrekey,
    #[serde(default)]
    pub one_time_prekeys: Vec<OneTimePrekey>,
}

/// `POST /v1/devices`. Survivors send a solved `pow`; signed-in members send none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pow: Option<PowSolution>,
    pub keys: DeviceKeys,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeviceRegistered {
    pub device_id: Id,
    pub tokens: TokenPair,
    /// Only for survivor devices: a token that can call nothing but `POST /v1/exit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_token: Option<String>,
}

impl std::fmt::Debug for DeviceRegistered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRegistered").finish_non_exhaustive()
    }
}

/// `PUT /v1/devices/me/prekeys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadPrekeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_prekey: Option<SignedPrekey>,
    #[serde(default)]
    pub one_time_prekeys: Vec<OneTimePrekey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PrekeyCount {
    /// One-time prekeys the server still holds for this device.
    pub one_time_prekeys: u32,
}

/// A device's public keys for starting a session; `one_time_prekey` is handed out at most
/// once and is absent when the device has none left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Bundle {
    pub device_id: Id,
    /// X25519 identity key, 32 bytes.
    pub identity_key: Bytes,
    /// Ed25519 signing key, 32 bytes.
    pub signing_key: Bytes,
    /// The identity binding signature of [`DeviceKeys::identity_signature`], 64 bytes.
    pub identity_signature: Bytes,
    pub signed_prekey: SignedPrekey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_prekey: Option<OneTimePrekey>,
    /// A member device's certificate from its organisation key; absent for survivor devices
    /// and for member devices not yet certified (which clients refuse as recipients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

// ---------------------------------------------------------------- organisation trust

/// A device certificate: the canonical body (the encoding of
/// [`CertificateBody`](crate::trust::CertificateBody)) and the organisation key's Ed25519
/// signature over the certificate label followed by the body. Made on a supervisor's machine;
/// the relay stores and serves it but cannot make one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Canonical certificate body (docs/CRYPTO.md, "Device certificate").
    pub body: Bytes,
    /// Ed25519 signature by the organisation key, 64 bytes.
    pub signature: Bytes,
}

/// `GET /v1/orgs/{code}/key`: the organisation key's history, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrgKeyChain {
    /// The first organisation key registered (Ed25519, 32 bytes).
    pub first: Bytes,
    /// Every replacement since, oldest first.
    #[serde(default)]
    pub changes: Vec<OrgKeyChange>,
}

/// One replacement of the organisation key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrgKeyChange {
    /// The next organisation key (Ed25519, 32 bytes).
    pub key: Bytes,
    /// Signature by the previous key over the change statement (docs/CRYPTO.md), 64 bytes.
    pub signature: Bytes,
}

/// `PUT /v1/org/key` (supervisor): the first organisation key, or a replacement with the
/// change signature made by the current key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetOrgKey {
    /// The organisation public key (Ed25519, 32 bytes).
    pub public_key: Bytes,
    /// Required when a key is already registered: the change statement's signature by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Bytes>,
}

/// One member device as `GET /v1/org/devices` (supervisor) lists it, with its certificate
/// once a supervisor has certified it. `PUT /v1/devices/{id}/certificate` takes a
/// [`Certificate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MemberDevice {
    pub device_id: Id,
    pub member_id: Id,
    pub handle: String,
    pub role: Role,
    /// X25519 identity key, 32 bytes.
    pub identity_key: Bytes,
    /// Ed25519 signing key, 32 bytes.
    pub signing_key: Bytes,
    /// The identity binding signature, 64 bytes.
    pub identity_signature: Bytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

/// `GET /v1/org/devices` (supervisor): member devices and whether they are certified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MemberDevices {
    pub devices: Vec<MemberDevice>,
}

// ---------------------------------------------------------------- members

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Advocate,
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Advocate => "advocate",
            Role::Supervisor => "supervisor",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "advocate" => Some(Role::Advocate),
            "supervisor" => Some(Role::Supervisor),
            _ => None,
        }
    }
}

/// `POST /v1/auth/enroll`: accept an invitation.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Enroll {
    /// The one-time enrolment token from the invitation.
    pub token: String,
    /// At least 12 characters.
    pub password: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Enrolled {
    pub member_id: Id,
    /// `otpauth://totp/...` URI for the authenticator app.
    pub totp_uri: String,
}

/// `POST /v1/auth/login`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The organisation's code.
    pub org: String,
    pub handle: String,
    pub password: String,
    /// The current 6-digit TOTP code.
    pub totp: String,
    /// Bind the session to one of the member's registered devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Id>,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoggedIn {
    pub member_id: Id,
    pub role: Role,
    pub tokens: TokenPair,
}

/// `PUT /v1/members/me/duty`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Duty {
    pub on_duty: bool,
}

/// `POST /v1/org/invites` (supervisors).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub handle: String,
    pub role: Role,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Invited {
    pub member_id: Id,
    /// One-time enrolment token; shown once.
    pub token: String,
    pub expires_in: u64,
}

/// `GET`/`PUT /v1/org/settings`. On `PUT`, an absent field stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    /// Shown to a survivor who opens contact while nobody is on duty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_hours_message: Option<String>,
    /// Seconds an undelivered envelope is kept (default 7 days; capped by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_ttl_secs: Option<u64>,
    /// Seconds after its last activity an idle conversation is purged (default 30 days;
    /// capped by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ttl_secs: Option<u64>,
    /// Purge a conversation the moment it is closed (default). When false, closing deletes
    /// its messages but keeps the conversation until it has been idle `idle_ttl_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_on_close: Option<bool>,
}

// ---------------------------------------------------------------- conversations

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// In the queue, nobody has claimed it.
    Waiting,
    /// Claimed by an advocate.
    Assigned,
    /// Closed, kept (without any message) because the organisation does not purge on close;
    /// opening contact again reopens it with the same advocate.
    Closed,
}

/// `POST /v1/orgs/{code}/conversations`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenConversation {
    /// Ask to be seen first.
    #[serde(default)]
    pub urgent: bool,
    /// Preferred language, a short tag such as `en` or `es`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConversationOpened {
    pub conversation: Conversation,
    /// 1 = next to be seen.
    pub queue_position: u32,
    /// Present when nobody is on duty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_hours_message: Option<String>,
    /// Bundles of the devices the first message must be encrypted to.
    pub recipients: Vec<Bundle>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Conversation {
    pub id: Id,
    pub state: ConversationState,
    pub urgent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The assigned member, when claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<Id>,
    /// Hour the conversation opened, as Unix seconds rounded down to the hour.
    pub opened_hour: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
}

/// `POST /v1/conversations/{id}/transfer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub to_member: Id,
}

/// `GET /v1/conversations/{id}/recipients`: the devices a participant's envelopes must go to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Recipients {
    pub devices: Vec<Id>,
}

// ---------------------------------------------------------------- envelopes

/// One opaque ciphertext for one recipient device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutgoingEnvelope {
    pub device_id: Id,
    /// Exactly one of the padding bucket sizes.
    pub ciphertext: Bytes,
}

/// `POST /v1/conversations/{id}/messages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Chosen by the sender, random; a resend with the same id is accepted once.
    pub message_id: Id,
    pub envelopes: Vec<OutgoingEnvelope>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Accepted {
    pub message_id: Id,
    /// Envelopes now durable (a resend reports the ones already held as accepted too).
    pub accepted: u32,
}

/// An envelope waiting for this device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Envelope {
    /// The sender's message id; the same for every recipient device of one message.
    pub id: Id,
    pub conversation_id: Id,
    pub ciphertext: Bytes,
    /// Unix seconds after which the server deletes it undelivered.
    pub expires_at: i64,
}

/// Server events: workflow and safety notices, never message content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Event {
    pub id: Id,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<Id>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A member came on duty: the survivor's device should fetch the recipient list and send.
    AdvocateAvailable,
    /// A new conversation entered the queue (to on-duty members).
    QueueChanged,
    /// The conversation was claimed or transferred: refresh the recipient list.
    RecipientsChanged,
    /// The conversation was transferred to this member.
    TransferredToYou,
    /// The conversation was closed and purged.
    ConversationClosed,
    /// The survivor left quickly: do not write until they return.
    SurvivorLeft,
    /// The survivor came back after leaving quickly.
    SurvivorReturned,
    /// The survivor ended the conversation and wiped their device.
    EndedBySurvivor,
    /// The survivor wiped under a duress code: possible duress.
    PossibleDuress,
}

/// `GET /v1/messages`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Inbox {
    pub envelopes: Vec<Envelope>,
    pub events: Vec<Event>,
}

/// `POST /v1/messages/ack`: delete delivered envelopes and events by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub ids: Vec<Id>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Acked {
    /// How many envelopes and events were deleted.
    pub deleted: u32,
}

// ---------------------------------------------------------------- quick exit

/// What `POST /v1/exit` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExitMode {
    /// Revoke the device's tokens, hold deliveries, tell the advocate "left quickly".
    Hide,
    /// Delete everything tied to the device, now.
    Wipe,
    /// Wipe, and silently alert the advocate: possible duress.
    Duress,
}

/// `POST /v1/exit`, authorised by the device's exit token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExitRequest {
    pub mode: ExitMode,
}

/// The one answer of `POST /v1/exit`, whatever happened (same status, same size).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Exited {
    /// Always `ok`.
    pub status: String,
}

/// `POST /v1/exit/return`: come back after `hide`, authorised by the exit token, a fresh
/// proof-of-work, and a signature by the device's own Ed25519 signing key (the one it
/// registered) over [`ReturnRequest::signed_message`] of that proof-of-work's challenge. The
/// exit token alone is not a login: it only proves that a phone once held it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    pub pow: PowSolution,
    /// Ed25519 signature (64 bytes) over `signed_message(pow.challenge)`.
    pub signature: Bytes,
}

impl ReturnRequest {
    /// Domain separation for the return signature: it can be mistaken for no other signed
    /// statement of the device.
    pub const SIGNATURE_CONTEXT: &'static [u8] = b"relay exit return v1\0";

    /// The bytes a returning device signs: the context, then the server's challenge.
    pub fn signed_message(challenge: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(Self::SIGNATURE_CONTEXT.len() + challenge.len());
        m.extend_from_slice(Self::SIGNATURE_CONTEXT);
        m.extend_from_slice(challenge);
        m
    }
}

/// The answer to a successful `POST /v1/exit/return`: new tokens and a new exit token. The
/// old exit token stops working: whoever copied it off the phone cannot use it again.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Returned {
    pub tokens: TokenPair,
    pub exit_token: String,
}

impl std::fmt::Debug for Returned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Returned").finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------- wake signals

/// One weekly window, in the device's own local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SafeWindow {
    /// 0 = Monday ... 6 = Sunday.
    pub day: u8,
    /// Minutes after local midnight, 0..1440.
    pub start_minute: u16,
    /// Minutes after local midnight, start_minute < end_minute <= 1440.
    pub end_minute: u16,
}

/// `PUT /v1/devices/me/push`: where and when the server may send content-free wake signals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRegistration {
    /// A plain HTTPS URL (UnifiedPush or Web Push gateway endpoint) that takes an empty POST.
    pub endpoint: String,
    /// The device's offset from UTC in minutes (its own time zone), -840..=840.
    pub utc_offset_minutes: i32,
    /// Wake signals are sent only inside these windows; empty means never.
    pub safe_hours: Vec<SafeWindow>,
}

// ---------------------------------------------------------------- stream

/// `POST /v1/stream/ticket`: a single-use ticket that opens `GET /v1/stream?ticket=...` once,
/// for clients that cannot set a header on a WebSocket upgrade (browsers).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StreamTicket {
    /// 256 random bits as unpadded base64url; honoured once, within `expires_in` seconds.
    pub ticket: String,
    /// Seconds until the ticket expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for StreamTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTicket")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Frames the server sends on `GET /v1/stream` (JSON text frames).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Envelope(Envelope),
    Event(Event),
    /// Acknowledges a client `ack` frame.
    Acked(Acked),
    Error(crate::ErrorDetail),
}

/// Frames a client sends on `GET /v1/stream`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Ack { ids: Vec<Id> },
}

/// `Debug` for types holding secrets: the type name and the non-secret fields only.
macro_rules! redacted_debug {
    ($($ty:ident { $($field:ident),* }),* $(,)?) => {
        $(
            impl std::fmt::Debug for $ty {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.debug_struct(stringify!($ty))
                        $(.field(stringify!($field), &self.$field))*
                        .finish_non_exhaustive()
                }
            }
        )*
    };
}

redacted_debug!(
    RefreshRequest {},
    LogoutRequest {},
    Enroll {},
    Enrolled { member_id },
    Login { org, handle },
    LoggedIn {
        member_id,
        role,
        tokens
    },
    Invited {
        member_id,
        expires_in
    },
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields() {
        let err = serde_json::from_str::<Duty>(r#"{"on_duty":true,"ip":"1.2.3.4"}"#);
        assert!(err.is_err());
        let ok = serde_json::from_str::<Duty>(r#"{"on_duty":true}"#).unwrap();
        assert!(ok.on_duty);
    }

    #[test]
    fn frames_are_tagged() {
        let f = ClientFrame::Ack {
            ids: vec![Id([1; 16])],
        };
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.starts_with(r#"{"type":"ack""#));
        assert_eq!(serde_json::from_str::<ClientFrame>(&json).unwrap(), f);
    }

    #[test]
    fn token_debug_hides_secrets() {
        let t = TokenPair {
            access_token: "secret-a".into(),
            expires_in: 1,
            refresh_token: "secret-r".into(),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("secret"));
    }
}
