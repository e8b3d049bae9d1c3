//! Real end-to-end encrypted conversations through the relay with the SDK's encrypting
//! client, and proof that the server never holds the plaintext (DESIGN.md §3, invariant 1).

use quietline_client::Incoming;
use quietline_proto::wire::{OpenConversation, Role};
use quietline_tests::*;

const FIRST: &str = "I need somewhere safe tonight - the kids are with me";
const REPLY: &str = "You reached the right place. Are you somewhere you can talk?";
const LIVE: &str = "Yes, he is at work until six";

fn texts(incoming: &[Incoming]) -> Vec<String> {
    incoming
        .iter()
        .filter_map(|i| match i {
            Incoming::Message(m) => m.text().map(str::to_owned),
            _ => None,
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn encrypted_conversation_and_the_database_never_holds_plaintext(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let (login, _) = s.enrolled_member("hotline", "ana", Role::Advocate).await;
    let mut advocate = s.secure_member("hotline", &login).await;
    advocate.api().await.unwrap().set_duty(true).await.unwrap();

    let mut survivor = s.secure_survivor("hotline").await;
    let opened = survivor
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    let conv = opened.conversation.id;
    let sent = survivor.send_text(conv, FIRST).await.unwrap();
    assert_eq!(sent.devices, vec![advocate.device_id()]);

    // What the database holds now, before anything is acknowledged.
    let dump = s.store().dump_all_tables().await.unwrap();
    for needle in [FIRST, REPLY, LIVE] {
        let hex_needle = hex(needle.as_bytes());
        let b64_needle = quietline_proto::b64::encode(needle.as_bytes());
        for (table, row) in &dump {
            assert!(
                !row.contains(needle)
                    && !row.contains(&hex_needle)
                    && !row.contains(&b64_needle[..20]),
                "plaintext in {table}"
            );
        }
    }

    let got = advocate.poll().await.unwrap();
    assert_eq!(texts(&got), vec![FIRST.to_owned()]);
    advocate.api().await.unwrap().claim(conv).await.unwrap();
    advocate.send_text(conv, REPLY).await.unwrap();
    let got = survivor.poll().await.unwrap();
    assert_eq!(texts(&got), vec![REPLY.to_owned()]);

    // Live over the stream.
    let mut stream = survivor.connect().await.unwrap();
    advocate.send_text(conv, LIVE).await.unwrap();
    let live = loop {
        let next = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            survivor.next(&mut stream),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        if let Incoming::Message(m) = next {
            break m;
        }
    };
    assert_eq!(live.text(), Some(LIVE));
    assert_eq!(live.from, advocate.device_id());

    // The SQLite files on disk (database and WAL) hold no plaintext either.
    if let Some(dir) = &s.data_dir {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for needle in [FIRST, REPLY, LIVE] {
                assert!(!contains(&bytes, needle.as_bytes()), "plaintext on disk");
            }
        }
    }
    s.stop().await;
}

/// With PostgreSQL, a message accepted by one replica reaches a stream held on another
/// (LISTEN/NOTIFY). On SQLite there is one process, so the test uses one server.
async fn live_delivery_crosses_replicas(backend: Backend) {
    let a = TestServer::start(backend).await;
    a.create_org("hotline").await;
    let adv = a.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    let b = match backend {
        Backend::Postgres => Some(a.replica().await),
        Backend::Sqlite => None,
    };
    let stream_base = b.as_ref().map_or(a.base.clone(), |b| b.base.clone());
    let adv_on_b = quietline_client::Api::new(&stream_base)
        .unwrap()
        .with_token(adv.api.token().unwrap().clone());
    let mut stream = adv_on_b.stream().await.unwrap();
    let sur = a.survivor().await;
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
            &quietline_proto::wire::SendMessage {
                message_id: mid,
                envelopes: vec![quietline_proto::wire::OutgoingEnvelope {
                    device_id: adv.device_id,
                    ciphertext: opaque(1024),
                }],
            },
        )
        .await
        .unwrap();
    let env = loop {
        let f = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("pushed live")
            .unwrap()
            .unwrap();
        if let quietline_proto::wire::ServerFrame::Envelope(e) = f {
            break e;
        }
    };
    assert_eq!(env.id, mid);
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

quietline_tests::on_both!(
    encrypted_conversation_and_the_database_never_holds_plaintext,
    live_delivery_crosses_replicas,
);
