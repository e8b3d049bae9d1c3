//! Key lifecycle through the relay: signed prekeys rotate on schedule, the previous one
//! answers first messages only for its grace period, one-time prekeys are topped up.

use quietline_client::Incoming;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::CryptoError;
use quietline_proto::crypto::keys::{SIGNED_PREKEY_GRACE_SECS, SIGNED_PREKEY_ROTATION_SECS};
use quietline_proto::wire::{OpenConversation, Role};
use quietline_tests::*;

async fn signed_prekeys_rotate_on_schedule_and_the_old_one_lasts_only_its_grace(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let (login, _) = s.enrolled_member("hotline", "ana", Role::Advocate).await;
    let mut advocate = s.secure_member("hotline", &login).await;
    advocate.api().await.unwrap().set_duty(true).await.unwrap();
    let adv = advocate.device_id();
    assert!(
        !advocate.maintain_keys().await.unwrap(),
        "a fresh key is kept"
    );
    let old = served_bundle(s.store(), adv).await;

    // A survivor starts a session from the current bundle but writes only later.
    let mut late = s.secure_survivor("hotline").await;
    let conv = late
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;

    s.clock
        .advance(i64::try_from(SIGNED_PREKEY_ROTATION_SECS).unwrap() + 60);
    advocate.refresh().await.unwrap();
    late.refresh().await.unwrap();
    assert!(
        advocate.maintain_keys().await.unwrap(),
        "rotated after a week"
    );
    let new = served_bundle(s.store(), adv).await;
    assert_ne!(new.signed_prekey.id, old.signed_prekey.id);
    assert_ne!(new.signed_prekey.public_key, old.signed_prekey.public_key);
    assert!(!advocate.maintain_keys().await.unwrap(), "once");

    // Inside the grace period, the first message made with the old prekey still opens.
    late.send_text(conv, "written after the rotation")
        .await
        .unwrap();
    assert_eq!(
        texts(&advocate.poll().await.unwrap()),
        vec!["written after the rotation"]
    );

    // After the grace period the old prekey is erased: a first message made with it fails.
    s.clock
        .advance(i64::try_from(SIGNED_PREKEY_GRACE_SECS).unwrap() + 60);
    advocate.refresh().await.unwrap();
    advocate.maintain_keys().await.unwrap();
    let mut stale = s.secure_survivor("hotline").await;
    let stale_conv = stale
        .api()
        .await
        .unwrap()
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    let mut session = quietline_proto::crypto::x3dh::initiate(
        stale.state().secrets().identity(),
        &old,
        stale_conv,
    )
    .unwrap();
    let payload = quietline_client::Payload {
        v: quietline_client::message::PAYLOAD_VERSION,
        from: stale.device_id(),
        cert: None,
        body: quietline_client::Body::text("delayed"),
    };
    let ct = session
        .encrypt(&serde_json::to_vec(&payload).unwrap())
        .unwrap();
    stale
        .api()
        .await
        .unwrap()
        .send(
            stale_conv,
            &quietline_proto::wire::SendMessage {
                message_id: random_id(),
                envelopes: vec![quietline_proto::wire::OutgoingEnvelope {
                    device_id: adv,
                    ciphertext: Bytes(ct),
                }],
            },
        )
        .await
        .unwrap();
    let got = advocate.poll().await.unwrap();
    assert!(
        got.iter().any(|i| matches!(
            i,
            Incoming::Undecryptable {
                error: CryptoError::UnknownPrekey,
                ..
            }
        )),
        "{got:?}"
    );
    s.stop().await;
}

async fn one_time_prekeys_are_topped_up_below_the_threshold(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let (login, _) = s.enrolled_member("hotline", "ana", Role::Advocate).await;
    let mut advocate = s.secure_member("hotline", &login).await;
    let adv = advocate.device_id();
    // The relay hands out (or loses) most of them.
    s.tamper(
        "DELETE FROM one_time_prekeys WHERE device_id = $1 AND key_id > $2",
        vec![Arg::Blob(adv.0.to_vec()), Arg::Int(5)],
    )
    .await;
    assert!(s.store().count_one_time_prekeys(&adv.0).await.unwrap() < 20);
    advocate.maintain_keys().await.unwrap();
    assert_eq!(
        s.store().count_one_time_prekeys(&adv.0).await.unwrap(),
        i64::from(quietline_client::secure::ONE_TIME_PREKEYS_TARGET)
    );
    s.stop().await;
}

quietline_tests::on_both!(
    signed_prekeys_rotate_on_schedule_and_the_old_one_lasts_only_its_grace,
    one_time_prekeys_are_topped_up_below_the_threshold,
);
