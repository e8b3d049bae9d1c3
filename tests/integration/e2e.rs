//! Real end-to-end encrypted conversations through the relay with the SDK's encrypting
//! client, and proof that the server never holds the plaintext (docs/THREAT_MODEL.md, invariant 1).

use quietline_client::Incoming;
use quietline_proto::wire::{OpenConversation, Role};
use quietline_tests::*;

const FIRST: &str = "I need somewhere safe tonight - the kids are with me";
const REPLY: &str = "You reached the right place. Are you somewhere you can talk?";
const LIVE: &str = "Yes, he is at work until six";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Neither a dump of every table, nor the files on disk (SQLite: database, WAL and shared
/// memory), nor `pg_dump` of the whole database (PostgreSQL) holds any of the plaintexts in
/// clear, hex or base64url.
async fn assert_no_plaintext(s: &TestServer, stage: &str) {
    let needles: Vec<Vec<u8>> = [FIRST, REPLY, LIVE]
        .iter()
        .flat_map(|t| {
            [
                t.as_bytes().to_vec(),
                hex(t.as_bytes()).into_bytes(),
                quietline_proto::b64::encode(t.as_bytes()).as_bytes()[..20].to_vec(),
            ]
        })
        .collect();
    let dump = s.store().dump_all_tables().await.unwrap();
    assert!(!dump.is_empty());
    for (table, row) in &dump {
        for needle in &needles {
            assert!(
                !contains(row.as_bytes(), needle),
                "{stage}: plaintext in {table}"
            );
        }
    }
    let mut raw: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(dir) = &s.data_dir {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            raw.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
        assert!(raw.iter().any(|(p, _)| p.ends_with("quietline.db")));
    }
    if let Some(url) = &s.database_url {
        let out = tokio::process::Command::new("pg_dump")
            .arg("--dbname")
            .arg(url)
            .output()
            .await
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            contains(&out.stdout, b"COPY public.envelopes"),
            "a full dump"
        );
        raw.push(("pg_dump".into(), out.stdout));
    }
    assert!(!raw.is_empty());
    for (what, bytes) in &raw {
        for needle in &needles {
            assert!(!contains(bytes, needle), "{stage}: plaintext in {what}");
        }
    }
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
    assert_no_plaintext(&s, "first message pending").await;

    let got = advocate.poll().await.unwrap();
    assert_eq!(texts(&got), vec![FIRST.to_owned()]);
    advocate.api().await.unwrap().claim(conv).await.unwrap();
    advocate.send_text(conv, REPLY).await.unwrap();
    assert_no_plaintext(&s, "reply pending").await;
    let got = survivor.poll().await.unwrap();
    assert_eq!(texts(&got), vec![REPLY.to_owned()]);

    // Live over the stream.
    let mut stream = survivor.connect().await.unwrap();
    advocate.send_text(conv, LIVE).await.unwrap();
    assert_no_plaintext(&s, "live message pending").await;
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

    assert_no_plaintext(&s, "after every message").await;
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
