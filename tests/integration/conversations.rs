//! Opening contact, out-of-hours, the queue, claims, transfers, closing, and prekey bundles.

use quietline_proto::ErrorCode;
use quietline_proto::wire::{
    ConversationState, EventKind, OpenConversation, OrgSettings, Role, SendMessage,
};
use quietline_tests::*;
use std::collections::HashSet;

async fn out_of_hours_contact_opens_and_is_woken_when_someone_comes_on_duty(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let sup = s.member("hotline", "sam", Role::Supervisor).await;
    sup.api
        .set_org_settings(&OrgSettings {
            out_of_hours_message: Some("Call 911 in an emergency.".into()),
            ..OrgSettings::default()
        })
        .await
        .unwrap();
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    let sur = s.survivor().await;
    let opened = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    assert!(opened.recipients.is_empty());
    assert_eq!(
        opened.out_of_hours_message.as_deref(),
        Some("Call 911 in an emergency.")
    );
    let conv = opened.conversation.id;
    // Nobody to send to yet: refused, nothing stored.
    let err = sur
        .api
        .send(
            conv,
            &SendMessage {
                message_id: random_id(),
                envelopes: vec![],
            },
        )
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::Conflict));
    let mut stream = sur.api.stream().await.unwrap();
    adv.api.set_duty(true).await.unwrap();
    let event = loop {
        let f = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let quietline_proto::wire::ServerFrame::Event(e) = f {
            break e;
        }
    };
    assert_eq!(event.kind, EventKind::AdvocateAvailable);
    assert_eq!(event.conversation_id, Some(conv));
    assert_eq!(
        sur.api.recipients(conv).await.unwrap().devices,
        vec![adv.device_id]
    );
    s.stop().await;
}

async fn exactly_one_of_concurrent_claims_wins(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let mut members = Vec::new();
    for i in 0..6 {
        let m = s
            .member("hotline", &format!("adv{i}"), Role::Advocate)
            .await;
        m.api.set_duty(true).await.unwrap();
        members.push(m);
    }
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    let tasks: Vec<_> = members
        .iter()
        .map(|m| {
            let api = m.api.clone();
            tokio::spawn(async move { api.claim(conv).await })
        })
        .collect();
    let mut wins = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(c) => {
                assert_eq!(c.state, ConversationState::Assigned);
                wins += 1;
            }
            Err(e) => {
                assert!(e.is(ErrorCode::Conflict), "{e}");
                conflicts += 1;
            }
        }
    }
    assert_eq!((wins, conflicts), (1, 5));
    s.stop().await;
}

async fn one_time_prekey_is_never_handed_out_twice(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await; // registered with 20 one-time prekeys
    let b = s.member("hotline", "ben", Role::Advocate).await;
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let api = b.api.clone();
            let target = a.device_id;
            tokio::spawn(async move { api.bundle(target).await.unwrap() })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut fallbacks = 0;
    for t in tasks {
        let bundle = t.await.unwrap();
        assert_eq!(bundle.device_id, a.device_id);
        match bundle.one_time_prekey {
            Some(k) => assert!(
                seen.insert(k.id),
                "one-time prekey {} handed out twice",
                k.id
            ),
            None => fallbacks += 1,
        }
    }
    assert_eq!(seen.len(), 20);
    assert_eq!(fallbacks, 10, "falls back to the signed prekey when empty");
    // More can be uploaded.
    let count = a
        .api
        .upload_prekeys(&quietline_proto::wire::UploadPrekeys {
            signed_prekey: None,
            one_time_prekeys: fake_keys(5).one_time_prekeys,
        })
        .await
        .unwrap();
    assert_eq!(count.one_time_prekeys, 5);
    s.stop().await;
}

async fn queue_puts_urgent_first_and_transfer_and_close_work(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    let b = s.member("hotline", "ben", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let s1 = s.survivor().await;
    let s2 = s.survivor().await;
    let c1 = s1
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    let c2 = s2
        .api
        .open_conversation(
            "hotline",
            &OpenConversation {
                urgent: true,
                language: Some("es".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(c1.queue_position, 1);
    assert_eq!(c2.queue_position, 1, "urgent goes first");
    let queue = a.api.conversations().await.unwrap().conversations;
    assert_eq!(
        queue.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c2.conversation.id, c1.conversation.id]
    );
    assert_eq!(queue[0].language.as_deref(), Some("es"));
    // Survivor sees only their own.
    let mine = s1.api.conversations().await.unwrap().conversations;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, c1.conversation.id);

    let conv = c1.conversation.id;
    a.api.claim(conv).await.unwrap();
    assert!(
        b.api
            .conversation(conv)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound),
        "not b's"
    );
    let t = a.api.transfer(conv, b.member_id).await.unwrap();
    assert_eq!(t.assigned_to, Some(b.member_id));
    assert_eq!(
        s1.api.recipients(conv).await.unwrap().devices,
        vec![b.device_id]
    );
    let b_inbox = b.api.inbox().await.unwrap();
    assert!(
        b_inbox
            .events
            .iter()
            .any(|e| e.kind == EventKind::TransferredToYou && e.conversation_id == Some(conv))
    );
    // a can no longer send in it.
    let err = a
        .api
        .send(conv, &one_envelope(s1.device_id))
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::NotFound) || err.is(ErrorCode::Forbidden));
    // b answers, then closes: conversation and envelopes are purged at once.
    b.api.send(conv, &one_envelope(s1.device_id)).await.unwrap();
    assert_eq!(s.store().count_envelopes(&s1.device_id.0).await.unwrap(), 1);
    b.api.close(conv).await.unwrap();
    assert!(s.store().conversation(&conv.0).await.unwrap().is_none());
    assert_eq!(s.store().count_envelopes(&s1.device_id.0).await.unwrap(), 0);
    let dump = s.store().dump_all_tables().await.unwrap();
    let needle = hex(&conv.0);
    assert!(
        dump.iter().all(|(_, row)| !row.contains(&needle)),
        "no row mentions the closed conversation"
    );
    assert!(
        b.api
            .conversation(conv)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    s.stop().await;
}

async fn closed_conversations_are_not_told_an_advocate_came_on_duty(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let sup = s.member("hotline", "sam", Role::Supervisor).await;
    sup.api
        .set_org_settings(&OrgSettings {
            purge_on_close: Some(false),
            ..OrgSettings::default()
        })
        .await
        .unwrap();
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    let open = async |sur: &Survivor| {
        sur.api
            .open_conversation("hotline", &OpenConversation::default())
            .await
            .unwrap()
            .conversation
            .id
    };
    let waiting = s.survivor().await;
    open(&waiting).await;
    let closed = s.survivor().await;
    let closed_conv = open(&closed).await;
    // Closed while still waiting: kept (purge-on-close is off), but nobody is waiting.
    closed.api.close(closed_conv).await.unwrap();
    adv.api.set_duty(true).await.unwrap();
    let told = |evs: Vec<quietline_proto::wire::Event>| {
        evs.into_iter()
            .filter(|e| e.kind == EventKind::AdvocateAvailable)
            .count()
    };
    assert_eq!(told(waiting.api.inbox().await.unwrap().events), 1);
    assert_eq!(told(closed.api.inbox().await.unwrap().events), 0);
    s.stop().await;
}

quietline_tests::on_both!(
    out_of_hours_contact_opens_and_is_woken_when_someone_comes_on_duty,
    exactly_one_of_concurrent_claims_wins,
    one_time_prekey_is_never_handed_out_twice,
    queue_puts_urgent_first_and_transfer_and_close_work,
    closed_conversations_are_not_told_an_advocate_came_on_duty,
);
