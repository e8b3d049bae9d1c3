//! The organisation key and device certificates through the relay's routes: who may set
//! them, what the relay checks, and that only certified member devices are recipients.

use quietline_client::SecureClient;
use quietline_client::org::{self, CertifyReport};
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::org::OrgKeyPair;
use quietline_proto::wire::{OpenConversation, Role, SetOrgKey};
use quietline_proto::{ErrorCode, Id};
use quietline_tests::*;

/// An organisation created without a key, as the admin command does.
async fn bare_org(s: &TestServer, code: &str) {
    s.store()
        .create_org(&random_id().0, code, code, 0)
        .await
        .unwrap();
}

fn set(key: &OrgKeyPair, signature: Option<[u8; 64]>) -> SetOrgKey {
    SetOrgKey {
        public_key: Bytes(key.public().as_bytes().to_vec()),
        signature: signature.map(|s| Bytes(s.to_vec())),
    }
}

async fn org_key_is_registered_once_and_replaced_only_with_a_signature_by_the_current_key(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    bare_org(&s, "hotline").await;
    let anon = s.api();
    assert!(
        anon.org_key("hotline")
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    assert!(
        anon.org_key("no-such-org")
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );

    let (sup, _) = s.enrolled_member("hotline", "sam", Role::Supervisor).await;
    let (adv, _) = s.enrolled_member("hotline", "ana", Role::Advocate).await;
    let first = OrgKeyPair::generate().unwrap();
    assert!(
        adv.set_org_key(&set(&first, None))
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    let chain = sup.set_org_key(&set(&first, None)).await.unwrap();
    assert_eq!(chain.first.as_slice(), first.public().as_bytes());
    assert!(chain.changes.is_empty());
    // The same key again changes nothing.
    assert_eq!(sup.set_org_key(&set(&first, None)).await.unwrap(), chain);

    // A stolen supervisor password does not replace the key: no signature, or one by
    // another key, or for another organisation, is refused and nothing changes.
    let next = OrgKeyPair::generate().unwrap();
    let other = OrgKeyPair::generate().unwrap();
    for bad in [
        None,
        Some(other.endorse("hotline", &next.public())),
        Some(first.endorse("shelter", &next.public())),
    ] {
        let err = sup.set_org_key(&set(&next, bad)).await.unwrap_err();
        assert!(err.is(ErrorCode::Forbidden), "{err:?}");
    }
    assert_eq!(anon.org_key("hotline").await.unwrap(), chain);

    let signed = first.endorse("hotline", &next.public());
    let chain = sup.set_org_key(&set(&next, Some(signed))).await.unwrap();
    assert_eq!(chain.changes.len(), 1);
    assert_eq!(chain.changes[0].key.as_slice(), next.public().as_bytes());
    assert_eq!(anon.org_key("hotline").await.unwrap(), chain);
    // Not a key at all: 400 with the uniform body.
    let err = sup
        .set_org_key(&SetOrgKey {
            public_key: Bytes(vec![1; 31]),
            signature: None,
        })
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::BadRequest));
    s.stop().await;
}

async fn member_devices_become_recipients_only_once_certified(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    s.create_org("shelter").await;
    let (sup, _) = s.enrolled_member("hotline", "sam", Role::Supervisor).await;
    let (login, ana) = s.enrolled_member("hotline", "ana", Role::Advocate).await;
    let mut device = SecureClient::register_member_device(&login).await.unwrap();
    device.set_clock(s.client_clock());
    let dev = device.device_id();
    device.api().await.unwrap().set_duty(true).await.unwrap();
    assert!(
        !device.join_org("hotline").await.unwrap(),
        "not certified yet"
    );

    // Pending: listed for the supervisor, not a recipient.
    let listed = sup.org_devices().await.unwrap().devices;
    let pending = listed.iter().find(|d| d.device_id == dev).unwrap();
    assert!(pending.certificate.is_none());
    assert_eq!(pending.member_id, ana.member_id);
    let survivor = s.survivor().await;
    let opened = survivor
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    assert!(
        opened.recipients.is_empty(),
        "an uncertified device is no recipient"
    );

    // What the relay refuses: a certificate by another key, for other keys, for another
    // organisation's device, from an advocate; and an unknown device.
    let key = s.org_key("hotline");
    let good = s.certificate_for("hotline", dev, s.clock_now() + 600).await;
    let mut body = quietline_proto::trust::CertificateBody::decode(good.body.as_slice()).unwrap();
    let by_other = OrgKeyPair::generate().unwrap().certify(&body);
    assert!(
        sup.certify(dev, &by_other)
            .await
            .unwrap_err()
            .is(ErrorCode::BadRequest)
    );
    body.identity_key = [9; 32];
    let wrong_keys = key.certify(&body);
    assert!(
        sup.certify(dev, &wrong_keys)
            .await
            .unwrap_err()
            .is(ErrorCode::BadRequest)
    );
    let expired = s.certificate_for("hotline", dev, s.clock_now() - 10).await;
    assert!(
        sup.certify(dev, &expired)
            .await
            .unwrap_err()
            .is(ErrorCode::BadRequest)
    );
    assert!(
        login
            .certify(dev, &good)
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    assert!(
        sup.certify(random_id(), &good)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    let stranger = s.member("shelter", "zed", Role::Advocate).await;
    let (sup_b, _) = s.enrolled_member("shelter", "sue", Role::Supervisor).await;
    assert!(
        sup_b
            .certify(dev, &good)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    assert!(
        sup.certify(stranger.device_id, &good)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    assert!(
        s.store()
            .certified_member_devices(&ana.member_id.0, s.clock_now(), 0)
            .await
            .unwrap()
            .is_empty(),
        "nothing refused was stored"
    );

    let stored = sup.certify(dev, &good).await.unwrap();
    assert_eq!(stored.certificate.as_ref(), Some(&good));
    assert!(device.refresh_certificate().await.unwrap());
    let recipients = survivor
        .api
        .recipients(opened.conversation.id)
        .await
        .unwrap()
        .devices;
    assert_eq!(recipients, vec![dev]);

    // Past its expiry the device drops out of the fan-out again.
    s.clock.advance(700);
    let recipients = survivor
        .api
        .recipients(opened.conversation.id)
        .await
        .unwrap()
        .devices;
    assert!(recipients.is_empty());
    s.stop().await;
}

/// The supervisor's tools: a sealed key file, registration, certifying the pending devices
/// (and never one whose keys are not signed by itself), and a signed hand-over to a new key
/// that survivors follow.
async fn supervisors_certify_pending_devices_with_the_sealed_organisation_key(backend: Backend) {
    let s = TestServer::start(backend).await;
    bare_org(&s, "hotline").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hotline.orgkey");
    let key = org::create_key_file(&file, b"a long supervisor passphrase").unwrap();
    assert!(
        org::create_key_file(&file, b"another").is_err(),
        "never overwritten"
    );
    assert!(matches!(
        org::open_key_file(&file, b"wrong passphrase"),
        Err(quietline_client::Error::Crypto(_))
    ));
    let reopened = org::open_key_file(&file, b"a long supervisor passphrase").unwrap();
    assert_eq!(reopened.public(), key.public());
    let sealed = std::fs::read(&file).unwrap();
    assert!(
        !sealed.windows(32).any(|w| w == key.public().as_bytes()),
        "the file is sealed whole"
    );

    let (sup, _) = s.enrolled_member("hotline", "sam", Role::Supervisor).await;
    org::register_key(&sup, &key).await.unwrap();
    let (login, _) = s.enrolled_member("hotline", "ana", Role::Advocate).await;
    let mut device = SecureClient::register_member_device(&login).await.unwrap();
    device.set_clock(s.client_clock());
    // A device row whose keys are not self-signed (fake keys) must never be certified.
    let bogus = login
        .register_member_device(fake_keys(1))
        .await
        .unwrap()
        .device_id;

    let now = s.clock_now();
    let report = org::certify_pending(&sup, "hotline", &reopened, None, now, 86_400 * 30)
        .await
        .unwrap();
    assert_eq!(
        report,
        CertifyReport {
            certified: vec![device.device_id()],
            already: vec![],
            refused: vec![bogus],
        }
    );
    let again = org::certify_pending(&sup, "hotline", &reopened, None, now, 86_400 * 30)
        .await
        .unwrap();
    assert_eq!(again.already, vec![device.device_id()]);
    assert!(device.join_org("hotline").await.unwrap());

    // Hand over to a new key: a survivor who pinned the old one follows.
    let mut survivor = SecureClient::register_survivor(&s.api()).await.unwrap();
    survivor.set_clock(s.client_clock());
    survivor.pin_org_key("hotline", &key.public()).unwrap();
    let next_file = dir.path().join("next.orgkey");
    let next = org::create_key_file(&next_file, b"the next passphrase").unwrap();
    org::replace_key(&sup, "hotline", &reopened, &next)
        .await
        .unwrap();
    assert_eq!(
        survivor.verify_org_key("hotline").await.unwrap(),
        next.public()
    );
    // Certificates under the old key no longer count for the new one.
    let renewed = org::certify_pending(&sup, "hotline", &next, None, now, 86_400)
        .await
        .unwrap();
    assert_eq!(renewed.certified, vec![device.device_id()]);
    let _: Id = bogus;
    s.stop().await;
}

quietline_tests::on_both!(
    org_key_is_registered_once_and_replaced_only_with_a_signature_by_the_current_key,
    member_devices_become_recipients_only_once_certified,
    supervisors_certify_pending_devices_with_the_sealed_organisation_key,
);
