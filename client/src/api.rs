//! Typed HTTP client for every relay route (ARCHITECTURE.md), plus a raw escape hatch.
//!
//! [`Api`] moves bytes and JSON; it never sees plaintext unless the caller hands it some, and it
//! adds nothing identifying to a request: no cookies, no user agent of its own, no redirects
//! followed (docs/THREAT_MODEL.md, invariant 2). The encrypting layer is [`crate::secure`].

use crate::error::{Error, Result};
use crate::stream::Stream;
use quietline_proto::Id;
use quietline_proto::crypto::keys::IdentityKeyPair;
use quietline_proto::wire::{
    Accepted, Ack, Acked, Bundle, Certificate, Challenge, Conversation, ConversationList,
    ConversationOpened, DeviceKeys, DeviceRegistered, Duty, Enroll, Enrolled, Health, Inbox,
    Invite, Invited, LoggedIn, Login, LogoutRequest, MemberDevice, MemberDevices, OpenConversation,
    OrgKeyChain, OrgSettings, PowSolution, PrekeyCount, PushRegistration, Recipients,
    RefreshRequest, RegisterDevice, ReturnRequest, Returned, SendMessage, SetOrgKey, StreamTicket,
    TokenPair, Transfer, UploadPrekeys,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

pub use reqwest::Method;

/// The largest answer the client reads from the relay: an inbox page of 64 KiB envelopes in
/// base64 with room to spare. Anything larger is refused rather than buffered.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// How long one HTTP request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A bearer token. Its `Debug` prints nothing of it, and it is wiped from memory on drop.
#[derive(Clone)]
pub struct Token(Arc<Zeroizing<String>>);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(Arc::new(Zeroizing::new(token.into())))
    }
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl From<String> for Token {
    fn from(s: String) -> Token {
        Token::new(s)
    }
}

impl From<&str> for Token {
    fn from(s: &str) -> Token {
        Token::new(s)
    }
}

impl From<&String> for Token {
    fn from(s: &String) -> Token {
        Token::new(s.as_str())
    }
}

/// `POST /v1/exit` modes (docs/SAFETY.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitMode {
    /// Revoke the device's sessions and hold deliveries until the survivor returns.
    Hide,
    /// Delete everything tied to the device at once.
    Wipe,
    /// Wipe and silently alert the advocate.
    Duress,
}

#[derive(Serialize)]
struct ExitRequest {
    mode: ExitMode,
}

/// A typed client for one relay: a base URL (which may end in an operator route prefix, such
/// as `http://127.0.0.1:8080/x7`) and an optional bearer token. Cheap to clone; clones share
/// the connection pool.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<Token>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish()
    }
}

/// Check and normalise a base URL: absolute `http(s)://`, no query or fragment, no trailing
/// slash.
pub(crate) fn normalise_base(base: &str) -> Result<String> {
    let url = reqwest::Url::parse(base).map_err(|e| Error::Url(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Url(format!(
            "scheme {} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none() {
        return Err(Error::Url("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Url("a base URL takes no query or fragment".into()));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Percent-encode one path segment (an organisation code typed by a person).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Api {
    /// A client for the relay at `base` (for example `http://127.0.0.1:8080` or
    /// `https://help.example.org/x7`), without a token.
    pub fn new(base: &str) -> Result<Api> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Api::with_client(base, http)
    }

    /// Like [`Api::new`] with a caller-built `reqwest::Client` (timeouts, pool size).
    pub fn with_client(base: &str, http: reqwest::Client) -> Result<Api> {
        Ok(Api {
            http,
            base: normalise_base(base)?,
            token: None,
        })
    }

    /// A clone of this client that sends `token` as `Authorization: Bearer`.
    pub fn with_token(&self, token: impl Into<Token>) -> Api {
        Api {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// A clone of this client without a token.
    pub fn without_token(&self) -> Api {
        Api {
            token: None,
            ..self.clone()
        }
    }

    /// Replace (or with `None`, drop) the bearer token.
    pub fn set_token(&mut self, token: Option<Token>) {
        self.token = token;
    }

    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    /// The normalised base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The absolute URL of `path` (which starts with `/`) under the base URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/{path}", self.base)
        }
    }

    // ------------------------------------------------------------ plumbing

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token.as_str());
        }
        req
    }

    async fn execute(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>> {
        let mut resp = req.send().await?;
        let status = resp.status();
        // The relay is not trusted with the client's memory: an answer larger than any the
        // API gives (a full inbox of the largest envelopes) is refused, not buffered.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Error::State("the relay's answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            Ok(body)
        } else {
            Err(Error::from_response(status.as_u16(), &body))
        }
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T> {
        let body = self.execute(self.request(method, path)).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    async fn call_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let body = self.execute(self.request(method, path).json(body)).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    async fn call_no_content<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<()> {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(body);
        }
        self.execute(req).await.map(drop)
    }

    // ------------------------------------------------------------ health

    /// `GET /healthz`
    pub async fn healthz(&self) -> Result<Health> {
        self.call(Method::GET, "/healthz").await
    }

    /// `GET /readyz` (an `Err` with status 503 when the relay is not ready)
    pub async fn readyz(&self) -> Result<Health> {
        self.call(Method::GET, "/readyz").await
    }

    // ------------------------------------------------------------ devices

    /// `POST /v1/devices/challenge`
    pub async fn challenge(&self) -> Result<Challenge> {
        self.without_token()
            .call(Method::POST, "/v1/devices/challenge")
            .await
    }

    /// `POST /v1/devices`, as given (survivors put a solved `pow`; members send their token).
    pub async fn register_device(&self, req: &RegisterDevice) -> Result<DeviceRegistered> {
        self.call_json(Method::POST, "/v1/devices", req).await
    }

    /// Register an anonymous survivor device: fetch a challenge, solve it, register `keys`.
    /// Sends no token even if this client has one. The proof-of-work runs on a blocking
    /// thread so it does not stall the runtime.
    pub async fn register_survivor(&self, keys: DeviceKeys) -> Result<DeviceRegistered> {
        let anon = self.without_token();
        let challenge = anon.challenge().await?;
        let pow = solve_challenge(challenge).await?;
        anon.register_device(&RegisterDevice {
            pow: Some(pow),
            keys,
        })
        .await
    }

    /// Register a member's device with the member access token this client holds (from
    /// [`Api::login`]). The returned tokens are bound to the new device.
    pub async fn register_member_device(&self, keys: DeviceKeys) -> Result<DeviceRegistered> {
        if self.token.is_none() {
            return Err(Error::NoToken);
        }
        self.register_device(&RegisterDevice { pow: None, keys })
            .await
    }

    /// `PUT /v1/devices/me/prekeys`
    pub async fn upload_prekeys(&self, req: &UploadPrekeys) -> Result<PrekeyCount> {
        self.call_json(Method::PUT, "/v1/devices/me/prekeys", req)
            .await
    }

    /// `PUT /v1/devices/me/push`: where and when this device may be sent wake signals.
    pub async fn register_push(&self, req: &PushRegistration) -> Result<()> {
        self.call_no_content(Method::PUT, "/v1/devices/me/push", Some(req))
            .await
    }

    /// `DELETE /v1/devices/me/push`: no more wake signals; the server forgets the endpoint.
    pub async fn unregister_push(&self) -> Result<()> {
        self.call_no_content::<()>(Method::DELETE, "/v1/devices/me/push", None)
            .await
    }

    /// `GET /v1/devices/{id}/bundle` (consumes one of that device's one-time prekeys)
    pub async fn bundle(&self, device: Id) -> Result<Bundle> {
        self.call(Method::GET, &format!("/v1/devices/{device}/bundle"))
            .await
    }

    // ------------------------------------------------------------ members and auth

    /// `POST /v1/auth/enroll`
    pub async fn enroll(&self, req: &Enroll) -> Result<Enrolled> {
        self.without_token()
            .call_json(Method::POST, "/v1/auth/enroll", req)
            .await
    }

    /// `POST /v1/auth/login`
    pub async fn login(&self, req: &Login) -> Result<LoggedIn> {
        self.without_token()
            .call_json(Method::POST, "/v1/auth/login", req)
            .await
    }

    /// `POST /v1/auth/refresh`
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let req = RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        self.without_token()
            .call_json(Method::POST, "/v1/auth/refresh", &req)
            .await
    }

    /// `POST /v1/auth/logout`
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let req = LogoutRequest {
            refresh_token: refresh_token.to_owned(),
            remove_device: false,
        };
        self.call_no_content(Method::POST, "/v1/auth/logout", Some(&req))
            .await
    }

    /// `POST /v1/auth/logout` with `remove_device`: end the session and remove the member
    /// device it belongs to (a browser signed out for good).
    pub async fn logout_removing_device(&self, refresh_token: &str) -> Result<()> {
        let req = LogoutRequest {
            refresh_token: refresh_token.to_owned(),
            remove_device: true,
        };
        self.call_no_content(Method::POST, "/v1/auth/logout", Some(&req))
            .await
    }

    /// `DELETE /v1/devices/{id}`: remove one of the signed-in member's own devices.
    pub async fn remove_device(&self, device: Id) -> Result<()> {
        self.call_no_content::<()>(Method::DELETE, &format!("/v1/devices/{device}"), None)
            .await
    }

    /// `PUT /v1/members/me/duty`
    pub async fn set_duty(&self, on_duty: bool) -> Result<Duty> {
        self.call_json(Method::PUT, "/v1/members/me/duty", &Duty { on_duty })
            .await
    }

    /// `GET /v1/org/settings`
    pub async fn org_settings(&self) -> Result<OrgSettings> {
        self.call(Method::GET, "/v1/org/settings").await
    }

    /// `PUT /v1/org/settings` (supervisors)
    pub async fn set_org_settings(&self, settings: &OrgSettings) -> Result<OrgSettings> {
        self.call_json(Method::PUT, "/v1/org/settings", settings)
            .await
    }

    /// `POST /v1/org/invites` (supervisors)
    pub async fn invite(&self, req: &Invite) -> Result<Invited> {
        self.call_json(Method::POST, "/v1/org/invites", req).await
    }

    // ------------------------------------------------------------ conversations

    /// `POST /v1/orgs/{code}/conversations` (survivor device)
    pub async fn open_conversation(
        &self,
        org: &str,
        req: &OpenConversation,
    ) -> Result<ConversationOpened> {
        let path = format!("/v1/orgs/{}/conversations", segment(org));
        self.call_json(Method::POST, &path, req).await
    }

    /// `GET /v1/conversations`
    pub async fn conversations(&self) -> Result<ConversationList> {
        self.call(Method::GET, "/v1/conversations").await
    }

    /// `GET /v1/conversations/{id}`
    pub async fn conversation(&self, id: Id) -> Result<Conversation> {
        self.call(Method::GET, &format!("/v1/conversations/{id}"))
            .await
    }

    /// `POST /v1/conversations/{id}/claim`
    pub async fn claim(&self, id: Id) -> Result<Conversation> {
        self.call(Method::POST, &format!("/v1/conversations/{id}/claim"))
            .await
    }

    /// `POST /v1/conversations/{id}/transfer`
    pub async fn transfer(&self, id: Id, to_member: Id) -> Result<Conversation> {
        let path = format!("/v1/conversations/{id}/transfer");
        self.call_json(Method::POST, &path, &Transfer { to_member })
            .await
    }

    /// `POST /v1/conversations/{id}/close`
    pub async fn close(&self, id: Id) -> Result<()> {
        let path = format!("/v1/conversations/{id}/close");
        self.call_no_content::<()>(Method::POST, &path, None).await
    }

    /// `GET /v1/conversations/{id}/recipients`
    pub async fn recipients(&self, id: Id) -> Result<Recipients> {
        self.call(Method::GET, &format!("/v1/conversations/{id}/recipients"))
            .await
    }

    // ------------------------------------------------------------ trust

    /// `GET /v1/orgs/{code}/key`: the organisation key's public chain (no token needed).
    pub async fn org_key(&self, org: &str) -> Result<OrgKeyChain> {
        self.without_token()
            .call(Method::GET, &format!("/v1/orgs/{}/key", segment(org)))
            .await
    }

    /// `PUT /v1/org/key` (supervisors): register or replace the organisation key.
    pub async fn set_org_key(&self, req: &SetOrgKey) -> Result<OrgKeyChain> {
        self.call_json(Method::PUT, "/v1/org/key", req).await
    }

    /// `GET /v1/org/devices` (supervisors): member devices and their certificates.
    pub async fn org_devices(&self) -> Result<MemberDevices> {
        self.call(Method::GET, "/v1/org/devices").await
    }

    /// `PUT /v1/devices/{id}/certificate` (supervisors)
    pub async fn certify(&self, device: Id, cert: &Certificate) -> Result<MemberDevice> {
        self.call_json(
            Method::PUT,
            &format!("/v1/devices/{device}/certificate"),
            cert,
        )
        .await
    }

    /// `GET /v1/devices/me/certificate`: this member device's own certificate.
    pub async fn my_certificate(&self) -> Result<Certificate> {
        self.call(Method::GET, "/v1/devices/me/certificate").await
    }

    // ------------------------------------------------------------ envelopes

    /// `POST /v1/conversations/{id}/messages`: one opaque ciphertext per recipient device.
    /// A stale device list is `Err` with [`Error::stale_recipients`] set.
    pub async fn send(&self, conversation: Id, req: &SendMessage) -> Result<Accepted> {
        let path = format!("/v1/conversations/{conversation}/messages");
        self.call_json(Method::POST, &path, req).await
    }

    /// `GET /v1/messages`
    pub async fn inbox(&self) -> Result<Inbox> {
        self.call(Method::GET, "/v1/messages").await
    }

    /// `POST /v1/messages/ack`
    pub async fn ack(&self, ids: &[Id]) -> Result<Acked> {
        let req = Ack { ids: ids.to_vec() };
        self.call_json(Method::POST, "/v1/messages/ack", &req).await
    }

    /// `GET /v1/stream`: open the WebSocket with this client's token.
    pub async fn stream(&self) -> Result<Stream> {
        let token = self.token.as_ref().ok_or(Error::NoToken)?;
        Stream::connect(&self.base, token.as_str()).await
    }

    /// `POST /v1/stream/ticket`: a single-use, 30-second ticket that opens the stream once
    /// without the `Authorization` header (what a browser must do); see
    /// [`Stream::connect_with_ticket`].
    pub async fn stream_ticket(&self) -> Result<StreamTicket> {
        self.call(Method::POST, "/v1/stream/ticket").await
    }

    // ------------------------------------------------------------ quick exit

    /// `POST /v1/exit` with a survivor's exit token (not the access token).
    pub async fn exit(&self, exit_token: &str, mode: ExitMode) -> Result<()> {
        self.with_token(exit_token)
            .call_no_content(Method::POST, "/v1/exit", Some(&ExitRequest { mode }))
            .await
    }

    /// `POST /v1/exit/return`: come back after `hide` with the exit token, a freshly
    /// solved proof-of-work (see [`Api::challenge`] and [`solve_challenge`]) and the device's
    /// identity, whose Ed25519 key signs the challenge. Returns the new token pair and the new
    /// exit token, which replaces the old one (store it; the old one no longer works).
    pub async fn exit_return(
        &self,
        exit_token: &str,
        pow: PowSolution,
        identity: &IdentityKeyPair,
    ) -> Result<Returned> {
        let signature = identity.sign(&ReturnRequest::signed_message(pow.challenge.as_slice()));
        let req = ReturnRequest {
            pow,
            signature: quietline_proto::b64::Bytes(signature.to_vec()),
        };
        self.with_token(exit_token)
            .call_json(Method::POST, "/v1/exit/return", &req)
            .await
    }

    // ------------------------------------------------------------ raw

    /// Send anything to any path and get the status, headers and body back, whatever the
    /// status. Only a transport failure is an `Err`. For tests of malformed input.
    pub async fn raw(&self, req: RawRequest) -> Result<RawResponse> {
        let mut builder = self.http.request(req.method, self.url(&req.path));
        if let (true, Some(token)) = (req.auth, &self.token) {
            builder = builder.bearer_auth(token.as_str());
        }
        builder = builder.headers(req.headers);
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let resp = builder.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

/// Solve a proof-of-work challenge off the async runtime.
pub async fn solve_challenge(challenge: Challenge) -> Result<PowSolution> {
    let bits = challenge.bits;
    let bytes = challenge.challenge;
    tokio::task::spawn_blocking(move || {
        quietline_proto::pow::solve(bytes.as_slice(), bits).map(|nonce| PowSolution {
            challenge: bytes,
            nonce,
        })
    })
    .await
    .map_err(|e| Error::State(format!("proof-of-work task failed: {e}")))?
    .ok_or(Error::ProofOfWork)
}

/// A request for [`Api::raw`]: any method, path, headers and body bytes.
#[derive(Clone, Debug)]
pub struct RawRequest {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    auth: bool,
}

impl RawRequest {
    /// `method` on `path` (appended to the base URL). Sends the client's token unless
    /// [`RawRequest::no_auth`] is called.
    pub fn new(method: Method, path: impl Into<String>) -> RawRequest {
        RawRequest {
            method,
            path: path.into(),
            headers: HeaderMap::new(),
            body: None,
            auth: true,
        }
    }

    pub fn get(path: impl Into<String>) -> RawRequest {
        RawRequest::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> RawRequest {
        RawRequest::new(Method::POST, path)
    }

    pub fn put(path: impl Into<String>) -> RawRequest {
        RawRequest::new(Method::PUT, path)
    }

    pub fn delete(path: impl Into<String>) -> RawRequest {
        RawRequest::new(Method::DELETE, path)
    }

    /// Add a header. Invalid names or values are an `Err` rather than silently dropped.
    pub fn header(mut self, name: &str, value: &str) -> Result<RawRequest> {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::Header(e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| Error::Header(e.to_string()))?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// Send this `Authorization` header value verbatim instead of the client's token (for
    /// forged, expired or malformed tokens).
    pub fn authorization(mut self, value: &str) -> Result<RawRequest> {
        self.auth = false;
        self.header(AUTHORIZATION.as_str(), value)
    }

    /// Do not send the client's token.
    pub fn no_auth(mut self) -> RawRequest {
        self.auth = false;
        self
    }

    /// Body bytes, sent as they are, with no content type unless one is set by
    /// [`RawRequest::header`].
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> RawRequest {
        self.body = Some(body.into());
        self
    }

    /// A JSON body with `Content-Type: application/json`. Takes any value, so tests can send
    /// JSON the typed API would never produce.
    pub fn json(mut self, value: &serde_json::Value) -> RawRequest {
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.body = Some(value.to_string().into_bytes());
        self
    }

    /// Body bytes with `Content-Type: application/json`, whether or not they are JSON.
    pub fn json_bytes(mut self, body: impl Into<Vec<u8>>) -> RawRequest {
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.body = Some(body.into());
        self
    }
}

/// What [`Api::raw`] got back.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body parsed as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The relay's uniform error body, if the body is one.
    pub fn error_body(&self) -> Option<quietline_proto::ErrorBody> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Ok(self)` for a 2xx status, the SDK error otherwise.
    pub fn success(self) -> Result<RawResponse> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(Error::from_response(self.status, &self.body))
        }
    }
}

/// A fresh random message id (128 bits from the OS generator).
pub fn random_id() -> Result<Id> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::State(format!("no randomness: {e}")))?;
    Ok(Id(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised_and_prefixes_kept() {
        let api = Api::new("http://127.0.0.1:8080/x7/").unwrap();
        assert_eq!(api.base_url(), "http://127.0.0.1:8080/x7");
        assert_eq!(api.url("/healthz"), "http://127.0.0.1:8080/x7/healthz");
        assert_eq!(
            api.url("v1/messages"),
            "http://127.0.0.1:8080/x7/v1/messages"
        );
        let api = Api::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(api.url("/healthz"), "http://127.0.0.1:8080/healthz");
        let api = Api::new("https://help.example.org/a/b").unwrap();
        assert_eq!(
            api.url("/v1/stream"),
            "https://help.example.org/a/b/v1/stream"
        );
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for bad in [
            "127.0.0.1:8080",
            "ftp://example.org",
            "http://example.org/?a=1",
            "http://example.org/#x",
            "",
        ] {
            assert!(matches!(Api::new(bad), Err(Error::Url(_))), "{bad}");
        }
    }

    #[test]
    fn org_codes_are_escaped_as_one_segment() {
        assert_eq!(segment("safe-harbor_1"), "safe-harbor_1");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let api = Api::new("http://127.0.0.1:1").unwrap().with_token("s3cret");
        let shown = format!("{api:?}");
        assert!(!shown.contains("s3cret"));
        assert_eq!(api.token().map(Token::as_str), Some("s3cret"));
        assert!(api.without_token().token().is_none());
    }

    #[test]
    fn exit_modes_serialise_as_documented() {
        use quietline_proto::wire;
        // Each of the three as the documentation spells it, and as the relay reads it.
        for (mode, name, relay) in [
            (ExitMode::Hide, "hide", wire::ExitMode::Hide),
            (ExitMode::Wipe, "wipe", wire::ExitMode::Wipe),
            (ExitMode::Duress, "duress", wire::ExitMode::Duress),
        ] {
            let json = serde_json::to_string(&ExitRequest { mode }).unwrap();
            assert_eq!(json, format!(r#"{{"mode":"{name}"}}"#));
            let read: wire::ExitRequest = serde_json::from_str(&json).unwrap();
            assert_eq!(read.mode, relay);
        }
    }

    #[test]
    fn raw_requests_refuse_bad_headers() {
        assert!(RawRequest::get("/x").header("bad name", "v").is_err());
        assert!(RawRequest::get("/x").header("x-ok", "line\nbreak").is_err());
        let req = RawRequest::post("/x")
            .authorization("Bearer forged")
            .unwrap();
        assert!(!req.auth);
    }

    #[tokio::test]
    async fn unreachable_relays_are_transport_errors() {
        // Port 1 on loopback: nothing listens there.
        let api = Api::new("http://127.0.0.1:1").unwrap();
        let err = api.healthz().await.unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err:?}");
        assert_eq!(err.code(), None);
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(random_id().unwrap(), random_id().unwrap());
    }
}
