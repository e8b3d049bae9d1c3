//! Quick exit (DESIGN.md §7, invariant 4): wipe leaves nothing and kills every token at once,
//! duress alerts the advocate, hide holds delivery until a return with proof-of-work, and
//! every exit answer is the same.

use quietline_client::{Api, ExitMode, RawRequest, Stream, solve_challenge};
use quietline_proto::b64::Bytes;
use quietline_proto::wire::{
    Event, EventKind, OpenConversation, OutgoingEnvelope, PowSolution, Role, SendMessage,
    ServerFrame,
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
            .exit_return(&sur.exit_token, fresh_pow(&s).await)
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
        .exit_return(&sur.exit_token, forged)
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
            .exit_return("not-an-exit-token", fresh_pow(&s).await)
            .await
            .unwrap_err(),
    );
    refused(sur.api.inbox().await.unwrap_err());

    let tokens = s
        .api()
        .exit_return(&sur.exit_token, fresh_pow(&s).await)
        .await
        .unwrap();
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
    // Returning twice is refused: the device is no longer hidden.
    refused(
        s.api()
            .exit_return(&sur.exit_token, fresh_pow(&s).await)
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
        client.persist_to(StateFile::new(&path, key)).unwrap();
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
    // Only the hidden device's file is left; no temporary copy of any other.
    assert_eq!(files(dir.path()), vec!["hide.state".to_owned()]);
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

quietline_tests::on_both!(
    wipe_leaves_no_rows_for_the_device,
    wipe_kills_tokens_at_once_even_expired_ones,
    duress_wipes_and_alerts_the_advocate,
    hide_holds_delivery_and_return_restores_it,
    every_exit_answer_is_the_same,
    no_exit_answer_leaves_before_the_floor,
    quick_exit_destroys_the_state_file_on_wipe_and_duress,
);
