//! Store-and-forward: bytes in equal bytes out, ack deletes, expiry deletes, live push,
//! stale recipient lists, idempotent resends and quotas.

use quietline_client::Stream;
use quietline_proto::ErrorCode;
use quietline_proto::wire::{
    EventKind, OneTimePrekey, OpenConversation, OutgoingEnvelope, Role, SendMessage, ServerFrame,
    UploadPrekeys,
};
use quietline_tests::*;
use std::time::Duration;

async fn next_envelope(stream: &mut Stream) -> quietline_proto::wire::Envelope {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .expect("stream open");
        if let ServerFrame::Envelope(e) = frame {
            return e;
        }
    }
}

async fn survivor_advocate_exchange_over_stream_and_http(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    let mut adv_stream = adv.api.stream().await.unwrap();

    let sur = s.survivor().await;
    let opened = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    let conv = opened.conversation.id;
    assert_eq!(opened.queue_position, 1);
    assert!(opened.out_of_hours_message.is_none());
    assert_eq!(opened.recipients.len(), 1);
    assert_eq!(opened.recipients[0].device_id, adv.device_id);
    assert!(opened.recipients[0].one_time_prekey.is_some());

    // Survivor -> advocate, delivered live over the stream without polling.
    let first = opaque(1024);
    let mid = random_id();
    let accepted = sur
        .api
        .send(
            conv,
            &SendMessage {
                message_id: mid,
                envelopes: vec![OutgoingEnvelope {
                    device_id: adv.device_id,
                    ciphertext: first.clone(),
                }],
            },
        )
        .await
        .unwrap();
    assert_eq!(accepted.accepted, 1);
    let got = next_envelope(&mut adv_stream).await;
    assert_eq!(got.id, mid);
    assert_eq!(got.conversation_id, conv);
    assert_eq!(got.ciphertext, first, "bytes delivered equal bytes sent");
    assert_eq!(
        s.store().count_envelopes(&adv.device_id.0).await.unwrap(),
        1,
        "kept until acked"
    );
    adv_stream.ack(&[mid]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while s.store().count_envelopes(&adv.device_id.0).await.unwrap() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ack over the stream deletes the row"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Advocate claims and answers; the survivor fetches over HTTP.
    adv.api.claim(conv).await.unwrap();
    let recips = adv.api.recipients(conv).await.unwrap();
    assert_eq!(recips.devices, vec![sur.device_id]);
    let reply = opaque(4096);
    let rid = random_id();
    adv.api
        .send(
            conv,
            &SendMessage {
                message_id: rid,
                envelopes: vec![OutgoingEnvelope {
                    device_id: sur.device_id,
                    ciphertext: reply.clone(),
                }],
            },
        )
        .await
        .unwrap();
    let inbox = sur.api.inbox().await.unwrap();
    assert_eq!(inbox.envelopes.len(), 1);
    assert_eq!(inbox.envelopes[0].ciphertext, reply);
    assert!(
        inbox
            .events
            .iter()
            .any(|e| e.kind == EventKind::RecipientsChanged)
    );
    let ids: Vec<_> = inbox
        .envelopes
        .iter()
        .map(|e| e.id)
        .chain(inbox.events.iter().map(|e| e.id))
        .collect();
    let acked = sur.api.ack(&ids).await.unwrap();
    assert_eq!(acked.deleted as usize, ids.len());
    assert_eq!(
        s.store().count_envelopes(&sur.device_id.0).await.unwrap(),
        0,
        "ack deletes the row"
    );
    assert!(sur.api.inbox().await.unwrap().envelopes.is_empty());
    s.stop().await;
}

async fn expiry_deletes_undelivered_envelopes(backend: Backend) {
    let s = TestServer::start(backend).await;
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
    sur.api
        .send(conv, &one_envelope(adv.device_id))
        .await
        .unwrap();
    assert_eq!(
        s.store().count_envelopes(&adv.device_id.0).await.unwrap(),
        1
    );
    s.clock.advance(6 * 24 * 3600);
    quietline_server::sweeper::sweep_once(&s.state)
        .await
        .unwrap();
    assert_eq!(
        s.store().count_envelopes(&adv.device_id.0).await.unwrap(),
        1,
        "not yet expired"
    );
    // The stored expiry is rounded up to the hour: past it by then.
    s.clock.advance(24 * 3600 + 3600);
    // Expired envelopes are not delivered even before the sweeper runs...
    let fresh = s
        .login(
            "hotline",
            "ana",
            &adv.password,
            &adv.totp_uri,
            Some(adv.device_id),
        )
        .await
        .unwrap();
    let adv_api = s.api().with_token(fresh.tokens.access_token.as_str());
    assert!(adv_api.inbox().await.unwrap().envelopes.is_empty());
    // ...and the sweeper deletes them.
    let swept = quietline_server::sweeper::sweep_once(&s.state)
        .await
        .unwrap();
    assert_eq!(swept.envelopes, 1);
    assert_eq!(
        s.store().count_envelopes(&adv.device_id.0).await.unwrap(),
        0,
        "expiry deletes the row"
    );
    s.stop().await;
}

async fn stale_recipient_list_gets_409_with_the_current_list(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    let b = s.member("hotline", "ben", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    b.api.set_duty(true).await.unwrap(); // the list the survivor got is now stale
    let err = sur
        .api
        .send(conv, &one_envelope(a.device_id))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.is(ErrorCode::StaleRecipients));
    let mut expected = [a.device_id, b.device_id];
    expected.sort();
    assert_eq!(err.stale_recipients().unwrap(), &expected[..]);
    assert_eq!(
        s.store().count_envelopes(&a.device_id.0).await.unwrap(),
        0,
        "nothing stored"
    );
    // Too many devices is stale as well; the right list is accepted.
    let mut envelopes: Vec<_> = expected
        .iter()
        .map(|d| OutgoingEnvelope {
            device_id: *d,
            ciphertext: opaque(1024),
        })
        .collect();
    envelopes.push(OutgoingEnvelope {
        device_id: random_id(),
        ciphertext: opaque(1024),
    });
    let err = sur
        .api
        .send(
            conv,
            &SendMessage {
                message_id: random_id(),
                envelopes: envelopes.clone(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::StaleRecipients));
    envelopes.pop();
    sur.api
        .send(
            conv,
            &SendMessage {
                message_id: random_id(),
                envelopes,
            },
        )
        .await
        .unwrap();
    assert_eq!(s.store().count_envelopes(&b.device_id.0).await.unwrap(), 1);
    s.stop().await;
}

async fn resend_with_the_same_id_is_stored_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    let msg = one_envelope(a.device_id);
    sur.api.send(conv, &msg).await.unwrap();
    sur.api.send(conv, &msg).await.unwrap();
    assert_eq!(s.store().count_envelopes(&a.device_id.0).await.unwrap(), 1);
    assert_eq!(a.api.inbox().await.unwrap().envelopes.len(), 1);
    s.stop().await;
}

async fn full_queue_refuses_with_quota_exceeded(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.device_quota = 3).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    for _ in 0..3 {
        sur.api
            .send(conv, &one_envelope(a.device_id))
            .await
            .unwrap();
    }
    let err = sur
        .api
        .send(conv, &one_envelope(a.device_id))
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::QuotaExceeded));
    assert_eq!(err.status(), Some(429));
    assert_eq!(s.store().count_envelopes(&a.device_id.0).await.unwrap(), 3);
    s.stop().await;
}

async fn stream_redelivers_unacknowledged_envelopes_after_reconnect(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    let mid = random_id();
    sur.api
        .send(
            conv,
            &SendMessage {
                message_id: mid,
                envelopes: vec![OutgoingEnvelope {
                    device_id: a.device_id,
                    ciphertext: opaque(1024),
                }],
            },
        )
        .await
        .unwrap();
    let mut first = a.api.stream().await.unwrap();
    assert_eq!(next_envelope(&mut first).await.id, mid);
    drop(first); // gone without acknowledging
    let mut second = a.api.stream().await.unwrap();
    assert_eq!(next_envelope(&mut second).await.id, mid, "at least once");
    second.ack(&[mid]).await.unwrap();
    s.stop().await;
}

/// The relay keeps no record of what was delivered (it would be a record of who talked
/// when), so a resend of a message id the recipient has already acknowledged is stored and
/// delivered again, once; telling it apart is the recipient's job (the SDK drops message ids
/// it has seen, and the ratchet refuses a replayed message key).
async fn a_resend_after_acknowledgement_is_delivered_again_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    let msg = one_envelope(a.device_id);
    sur.api.send(conv, &msg).await.unwrap();
    let first = a.api.inbox().await.unwrap().envelopes;
    assert_eq!(first.len(), 1);
    a.api.ack(&[msg.message_id]).await.unwrap();
    assert_eq!(s.store().count_envelopes(&a.device_id.0).await.unwrap(), 0);

    let accepted = sur.api.send(conv, &msg).await.unwrap();
    assert_eq!(accepted.accepted, 1);
    sur.api.send(conv, &msg).await.unwrap();
    let again = a.api.inbox().await.unwrap().envelopes;
    assert_eq!(again.len(), 1, "stored again, once");
    assert_eq!(again[0].id, msg.message_id);
    assert_eq!(again[0].ciphertext, first[0].ciphertext);
    s.stop().await;
}

async fn concurrent_sends_and_uploads_cannot_pass_the_caps(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.device_quota = 5).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    let sends = (0..20).map(|_| {
        let api = sur.api.clone();
        let msg = one_envelope(a.device_id);
        tokio::spawn(async move { api.send(conv, &msg).await })
    });
    let mut accepted = 0;
    for r in futures_util::future::join_all(sends).await {
        match r.unwrap() {
            Ok(_) => accepted += 1,
            Err(e) => assert!(e.is(ErrorCode::QuotaExceeded), "{e}"),
        }
    }
    assert_eq!(accepted, 5);
    assert_eq!(s.store().count_envelopes(&a.device_id.0).await.unwrap(), 5);

    // The device holds 19 one-time prekeys (20, less the one the survivor's open took); the
    // cap is 1000 and a request carries 200, so exactly four of ten concurrent uploads fit.
    let before = s
        .store()
        .count_one_time_prekeys(&a.device_id.0)
        .await
        .unwrap();
    assert_eq!(before, 19);
    let uploads = (0..10u32).map(|i| {
        let api = a.api.clone();
        let keys = fake_keys(0);
        let req = UploadPrekeys {
            signed_prekey: None,
            one_time_prekeys: (0..200)
                .map(|k| OneTimePrekey {
                    id: 10_000 + i * 1000 + k,
                    public_key: keys.identity_key.clone(),
                })
                .collect(),
        };
        tokio::spawn(async move { api.upload_prekeys(&req).await })
    });
    let mut uploaded = 0;
    for r in futures_util::future::join_all(uploads).await {
        match r.unwrap() {
            Ok(_) => uploaded += 1,
            Err(e) => assert!(e.is(ErrorCode::Conflict), "{e}"),
        }
    }
    assert_eq!(uploaded, 4);
    assert_eq!(
        s.store()
            .count_one_time_prekeys(&a.device_id.0)
            .await
            .unwrap(),
        before + 4 * 200
    );
    s.stop().await;
}

quietline_tests::on_both!(
    survivor_advocate_exchange_over_stream_and_http,
    expiry_deletes_undelivered_envelopes,
    stale_recipient_list_gets_409_with_the_current_list,
    resend_with_the_same_id_is_stored_once,
    full_queue_refuses_with_quota_exceeded,
    stream_redelivers_unacknowledged_envelopes_after_reconnect,
    a_resend_after_acknowledgement_is_delivered_again_once,
    concurrent_sends_and_uploads_cannot_pass_the_caps,
);
