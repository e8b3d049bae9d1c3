//! Abuse limits: per-caller rate limits (in memory, keyed by the authenticated subject),
//! adaptive proof-of-work, the per-device quota, one open conversation per device, and what
//! keeps one caller from silencing advocates: a small quota per waiting conversation and
//! recipient, repeated opens that cost advocates nothing, bounded events per device. Every
//! refusal uses the uniform error.

use quietline_client::RawRequest;
use quietline_proto::wire::{OpenConversation, Role, UploadPrekeys};
use quietline_proto::{ErrorBody, ErrorCode};
use quietline_tests::*;

async fn a_flooding_device_is_rate_limited_and_others_are_not(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 5;
    })
    .await;
    let flooder = s.survivor().await;
    let other = s.survivor().await;
    let mut limited = None;
    for _ in 0..10 {
        let r = flooder
            .api
            .raw(RawRequest::get("/v1/messages"))
            .await
            .unwrap();
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let r = limited.expect("refused within the burst");
    let body: ErrorBody = serde_json::from_slice(r.body.trim_ascii_end()).unwrap();
    assert_eq!(body.error.code, ErrorCode::RateLimited);
    other.api.inbox().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    flooder.api.inbox().await.unwrap();
    s.stop().await;
}

/// The rate limit of a member holds across all of the member's devices and the member
/// token: switching devices does not buy more requests; another member is unaffected.
async fn a_member_is_rate_limited_across_all_its_devices(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 6;
    })
    .await;
    s.create_org("hotline").await;
    // Enrolment, login and device registration spend a few requests from the bucket.
    let (member_api, _) = s.enrolled_member("hotline", "ana", Role::Advocate).await;
    let a = member_api
        .register_member_device(fake_keys(1))
        .await
        .unwrap();
    let b = member_api
        .register_member_device(fake_keys(1))
        .await
        .unwrap();
    // Two devices of one member, and the member token: 429 is decided before any
    // permission check, so each request counts against the member whatever it asks.
    let callers = [
        s.api().with_token(a.tokens.access_token.as_str()),
        s.api().with_token(b.tokens.access_token.as_str()),
        member_api.clone(),
    ];
    let mut answered = 0;
    let mut limited = None;
    // Far more requests than the burst, alternating devices; one token a second refills
    // the bucket, so refusal comes well before the end on any machine.
    for i in 0..60 {
        let r = callers[i % 3]
            .raw(RawRequest::get("/v1/conversations"))
            .await
            .unwrap();
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert!(r.status == 200 || r.status == 403, "{}", r.status);
        answered += 1;
    }
    let r = limited.expect("the member is refused across devices");
    assert!(answered < 60, "{answered}");
    let body: ErrorBody = serde_json::from_slice(r.body.trim_ascii_end()).unwrap();
    assert_eq!(body.error.code, ErrorCode::RateLimited);
    // Another member of the same organisation still gets in.
    let other = s.member("hotline", "bo", Role::Advocate).await;
    other.api.conversations().await.unwrap();
    s.stop().await;
}

async fn proof_of_work_gets_harder_under_a_flood_of_registrations(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.pow_bits = 4;
        c.pow_adaptive_per_minute = 5;
        c.pow_max_extra_bits = 3;
    })
    .await;
    let api = s.api();
    let mut bits = Vec::new();
    for _ in 0..30 {
        bits.push(api.challenge().await.unwrap().bits);
    }
    assert_eq!(&bits[..5], &[4, 4, 4, 4, 4]);
    assert_eq!(bits[5], 5);
    assert_eq!(
        *bits.last().unwrap(),
        7,
        "capped at pow_bits + pow_max_extra_bits"
    );
    // Registration still works at the raised difficulty.
    s.survivor().await;
    s.stop().await;
}

async fn one_open_conversation_per_device(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    s.create_org("shelter").await;
    let _a = s.member("hotline", "ana", Role::Advocate).await;
    let sur = s.survivor().await;
    let first = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    let again = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    assert_eq!(
        again.conversation.id, first.conversation.id,
        "opening again returns the same one"
    );
    let err = sur
        .api
        .open_conversation("shelter", &OpenConversation::default())
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::Conflict));
    assert!(
        sur.api
            .open_conversation("no-such-org", &OpenConversation::default())
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    s.stop().await;
}

async fn a_waiting_survivor_cannot_fill_an_advocates_quota(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.waiting_quota_per_recipient = 3).await;
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    let pest = s.survivor().await;
    let conv = pest
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    for _ in 0..3 {
        pest.api
            .send(conv, &one_envelope(adv.device_id))
            .await
            .unwrap();
    }
    let err = pest
        .api
        .send(conv, &one_envelope(adv.device_id))
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::QuotaExceeded), "{err}");
    assert_eq!(
        s.store().count_envelopes(&adv.device_id.0).await.unwrap(),
        3
    );
    // Another survivor still reaches the same advocate.
    let other = s.survivor().await;
    let conv2 = other
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    other
        .api
        .send(conv2, &one_envelope(adv.device_id))
        .await
        .unwrap();
    // Once claimed, only the device quota applies.
    adv.api.claim(conv).await.unwrap();
    pest.api
        .send(conv, &one_envelope(adv.device_id))
        .await
        .unwrap();
    s.stop().await;
}

async fn a_repeated_open_emits_no_events_and_uses_no_prekeys(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    let prekeys = || async {
        adv.api
            .upload_prekeys(&UploadPrekeys {
                signed_prekey: None,
                one_time_prekeys: Vec::new(),
            })
            .await
            .unwrap()
            .one_time_prekeys
    };
    let before = prekeys().await;
    let sur = s.survivor().await;
    let first = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    assert!(first.recipients[0].one_time_prekey.is_some());
    assert_eq!(prekeys().await, before - 1, "the first open takes one");
    let events = s.store().count_events(&adv.device_id.0).await.unwrap();
    assert_eq!(events, 1, "queue_changed once");
    for _ in 0..5 {
        let again = sur
            .api
            .open_conversation("hotline", &OpenConversation::default())
            .await
            .unwrap();
        assert_eq!(again.conversation.id, first.conversation.id);
        assert_eq!(again.recipients.len(), 1);
        assert!(again.recipients[0].one_time_prekey.is_none());
    }
    assert_eq!(prekeys().await, before - 1, "repeated opens take none");
    assert_eq!(
        s.store().count_events(&adv.device_id.0).await.unwrap(),
        events,
        "repeated opens emit nothing"
    );
    s.stop().await;
}

async fn events_per_device_are_bounded(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.max_events_per_device = 3).await;
    s.create_org("hotline").await;
    let ana = s.member("hotline", "ana", Role::Advocate).await;
    let ben = s.member("hotline", "ben", Role::Advocate).await;
    ana.api.set_duty(true).await.unwrap();
    let mut convs = Vec::new();
    for _ in 0..5 {
        let sur = s.survivor().await;
        let opened = sur
            .api
            .open_conversation("hotline", &OpenConversation::default())
            .await
            .unwrap();
        convs.push(opened.conversation.id);
    }
    assert_eq!(
        s.store().count_events(&ana.device_id.0).await.unwrap(),
        1,
        "one pending queue_changed stands for all five"
    );
    for c in &convs {
        ana.api.claim(*c).await.unwrap();
        ana.api.transfer(*c, ben.member_id).await.unwrap();
    }
    assert_eq!(
        s.store().count_events(&ben.device_id.0).await.unwrap(),
        3,
        "five transfers, at most three events held"
    );
    // Fetching and acknowledging makes room again.
    let inbox = ben.api.inbox().await.unwrap();
    let ids: Vec<_> = inbox.events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3);
    ben.api.ack(&ids).await.unwrap();
    let sur = s.survivor().await;
    let c = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    ana.api.claim(c).await.unwrap();
    ana.api.transfer(c, ben.member_id).await.unwrap();
    assert_eq!(s.store().count_events(&ben.device_id.0).await.unwrap(), 1);
    s.stop().await;
}

quietline_tests::on_both!(
    a_member_is_rate_limited_across_all_its_devices,
    a_flooding_device_is_rate_limited_and_others_are_not,
    proof_of_work_gets_harder_under_a_flood_of_registrations,
    one_open_conversation_per_device,
    a_waiting_survivor_cannot_fill_an_advocates_quota,
    a_repeated_open_emits_no_events_and_uses_no_prekeys,
    events_per_device_are_bounded,
);
