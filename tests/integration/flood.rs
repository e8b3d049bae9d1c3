//! Anonymous routes under a flood: challenge, register, enrol, login, exit and exit/return
//! have global limits keyed by nothing identifying. A flood of each, while a conversation
//! runs, gets `rate_limited` (429, the uniform error body) and never a server error; the
//! conversation keeps working; argon2 never runs more often at once than its slots allow.

use futures_util::future::join_all;
use quietline_client::{Api, RawRequest, RawResponse};
use quietline_proto::wire::{OpenConversation, Role};
use quietline_proto::{ErrorBody, ErrorCode};
use quietline_tests::*;

/// Requests per route in one flood: well above every burst configured below.
const FLOOD: usize = 40;

fn flood_requests(exit_token: &str) -> Vec<(&'static str, RawRequest)> {
    let challenge = || RawRequest::post("/v1/devices/challenge").no_auth();
    let register = || {
        RawRequest::post("/v1/devices")
            .no_auth()
            .json(&serde_json::json!({
                "keys": serde_json::to_value(fake_keys(0)).unwrap(),
                "pow": {"challenge": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "nonce": 1},
            }))
    };
    let enroll = || {
        RawRequest::post("/v1/auth/enroll")
            .no_auth()
            .json(&serde_json::json!({
                "token": "no-such-invitation", "password": "a long enough password",
            }))
    };
    let login = || {
        RawRequest::post("/v1/auth/login").no_auth().json(&serde_json::json!({
            "org": "hotline", "handle": "ana", "password": "a wrong password!!", "totp": "000000",
        }))
    };
    let exit = || {
        RawRequest::post("/v1/exit")
            .authorization(&format!("Bearer {}", hex(&rand_bytes::<24>())))
            .unwrap()
            .json(&serde_json::json!({"mode": "wipe"}))
    };
    let exit_return = || {
        RawRequest::post("/v1/exit/return")
            .authorization(&format!("Bearer {exit_token}"))
            .unwrap()
            .json(&serde_json::json!({
                "pow": {"challenge": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "nonce": 1},
                "signature": "A".repeat(86),
            }))
    };
    let mut out = Vec::new();
    for _ in 0..FLOOD {
        out.push(("challenge", challenge()));
        out.push(("register", register()));
        out.push(("enroll", enroll()));
        out.push(("login", login()));
        out.push(("exit", exit()));
        out.push(("exit/return", exit_return()));
    }
    out
}

/// One survivor -> advocate -> survivor round trip through the relay.
async fn round_trip(sur: &Survivor, adv: &Member, conv: quietline_proto::Id) {
    sur.api
        .send(conv, &one_envelope(adv.device_id))
        .await
        .expect("survivor's message accepted during the flood");
    let inbox = adv.api.inbox().await.unwrap();
    assert!(!inbox.envelopes.is_empty(), "advocate received it");
    let ids: Vec<_> = inbox.envelopes.iter().map(|e| e.id).collect();
    adv.api.ack(&ids).await.unwrap();
    adv.api
        .send(conv, &one_envelope(sur.device_id))
        .await
        .expect("advocate's reply accepted during the flood");
    let inbox = sur.api.inbox().await.unwrap();
    assert!(!inbox.envelopes.is_empty(), "survivor received the reply");
    let ids: Vec<_> = inbox.envelopes.iter().map(|e| e.id).collect();
    sur.api.ack(&ids).await.unwrap();
}

async fn flooding_every_anonymous_route_gets_429_and_the_conversation_keeps_working(
    backend: Backend,
) {
    let s = TestServer::start_with(backend, |c| {
        c.challenge_per_second = 1;
        c.challenge_burst = 5;
        c.register_per_second = 1;
        c.register_burst = 5;
        c.enroll_per_second = 1;
        c.enroll_burst = 5;
        c.login_per_second = 1;
        c.login_burst = 5;
        c.exit_return_per_second = 1;
        c.exit_return_burst = 5;
        c.argon2_concurrency = 1;
        c.argon2_queue = 2;
        c.exit_concurrency = 1;
        c.exit_queue = 2;
    })
    .await;
    // Set-up spends a little of each bucket; the buckets refill at 1/s.
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    adv.api.claim(conv).await.unwrap();
    round_trip(&sur, &adv, conv).await;

    let anonymous = Api::new(&s.base).unwrap();
    let requests = flood_requests(&sur.exit_token);
    let flood = join_all(requests.into_iter().map(|(route, req)| {
        let api = anonymous.clone();
        async move {
            (
                route,
                api.raw(req)
                    .await
                    .expect("an answer, not a dropped connection"),
            )
        }
    }));
    let conversation = async {
        for _ in 0..3 {
            round_trip(&sur, &adv, conv).await;
        }
    };
    let (answers, ()) = tokio::join!(flood, conversation);

    let mut limited: std::collections::HashMap<&str, usize> = Default::default();
    let mut exit_bodies: Vec<Vec<u8>> = Vec::new();
    for (route, r) in &answers {
        assert!(r.status < 500, "{route} answered {}", r.status);
        if r.status == 429 {
            assert_uniform_rate_limited(r);
            *limited.entry(route).or_default() += 1;
        } else if *route == "exit" {
            assert_eq!(r.status, 200);
            exit_bodies.push(r.body.clone());
        }
    }
    for route in [
        "challenge",
        "register",
        "enroll",
        "login",
        "exit",
        "exit/return",
    ] {
        assert!(
            limited.get(route).copied().unwrap_or(0) > 0,
            "a flood of {route} is refused with 429: {limited:?}"
        );
    }
    assert!(!exit_bodies.is_empty(), "queued exits are answered");
    assert!(
        exit_bodies.windows(2).all(|w| w[0] == w[1]),
        "every exit that was served got the same bytes"
    );
    // Memory bound: argon2 (about 19 MiB each) never ran more often at once than its slots.
    let argon2 = &s.state.limits.argon2;
    assert!(argon2.peak() >= 1, "the flood did reach argon2");
    assert!(
        argon2.peak() <= argon2.capacity(),
        "argon2 ran {} at once with {} slots",
        argon2.peak(),
        argon2.capacity()
    );
    assert!(s.state.limits.exit.peak() <= 1, "exits ran one at a time");
    // And afterwards, still working.
    round_trip(&sur, &adv, conv).await;
    s.stop().await;
}

fn assert_uniform_rate_limited(r: &RawResponse) {
    let body: ErrorBody = serde_json::from_slice(r.body.trim_ascii_end()).unwrap();
    assert_eq!(body.error.code, ErrorCode::RateLimited);
    assert_eq!(
        r.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        "application/json"
    );
}

async fn enrolment_checks_the_invitation_before_hashing_the_password(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = s.api();
    for _ in 0..5 {
        let err = api
            .enroll(&quietline_proto::wire::Enroll {
                token: hex(&rand_bytes::<16>()),
                password: "a long enough password".into(),
            })
            .await
            .unwrap_err();
        assert!(err.is(ErrorCode::Unauthorized));
    }
    assert_eq!(
        s.state.limits.argon2.peak(),
        0,
        "no argon2 work for an unknown invitation"
    );
    // A real invitation does hash.
    s.create_org("hotline").await;
    s.enrolled_member("hotline", "ana", Role::Advocate).await;
    assert!(s.state.limits.argon2.peak() >= 1);
    s.stop().await;
}

quietline_tests::on_both!(
    flooding_every_anonymous_route_gets_429_and_the_conversation_keeps_working,
    enrolment_checks_the_invitation_before_hashing_the_password,
);
