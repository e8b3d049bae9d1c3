//! Store-and-forward: bytes in equal bytes out, ack deletes, expiry deletes, live push,
//! stale recipient lists, idempotent resends and quotas.

use quietline_client::Stream;
use quietline_proto::ErrorCode;
use quietline_proto::wire::{
    EventKind, OpenConversation, OutgoingEnvelope, Role, SendMessage, ServerFrame,
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

quietline_tests::on_both!(
    survivor_advocate_exchange_over_stream_and_http,
    expiry_deletes_undelivered_envelopes,
    stale_recipient_list_gets_409_with_the_current_list,
    resend_with_the_same_id_is_stored_once,
    full_queue_refuses_with_quota_exceeded,
    stream_redelivers_unacknowledged_envelopes_after_reconnect,
);
