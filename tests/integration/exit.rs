//! Quick exit (docs/THREAT_MODEL.md, invariant 4): wipe leaves nothing and kills every token at once,
//! duress alerts the advocate, hide holds delivery until a return with proof-of-work, and
//! every exit answer is the same.

use quietline_client::{Api, ExitMode, RawRequest, Stream, solve_challenge};
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::keys::IdentityKeyPair;
use quietline_proto::wire::{
    Event, EventKind, OpenConversation, OutgoingEnvelope, PowSolution, ReturnRequest, Returned,
    Role, SendMessage, ServerFrame,
};
use quietline_proto::{ErrorCode, Id};
use quietline_tests::*;
use std::time::{Duration, Instant};

/// A claimed conversation with one unacknowledged envelope each way.
async fn engaged(s: &TestServer, adv: &Member) -> (Survivor, Id) {
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    send(&sur.api, conv, adv.device_id).await;
    adv.api.claim(conv).await.unwrap();
    send(&adv.api, conv, sur.device_id).await;
    (sur, conv)
}

async fn send(api: &Api, conv: Id, to: Id) -> Id {
    let id = random_id();
    api.send(
        conv,
        &SendMessage {
            message_id: id,
            envelopes: vec![OutgoingEnvelope {
                device_id: to,
                ciphertext: opaque(1024),
            }],
        },
    )
    .await
    .unwrap();
    id
}

async fn setup(backend: Backend) -> (TestServer, Member) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    (s, adv)
}

async fn events(m: &Member) -> Vec<Event> {
    m.api.inbox().await.unwrap().events
}

/// A freshly solved proof-of-work from the server.
async fn fresh_pow(s: &TestServer) -> PowSolution {
    solve_challenge(s.api().challenge().await.unwrap())
        .await
        .unwrap()
}

/// The next frame, or `None` once the server has closed the stream.
async fn closed_within_10s(stream: &mut Stream) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) | Ok(Err(_)) => return true,
            Err(_) => return false,
        }
    }
    false
}

fn refused(err: quietline_client::Error) {
    assert!(err.is(ErrorCode::Unauthorized), "{err}");
}

/// The hex and base64url forms of a value as `dump_all_tables` renders blobs.
fn forms(b: &[u8]) -> [String; 2] {
    [hex(b), quietline_proto::b64::encode(b)]
}

async fn wipe_leaves_no_rows_for_the_device(backend: Backend) {
    let (s, adv) = setup(backend).await;
    let (sur, conv) = engaged(&s, &adv).await;
    // A push registration too (no safe hours, so no wake is ever sent).
    const ENDPOINT: &str = "https://push.example.org/up/wiped-device-endpoint";
    sur.api
        .register_push(&quietline_proto::wire::PushRegistration {
            endpoint: ENDPOINT.into(),
            utc_offset_minutes: 0,
            safe_hours: vec![],
        })
        .await
        .unwrap();
    let exit_hash = quietline_server::random::token_hash(&sur.exit_token);
    let mut secrets: Vec<String> = [&sur.device_id.0[..], &conv.0[..], &exit_hash[..]]
        .iter()
        .flat_map(|b| forms(b))
        .collect();
    secrets.push(ENDPOINT.to_owned());
    let before = s.store().dump_all_tables().await.unwrap();
    for secret in &secrets {
        assert!(
            before.iter().any(|(_, row)| row.contains(secret.as_str())),
            "the check can see {secret} before the wipe"
        );
    }
    s.api().exit(&sur.exit_token, ExitMode::Wipe).await.unwrap();
    for (table, row) in s.store().dump_all_tables().await.unwrap() {
        for secret in &secrets {
            assert!(
                !row.contains(secret.as_str()),
                "{table} still mentions the wiped device: {row}"
            );
        }
    }
    assert_eq!(
        s.store().count_envelopes(&adv.device_id.0).await.unwrap(),
        0
    );
    let evs = events(&adv).await;
    let ended: Vec<_> = evs
        .iter()
        .filter(|e| e.kind == EventKind::EndedBySurvivor)
        .collect();
    assert_eq!(ended.len(), 1, "{evs:?}");
    assert_eq!(
        ended[0].conversation_id, None,
        "the purged id is not stored again"
    );
    assert!(
        adv.api
            .conversation(conv)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    s.stop().await;
}

async fn wipe_kills_tokens_at_once_even_expired_ones(backend: Backend) {
    let (s, adv) = setup(backend).await;
    let (sur, _) = engaged(&s, &adv).await;
    let mut stream = sur.api.stream().await.unwrap();
    s.api().exit(&sur.exit_token, ExitMode::Wipe).await.unwrap();
    refused(sur.api.inbox().await.unwrap_err());
    refused(s.api().refresh(&sur.refresh_token).await.unwrap_err());
    refused(
        s.api()
            .exit_return(&sur.exit_token, fresh_pow(&s).await, &sur.identity)
            .await
            .unwrap_err(),
    );
    assert!(closed_within_10s(&mut stream).await, "live stream closed");

    // An access token whose expiry passed: the exit token still works, and afterwards the
    // access token is dead even on a clock at which it would have been valid again.
    let (late, _) = engaged(&s, &adv).await;
    let issued_at = s.clock_now();
    s.clock.advance(2 * 3600);
    refused(late.api.inbox().await.unwrap_err());
    s.api()
        .exit(&late.exit_token, ExitMode::Wipe)
        .await
        .unwrap();
    s.clock.set(issued_at);
    refused(late.api.inbox().await.unwrap_err());
    refused(s.api().refresh(&late.refresh_token).await.unwrap_err());
    assert!(
        s.store()
            .device_by_exit_token(&quietline_server::random::token_hash(&late.exit_token))
            .await
            .unwrap()
            .is_none(),
        "the exit token went with the device"
    );
    s.stop().await;
}

async fn duress_wipes_and_alerts_the_advocate(backend: Backend) {
    let (s, adv) = setup(backend).await;
    let (sur, conv) = engaged(&s, &adv).await;
    let mut adv_stream = adv.api.stream().await.unwrap();
    s.api()
        .exit(&sur.exit_token, ExitMode::Duress)
        .await
        .unwrap();
    let alert = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), adv_stream.next())
            .await
            .expect("the alert arrives live")
            .unwrap()
            .expect("stream open");
        if let ServerFrame::Event(e) = frame
            && e.kind == EventKind::PossibleDuress
        {
            break e;
        }
    };
    assert_eq!(alert.conversation_id, None);
    assert!(
        !events(&adv)
            .await
            .iter()
            .any(|e| e.kind == EventKind::EndedBySurvivor),
        "duress is its own alert"
    );
    assert!(
        s.store()
            .device_auth(&sur.device_id.0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.store().conversation(&conv.0).await.unwrap().is_none());
    assert_eq!(
        s.store().count_envelopes(&sur.device_id.0).await.unwrap(),
        0
    );
    assert_eq!(
        s.store().count_envelopes(&adv.device_id.0).await.unwrap(),
        0
    );
    refused(sur.api.inbox().await.unwrap_err());
    s.stop().await;
}

async fn hide_holds_delivery_and_return_restores_it(backend: Backend) {
    let (s, adv) = setup(backend).await;
    let (sur, conv) = engaged(&s, &adv).await;
    let mut stream = sur.api.stream().await.unwrap();
    s.api().exit(&sur.exit_token, ExitMode::Hide).await.unwrap();
    assert!(closed_within_10s(&mut stream).await, "live stream closed");

    let left: Vec<_> = events(&adv)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::SurvivorLeft)
        .collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].conversation_id, Some(conv));
    refused(sur.api.inbox().await.unwrap_err());
    refused(s.api().refresh(&sur.refresh_token).await.unwrap_err());

    // Deliveries are held, not refused or dropped.
    let held = send(&adv.api, conv, sur.device_id).await;
    assert_eq!(
        s.store().count_envelopes(&sur.device_id.0).await.unwrap(),
        2
    );

    // No way back without a fresh proof-of-work, nor with someone else's token.
    let forged = PowSolution {
        challenge: Bytes(rand_bytes::<32>().to_vec()),
        nonce: 0,
    };
    let err = s
        .api()
        .exit_return(&sur.exit_token, forged, &sur.identity)
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::InvalidProofOfWork), "{err}");
    let r = s
        .api()
        .with_token(sur.exit_token.as_str())
        .raw(RawRequest::post("/v1/exit/return").json(&serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    refused(
        s.api()
            .exit_return("not-an-exit-token", fresh_pow(&s).await, &sur.identity)
            .await
            .unwrap_err(),
    );
    refused(sur.api.inbox().await.unwrap_err());

    let tokens = s
        .api()
        .exit_return(&sur.exit_token, fresh_pow(&s).await, &sur.identity)
        .await
        .unwrap();
    let new_exit_token = tokens.exit_token.clone();
    let tokens = tokens.tokens;
    let back = s.api().with_token(tokens.access_token.as_str());
    let inbox = back.inbox().await.unwrap();
    assert_eq!(inbox.envelopes.len(), 2, "held envelopes are delivered");
    assert!(inbox.envelopes.iter().any(|e| e.id == held));
    assert!(
        events(&adv)
            .await
            .iter()
            .any(|e| e.kind == EventKind::SurvivorReturned && e.conversation_id == Some(conv))
    );
    // Tokens from before the hide stay dead; the new refresh token works.
    refused(sur.api.inbox().await.unwrap_err());
    s.api().refresh(&tokens.refresh_token).await.unwrap();
    // Returning twice is refused: the device is no longer hidden (and the old exit token
    // was replaced).
    refused(
        s.api()
            .exit_return(&new_exit_token, fresh_pow(&s).await, &sur.identity)
            .await
            .unwrap_err(),
    );
    refused(
        s.api()
            .exit_return(&sur.exit_token, fresh_pow(&s).await, &sur.identity)
            .await
            .unwrap_err(),
    );
    s.stop().await;
}

fn exit_request(token: Option<&str>, body: &[u8]) -> RawRequest {
    let req = RawRequest::post("/v1/exit").json_bytes(body.to_vec());
    match token {
        Some(t) => req.authorization(&format!("Bearer {t}")).unwrap(),
        None => req.no_auth(),
    }
}

async fn every_exit_answer_is_the_same(backend: Backend) {
    let (s, adv) = setup(backend).await;
    let mut answers = Vec::new();
    let mut ask = async |label: &str, token: Option<&str>, body: &[u8]| {
        let r = s.api().raw(exit_request(token, body)).await.unwrap();
        answers.push((label.to_owned(), r.status, r.body));
    };
    let (hide, _) = engaged(&s, &adv).await;
    let (wipe, _) = engaged(&s, &adv).await;
    let (duress, _) = engaged(&s, &adv).await;
    let (bad_body, _) = engaged(&s, &adv).await;
    ask("hide", Some(&hide.exit_token), br#"{"mode":"hide"}"#).await;
    ask("wipe", Some(&wipe.exit_token), br#"{"mode":"wipe"}"#).await;
    ask("duress", Some(&duress.exit_token), br#"{"mode":"duress"}"#).await;
    ask(
        "unknown",
        Some(&quietline_server::random::token()),
        br#"{"mode":"wipe"}"#,
    )
    .await;
    ask("reused", Some(&wipe.exit_token), br#"{"mode":"wipe"}"#).await;
    ask("hide again", Some(&hide.exit_token), br#"{"mode":"hide"}"#).await;
    ask(
        "bad mode",
        Some(&bad_body.exit_token),
        br#"{"mode":"burn"}"#,
    )
    .await;
    ask("not json", Some(&bad_body.exit_token), b"mode=wipe").await;
    ask("no token", None, br#"{"mode":"wipe"}"#).await;
    for (label, status, body) in &answers {
        assert_eq!(*status, 200, "{label}");
        // The JSON, padded with spaces to the 512-byte bucket like every API body.
        assert_eq!(body.trim_ascii_end(), br#"{"status":"ok"}"#, "{label}");
        assert_eq!(body.len(), 512, "{label}");
        assert_eq!(
            body, &answers[0].2,
            "{label}: byte for byte the same as the first"
        );
    }
    // A malformed body did nothing, even with a valid token.
    bad_body.api.inbox().await.unwrap();
    s.stop().await;
}

/// `SecureClient::quick_exit` destroys the sealed state file on `wipe` and `duress` (even
/// when the relay cannot be reached), and keeps it on `hide`, when the survivor comes back.
async fn quick_exit_destroys_the_state_file_on_wipe_and_duress(backend: Backend) {
    use quietline_client::{SecureClient, StateFile, StoreKey};
    let (s, _adv) = setup(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let mut unreachable = None;
    for (name, mode) in [
        ("hide", ExitMode::Hide),
        ("wipe", ExitMode::Wipe),
        ("duress", ExitMode::Duress),
        ("wipe-offline", ExitMode::Wipe),
    ] {
        let path = dir.path().join(format!("{name}.state"));
        let key = StoreKey::generate().unwrap();
        let mut client = SecureClient::register_survivor(&s.api()).await.unwrap();
        client
            .persist_to(StateFile::new(&path, key).unwrap())
            .unwrap();
        assert!(path.exists(), "{name}: saved");
        if name == "wipe-offline" {
            // The relay is gone (stopped below): the local state goes all the same.
            unreachable = Some((client, path));
            continue;
        }
        client.quick_exit(mode).await.unwrap();
        match mode {
            ExitMode::Hide => assert!(path.exists(), "{name}: kept for the return"),
            _ => assert!(!path.exists(), "{name}: destroyed"),
        }
    }
    s.stop().await;
    let (mut client, path) = unreachable.unwrap();
    assert!(client.quick_exit(ExitMode::Wipe).await.is_err());
    assert!(
        !path.exists(),
        "destroyed although the relay did not answer"
    );
    // Only the hidden device's file (and its lock file) is left; no temporary copy and no
    // lock of any other.
    let mut left = files(dir.path());
    left.sort();
    assert_eq!(
        left,
        vec!["hide.state".to_owned(), "hide.state.lock".to_owned()]
    );
}

/// No answer of the exit service leaves before `ANSWER_FLOOR`, whatever the mode, token
/// or body. Only a lower bound is asserted (a loaded machine makes calls slower, never
/// faster); the latency per mode is measured by `cargo bench --bench exit_modes`.
async fn no_exit_answer_leaves_before_the_floor(backend: Backend) {
    use quietline_server::service::exit::{ANSWER_FLOOR, exit};
    let (s, adv) = setup(backend).await;
    let (hide, _) = engaged(&s, &adv).await;
    let (wipe, _) = engaged(&s, &adv).await;
    let (duress, _) = engaged(&s, &adv).await;
    let unknown = quietline_server::random::token();
    let calls: [(&str, Option<&str>, &[u8]); 6] = [
        ("hide", Some(&hide.exit_token), br#"{"mode":"hide"}"#),
        ("wipe", Some(&wipe.exit_token), br#"{"mode":"wipe"}"#),
        ("duress", Some(&duress.exit_token), br#"{"mode":"duress"}"#),
        ("unknown", Some(&unknown), br#"{"mode":"wipe"}"#),
        ("no token", None, br#"{"mode":"wipe"}"#),
        ("malformed", Some(&hide.exit_token), b"mode=wipe"),
    ];
    for (label, token, body) in calls {
        let started = Instant::now();
        exit(&s.state, token, body).await.unwrap();
        let took = started.elapsed();
        assert!(took >= ANSWER_FLOOR, "{label} answered after {took:?}");
    }
    // The real exits happened (the floor delays the answer, not the work).
    refused(hide.api.inbox().await.unwrap_err());
    refused(wipe.api.inbox().await.unwrap_err());
    refused(duress.api.inbox().await.unwrap_err());
    s.stop().await;
}

/// `POST /v1/exit/return` with a body signed by `identity` (or with `signature` as given).
async fn return_raw(
    s: &TestServer,
    exit_token: &str,
    identity: &IdentityKeyPair,
    signature: Option<Vec<u8>>,
) -> quietline_client::RawResponse {
    let pow = fresh_pow(s).await;
    let signature = signature.unwrap_or_else(|| {
        identity
            .sign(&ReturnRequest::signed_message(pow.challenge.as_slice()))
            .to_vec()
    });
    let body = serde_json::to_vec(&ReturnRequest {
        pow,
        signature: Bytes(signature),
    })
    .unwrap();
    s.api()
        .raw(
            RawRequest::post("/v1/exit/return")
                .json_bytes(body)
                .authorization(&format!("Bearer {exit_token}"))
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn exit_return_needs_the_devices_signature_and_every_failure_answers_the_same(
    backend: Backend,
) {
    let (s, adv) = setup(backend).await;
    let (hidden, _) = engaged(&s, &adv).await;
    s.api()
        .exit(&hidden.exit_token, ExitMode::Hide)
        .await
        .unwrap();
    let (wiped, _) = engaged(&s, &adv).await;
    s.api()
        .exit(&wiped.exit_token, ExitMode::Hide)
        .await
        .unwrap();
    s.api()
        .exit(&wiped.exit_token, ExitMode::Wipe)
        .await
        .unwrap();
    let (not_hidden, _) = engaged(&s, &adv).await;
    let stranger = IdentityKeyPair::generate().unwrap();

    let failures = [
        // The exit token and a proof-of-work, signed by another key: not a login.
        (
            "wrong key",
            return_raw(&s, &hidden.exit_token, &stranger, None).await,
        ),
        (
            "signature not 64 bytes",
            return_raw(&s, &hidden.exit_token, &hidden.identity, Some(vec![1; 10])).await,
        ),
        (
            "signature over another challenge",
            return_raw(
                &s,
                &hidden.exit_token,
                &hidden.identity,
                Some(
                    hidden
                        .identity
                        .sign(&ReturnRequest::signed_message(&[9; 32]))
                        .to_vec(),
                ),
            )
            .await,
        ),
        (
            "wiped",
            return_raw(&s, &wiped.exit_token, &wiped.identity, None).await,
        ),
        (
            "never existed",
            return_raw(&s, "no-such-exit-token", &stranger, None).await,
        ),
        (
            "not hidden",
            return_raw(&s, &not_hidden.exit_token, &not_hidden.identity, None).await,
        ),
    ];
    for (label, r) in &failures {
        assert_eq!(r.status, 401, "{label}");
        assert_eq!(r.body, failures[0].1.body, "{label}: the same bytes");
    }
    assert_error_code(&failures[0].1.body, "unauthorized");
    // None of them brought anything back.
    let row = s
        .store()
        .device_auth(&hidden.device_id.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.hidden, 1);

    // The device's own key: back, with a new exit token; the old one is spent.
    let r = return_raw(&s, &hidden.exit_token, &hidden.identity, None).await;
    assert_eq!(r.status, 200);
    let back: Returned = serde_json::from_slice(&r.body).unwrap();
    assert_ne!(back.exit_token, hidden.exit_token);
    let api = s.api().with_token(back.tokens.access_token.as_str());
    api.inbox().await.unwrap();
    let old = quietline_server::random::token_hash(&hidden.exit_token);
    assert!(
        s.store()
            .device_by_exit_token(&old)
            .await
            .unwrap()
            .is_none()
    );
    // The old exit token does nothing any more; the new one hides the device again.
    s.api()
        .exit(&hidden.exit_token, ExitMode::Hide)
        .await
        .unwrap();
    api.inbox().await.unwrap();
    s.api()
        .exit(&back.exit_token, ExitMode::Hide)
        .await
        .unwrap();
    refused(api.inbox().await.unwrap_err());
    s.stop().await;
}

fn assert_error_code(body: &[u8], code: &str) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["error"]["code"], code);
}

/// Whether `needle` occurs anywhere in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn a_wiped_survivors_ciphertext_is_nowhere_in_the_database_files(backend: Backend) {
    let (s, adv) = setup(backend).await;
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    adv.api.claim(conv).await.unwrap();
    // One envelope that fits in a page and one that spills onto overflow pages, each way.
    let mut sent = Vec::new();
    for (api, to, len) in [
        (&sur.api, adv.device_id, 1024),
        (&sur.api, adv.device_id, 16 * 1024),
        (&adv.api, sur.device_id, 1024),
        (&adv.api, sur.device_id, 16 * 1024),
    ] {
        let ciphertext = opaque(len);
        api.send(
            conv,
            &SendMessage {
                message_id: random_id(),
                envelopes: vec![OutgoingEnvelope {
                    device_id: to,
                    ciphertext: ciphertext.clone(),
                }],
            },
        )
        .await
        .unwrap();
        sent.push(ciphertext.into_vec());
    }
    // Before the wipe the bytes are on disk (so the search below can find them).
    let files = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("quietline.db")
            })
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    };
    if let Some(dir) = &s.data_dir {
        let before = files(dir.path());
        for c in &sent {
            assert!(
                before.iter().any(|(_, bytes)| contains(bytes, &c[..64])),
                "the envelope was written to disk"
            );
        }
    }
    s.api().exit(&sur.exit_token, ExitMode::Wipe).await.unwrap();

    if let Some(dir) = &s.data_dir {
        // The database file, the write-ahead log and its index: no slice of any
        // ciphertext, in live or free pages.
        for (name, bytes) in files(dir.path()) {
            for c in &sent {
                for chunk in c.chunks(64) {
                    assert!(!contains(&bytes, chunk), "{name} still holds wiped bytes");
                }
            }
        }
    }
    let dump = s.store().dump_all_tables().await.unwrap();
    for c in &sent {
        let needle = hex(&c[..64]);
        assert!(dump.iter().all(|(_, row)| !row.contains(&needle)));
    }
    s.stop().await;
}

quietline_tests::on_both!(
    wipe_leaves_no_rows_for_the_device,
    wipe_kills_tokens_at_once_even_expired_ones,
    duress_wipes_and_alerts_the_advocate,
    hide_holds_delivery_and_return_restores_it,
    every_exit_answer_is_the_same,
    exit_return_needs_the_devices_signature_and_every_failure_answers_the_same,
    a_wiped_survivors_ciphertext_is_nowhere_in_the_database_files,
    no_exit_answer_leaves_before_the_floor,
    quick_exit_destroys_the_state_file_on_wipe_and_duress,
);
