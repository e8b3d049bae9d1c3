//! The relay turned malicious: the real server, with its database edited the way an
//! operator, an intruder or a court order could, serves swapped keys, ghost devices, forged
//! first messages, withheld one-time prekeys, replays and certificates under another key.
//! The SDK must refuse each with a distinct error and send the attacker nothing readable
//! (docs/CRYPTO.md, "What a malicious relay can and cannot do").

use quietline_client::message::{Body, PAYLOAD_VERSION, Payload};
use quietline_client::{Error, Incoming, Refusal, SecureClient};
use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::keys::DeviceSecrets;
use quietline_proto::crypto::org::OrgKeyPair;
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::x3dh;
use quietline_proto::trust::CertificateBody;
use quietline_proto::wire::{Certificate, EventKind, OpenConversation, Role};
use quietline_tests::*;

const FIRST: &str = "I need somewhere safe tonight";
const REPLY: &str = "You reached the right place. Are you safe to talk?";
const LURE: &str = "please tell me where you are staying now";

/// An advocate on duty with a certified device, a survivor that pinned the organisation key.
async fn scene(backend: Backend) -> (TestServer, SecureClient, SecureClient) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let (login, _) = s.enrolled_member("hotline", "ana", Role::Advocate).await;
    let mut advocate = s.secure_member("hotline", &login).await;
    advocate.api().await.unwrap().set_duty(true).await.unwrap();
    let survivor = s.secure_survivor("hotline").await;
    (s, advocate, survivor)
}

/// Open contact with the kit's organisation; the conversation id.
async fn open(survivor: &mut SecureClient) -> Id {
    survivor
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id
}

/// The ciphertext the relay holds for `device` (one envelope pending), as the relay reads it.
async fn held_ciphertext(s: &TestServer, device: Id) -> Vec<u8> {
    s.peek_blob(
        "SELECT ciphertext FROM envelopes WHERE recipient = $1",
        vec![device.0.to_vec()],
    )
    .await
    .unwrap()
}

/// The relay hands out no more one-time prekeys of `device`.
async fn withhold_prekeys(s: &TestServer, device: Id) {
    s.tamper(
        "DELETE FROM one_time_prekeys WHERE device_id = $1",
        vec![Arg::Blob(device.0.to_vec())],
    )
    .await;
}

/// Open contact, first message, claim, reply: both sides have a session and pinned each other.
async fn talking(s: &TestServer, advocate: &mut SecureClient, survivor: &mut SecureClient) -> Id {
    let _ = s;
    let conv = open(survivor).await;
    survivor.send_text(conv, FIRST).await.unwrap();
    assert_eq!(texts(&advocate.poll().await.unwrap()), vec![FIRST]);
    advocate.api().await.unwrap().claim(conv).await.unwrap();
    advocate.send_text(conv, REPLY).await.unwrap();
    assert_eq!(texts(&survivor.poll().await.unwrap()), vec![REPLY]);
    conv
}

fn refusals(incoming: &[Incoming]) -> Vec<Refusal> {
    incoming
        .iter()
        .filter_map(|i| match i {
            Incoming::Refused { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

async fn envelope_count(s: &TestServer) -> usize {
    s.store()
        .dump_all_tables()
        .await
        .unwrap()
        .iter()
        .filter(|(t, _)| t == "envelopes")
        .count()
}

fn untrusted(result: Result<impl std::fmt::Debug, Error>) -> (Id, Refusal) {
    match result {
        Err(Error::Untrusted { device, reason }) => (device, reason),
        Err(Error::IdentityChanged { device }) => (device, Refusal::IdentityChanged),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The relay's own device keys, with valid self-signatures.
fn relay_keys() -> (DeviceSecrets, quietline_proto::wire::DeviceKeys) {
    DeviceSecrets::generate().unwrap()
}

/// Make the server hand out `keys` as the keys of `device` (keeping its certificate).
async fn swap_keys(s: &TestServer, device: Id, keys: &quietline_proto::wire::DeviceKeys) {
    let n = s
        .tamper(
            "UPDATE devices SET identity_key = $1, signing_key = $2, identity_signature = $3, \
             signed_prekey_id = $4, signed_prekey = $5, signed_prekey_sig = $6 WHERE id = $7",
            vec![
                Arg::Blob(keys.identity_key.0.clone()),
                Arg::Blob(keys.signing_key.0.clone()),
                Arg::Blob(keys.identity_signature.0.clone()),
                Arg::Int(i64::from(keys.signed_prekey.id)),
                Arg::Blob(keys.signed_prekey.public_key.0.clone()),
                Arg::Blob(keys.signed_prekey.signature.0.clone()),
                Arg::Blob(device.0.to_vec()),
            ],
        )
        .await;
    assert_eq!(n, 1);
    withhold_prekeys(s, device).await;
}

/// Add a device the relay controls to `member`'s devices, marked certified in the database,
/// with `cert` (or none) as its certificate.
async fn add_ghost(
    s: &TestServer,
    ghost: Id,
    member: Id,
    keys: &quietline_proto::wire::DeviceKeys,
    cert: Option<&Certificate>,
) -> Id {
    s.tamper(
        "INSERT INTO devices (id, member_id, identity_key, signing_key, identity_signature, \
         signed_prekey_id, signed_prekey, signed_prekey_sig, created_hour, certificate, \
         certificate_sig, certified_until, seen_hour) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $11)",
        vec![
            Arg::Blob(ghost.0.to_vec()),
            Arg::Blob(member.0.to_vec()),
            Arg::Blob(keys.identity_key.0.clone()),
            Arg::Blob(keys.signing_key.0.clone()),
            Arg::Blob(keys.identity_signature.0.clone()),
            Arg::Int(i64::from(keys.signed_prekey.id)),
            Arg::Blob(keys.signed_prekey.public_key.0.clone()),
            Arg::Blob(keys.signed_prekey.signature.0.clone()),
            cert.map_or(Arg::Null, |c| Arg::Blob(c.body.0.clone())),
            cert.map_or(Arg::Null, |c| Arg::Blob(c.signature.0.clone())),
            Arg::Int(i64::MAX / 2),
        ],
    )
    .await;
    ghost
}

/// A certificate for `device` with `keys`, made with `key` (the relay's own organisation key).
fn forged_certificate(
    key: &OrgKeyPair,
    member: Id,
    device: Id,
    keys: &quietline_proto::wire::DeviceKeys,
    now: i64,
) -> Certificate {
    key.certify(&CertificateBody {
        org: "hotline".into(),
        member_id: member,
        role: Role::Advocate,
        device_id: device,
        identity_key: keys.identity_key.as_slice().try_into().unwrap(),
        signing_key: keys.signing_key.as_slice().try_into().unwrap(),
        not_before: now - 60,
        not_after: now + 86_400,
    })
}

/// The certificate the server holds for `device`.
async fn stored_certificate(s: &TestServer, device: Id) -> Certificate {
    let (row, _) = s.store().member_device(&device.0).await.unwrap().unwrap();
    Certificate {
        body: Bytes(row.certificate.unwrap()),
        signature: Bytes(row.certificate_sig.unwrap()),
    }
}

/// The relay's forged first message to `target` in `conversation`, claiming to come from
/// `claimed`: a real X3DH run against the target's public bundle under the relay's own
/// identity. Returns the relay's session too, to show what it could read.
async fn forge_first_message(
    s: &TestServer,
    target: Id,
    conversation: Id,
    claimed: Id,
    cert: Option<Certificate>,
) -> Session {
    let bundle = served_bundle(s.store(), target).await;
    let (evil, _) = relay_keys();
    let mut session = x3dh::initiate(evil.identity(), &bundle, conversation).unwrap();
    let payload = Payload {
        v: PAYLOAD_VERSION,
        from: claimed,
        cert,
        body: Body::text(LURE),
    };
    let ct = session
        .encrypt(&serde_json::to_vec(&payload).unwrap())
        .unwrap();
    inject(s, target, conversation, ct).await;
    session
}

/// Put an envelope into a device's queue directly.
async fn inject(s: &TestServer, recipient: Id, conversation: Id, ciphertext: Vec<u8>) {
    let n = s
        .tamper(
            "INSERT INTO envelopes (recipient, id, conversation_id, ciphertext, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                Arg::Blob(recipient.0.to_vec()),
                Arg::Blob(random_id().0.to_vec()),
                Arg::Blob(conversation.0.to_vec()),
                Arg::Blob(ciphertext),
                Arg::Int(s.clock_now() + 3600),
            ],
        )
        .await;
    assert_eq!(n, 1);
}

/// (a) The relay hands out its own keys for the advocate's device (keeping the real
/// certificate), or strips the certificate: the survivor refuses before any session exists,
/// and nothing is sent.
async fn swapped_advocate_keys_are_refused_before_anything_is_sent(backend: Backend) {
    let (s, advocate, mut survivor) = scene(backend).await;
    let adv = advocate.device_id();
    let (_, evil) = relay_keys();
    swap_keys(&s, adv, &evil).await;

    let result = survivor
        .open_conversation("hotline", &OpenConversation::default())
        .await;
    assert_eq!(untrusted(result), (adv, Refusal::CertificateMismatch));
    assert_eq!(survivor.trust_report().refused, 1);
    assert_eq!(envelope_count(&s).await, 0);

    // Without a certificate at all (the relay cleared it but still lists the device).
    s.tamper(
        "UPDATE devices SET certificate = NULL, certificate_sig = NULL WHERE id = $1",
        vec![Arg::Blob(adv.0.to_vec())],
    )
    .await;
    let mut other = s.secure_survivor("hotline").await;
    let result = other
        .open_conversation("hotline", &OpenConversation::default())
        .await;
    assert_eq!(untrusted(result), (adv, Refusal::Uncertified));
    assert_eq!(envelope_count(&s).await, 0);
    s.stop().await;
}

/// (b) A ghost device of the relay's, added to the advocate's devices, turns up in the
/// recipient list and in a 409 answer: the survivor refuses the send; nothing is stored for
/// anyone, so nothing readable reaches the ghost.
async fn ghost_devices_in_recipient_lists_and_409_answers_are_refused(backend: Backend) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    let conv = talking(&s, &mut advocate, &mut survivor).await;
    let member = advocate
        .api()
        .await
        .unwrap()
        .conversation(conv)
        .await
        .unwrap()
        .assigned_to
        .unwrap();
    let before = envelope_count(&s).await;

    // A certificate made with the relay's own organisation key.
    let (_, evil) = relay_keys();
    let evil_org = OrgKeyPair::generate().unwrap();
    let ghost = random_id();
    let cert = forged_certificate(&evil_org, member, ghost, &evil, s.clock_now());
    add_ghost(&s, ghost, member, &evil, Some(&cert)).await;

    // The survivor's cached list is [advocate]: the relay answers 409 with the ghost in it.
    let result = survivor.send_text(conv, "second message").await;
    assert_eq!(untrusted(result), (ghost, Refusal::BadCertificate));
    assert_eq!(envelope_count(&s).await, before, "nothing was stored");

    // A fresh list from GET /recipients holds the ghost too: refused again.
    survivor.handle_event(&quietline_proto::wire::Event {
        id: random_id(),
        kind: EventKind::RecipientsChanged,
        conversation_id: Some(conv),
    });
    let result = survivor.send_text(conv, "third message").await;
    assert_eq!(untrusted(result), (ghost, Refusal::BadCertificate));

    // A ghost with no certificate, and one carrying the advocate's real certificate.
    s.tamper(
        "DELETE FROM devices WHERE id = $1",
        vec![Arg::Blob(ghost.0.to_vec())],
    )
    .await;
    let bare = random_id();
    add_ghost(&s, bare, member, &evil, None).await;
    let result = survivor.send_text(conv, "fourth message").await;
    assert_eq!(untrusted(result), (bare, Refusal::Uncertified));
    s.tamper(
        "DELETE FROM devices WHERE id = $1",
        vec![Arg::Blob(bare.0.to_vec())],
    )
    .await;
    let real = stored_certificate(&s, advocate.device_id()).await;
    let copied = random_id();
    add_ghost(&s, copied, member, &evil, Some(&real)).await;
    let result = survivor.send_text(conv, "fifth message").await;
    assert_eq!(untrusted(result), (copied, Refusal::CertificateMismatch));
    assert_eq!(envelope_count(&s).await, before, "nothing was stored");
    assert_eq!(survivor.trust_report().refused, 4);

    // Once the relay stops, the conversation goes on.
    s.tamper(
        "DELETE FROM devices WHERE id = $1",
        vec![Arg::Blob(copied.0.to_vec())],
    )
    .await;
    let sent = survivor.send_text(conv, "still here").await.unwrap();
    assert_eq!(sent.devices, vec![advocate.device_id()]);
    s.stop().await;
}

/// (c) The relay runs X3DH against the survivor under its own identity and drops a first
/// message claiming to be the advocate's device: refused as a changed identity, never shown;
/// the survivor's next message goes to the real advocate only and the relay's session cannot
/// open it. Variants: a new device id with the advocate's certificate, or none; and the same
/// attack on the advocate, claiming to be the survivor's device.
async fn forged_first_messages_claiming_a_known_device_are_refused(backend: Backend) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    let conv = talking(&s, &mut advocate, &mut survivor).await;
    let adv = advocate.device_id();
    let real = stored_certificate(&s, adv).await;

    let mut relay_session =
        forge_first_message(&s, survivor.device_id(), conv, adv, Some(real.clone())).await;
    let got = survivor.poll().await.unwrap();
    assert!(texts(&got).is_empty(), "the lure is never shown");
    assert_eq!(refusals(&got), vec![Refusal::IdentityChanged]);

    // The survivor answers: encrypted to the real advocate only.
    let sent = survivor
        .send_text(conv, "I'm at my sister's")
        .await
        .unwrap();
    assert_eq!(sent.devices, vec![adv]);
    let stored = held_ciphertext(&s, adv).await;
    assert!(
        relay_session.decrypt(&stored).is_err(),
        "the relay cannot read it"
    );
    assert_eq!(
        texts(&advocate.poll().await.unwrap()),
        vec!["I'm at my sister's"]
    );

    // A new device id with the advocate's certificate, and one with no certificate.
    forge_first_message(&s, survivor.device_id(), conv, random_id(), Some(real)).await;
    forge_first_message(&s, survivor.device_id(), conv, random_id(), None).await;
    let got = survivor.poll().await.unwrap();
    assert!(texts(&got).is_empty());
    let mut reasons = refusals(&got);
    reasons.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reasons,
        vec![Refusal::CertificateMismatch, Refusal::Uncertified]
    );

    // The advocate's side: a forged first message claiming the survivor's device.
    forge_first_message(&s, adv, conv, survivor.device_id(), None).await;
    // And one claiming a second survivor device in the same conversation.
    forge_first_message(&s, adv, conv, random_id(), None).await;
    let got = advocate.poll().await.unwrap();
    assert!(texts(&got).is_empty());
    let mut reasons = refusals(&got);
    reasons.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reasons,
        vec![Refusal::IdentityChanged, Refusal::UnexpectedSurvivorDevice]
    );
    // The real conversation is unharmed.
    advocate.send_text(conv, "still with you").await.unwrap();
    assert_eq!(
        texts(&survivor.poll().await.unwrap()),
        vec!["still with you"]
    );
    s.stop().await;
}

/// (d) The relay withholds one-time prekeys: the first message still goes (X3DH allows it)
/// but both sides count it, the sender for the bundle and the advocate because it still
/// held unused one-time prekeys.
async fn withheld_one_time_prekeys_are_counted_on_both_sides(backend: Backend) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    withhold_prekeys(&s, advocate.device_id()).await;
    let conv = open(&mut survivor).await;
    survivor.send_text(conv, FIRST).await.unwrap();
    assert_eq!(survivor.trust_report().bundles_without_one_time_prekey, 1);
    assert_eq!(texts(&advocate.poll().await.unwrap()), vec![FIRST]);
    assert_eq!(
        advocate
            .trust_report()
            .first_messages_without_one_time_prekey,
        1
    );

    // Control: with prekeys served honestly, nothing is counted.
    advocate.replenish_prekeys(5, 10).await.unwrap();
    let mut second = s.secure_survivor("hotline").await;
    let conv2 = open(&mut second).await;
    second.send_text(conv2, FIRST).await.unwrap();
    assert_eq!(second.trust_report().bundles_without_one_time_prekey, 0);
    assert_eq!(texts(&advocate.poll().await.unwrap()), vec![FIRST]);
    assert_eq!(
        advocate
            .trust_report()
            .first_messages_without_one_time_prekey,
        1,
        "unchanged"
    );
    s.stop().await;
}

/// (e) The relay keeps copies and delivers them again under new envelope ids, both a first
/// message and a later one: the advocate drops them.
async fn replayed_envelopes_are_dropped(backend: Backend) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    let adv = advocate.device_id();
    let conv = open(&mut survivor).await;
    survivor.send_text(conv, FIRST).await.unwrap();
    let copy_first = held_ciphertext(&s, adv).await;
    assert_eq!(texts(&advocate.poll().await.unwrap()), vec![FIRST]);
    advocate.api().await.unwrap().claim(conv).await.unwrap();
    advocate.send_text(conv, REPLY).await.unwrap();
    survivor.poll().await.unwrap();
    survivor.send_text(conv, "a later message").await.unwrap();
    let copy_later = held_ciphertext(&s, adv).await;
    assert_eq!(
        texts(&advocate.poll().await.unwrap()),
        vec!["a later message"]
    );

    inject(&s, adv, conv, copy_first).await;
    inject(&s, adv, conv, copy_later).await;
    let got = advocate.poll().await.unwrap();
    assert!(
        got.iter().all(|i| !matches!(i, Incoming::Message(_))),
        "replays are dropped: {got:?}"
    );
    assert_eq!(envelope_count(&s).await, 0, "and acknowledged");
    s.stop().await;
}

/// (f) Certificates made with a key other than the pinned one: one re-signed with the
/// relay's key, and a whole organisation key chain replaced without a signature by the old
/// key. A survivor that pinned the real key refuses both.
async fn certificates_under_another_organisation_key_are_refused(backend: Backend) {
    let (s, advocate, mut survivor) = scene(backend).await;
    let adv = advocate.device_id();
    let evil_org = OrgKeyPair::generate().unwrap();
    let real = stored_certificate(&s, adv).await;
    let body = CertificateBody::decode(real.body.as_slice()).unwrap();
    let resigned = evil_org.certify(&body);
    s.tamper(
        "UPDATE devices SET certificate_sig = $1 WHERE id = $2",
        vec![
            Arg::Blob(resigned.signature.0.clone()),
            Arg::Blob(adv.0.to_vec()),
        ],
    )
    .await;
    let result = survivor
        .open_conversation("hotline", &OpenConversation::default())
        .await;
    assert_eq!(untrusted(result), (adv, Refusal::BadCertificate));

    // The relay replaces the organisation key itself (and re-signs the certificate with it).
    s.tamper(
        "UPDATE org_keys SET public_key = $1",
        vec![Arg::Blob(evil_org.public().as_bytes().to_vec())],
    )
    .await;
    let mut pinned = s.secure_survivor("hotline").await;
    let result = pinned
        .open_conversation("hotline", &OpenConversation::default())
        .await;
    assert!(matches!(
        result,
        Err(Error::Untrusted {
            reason: Refusal::OrgKeyChanged,
            ..
        })
    ));
    assert_eq!(envelope_count(&s).await, 0);
    s.stop().await;
}

/// Without a built-in pin the organisation key is trusted on first use, counted, and its
/// fingerprint is the one the organisation publishes; a properly signed key replacement is
/// followed; an unsigned one is refused.
async fn organisation_keys_are_pinned_on_first_use_and_followed_only_through_signed_changes(
    backend: Backend,
) {
    let (s, _advocate, _) = scene(backend).await;
    let mut survivor = SecureClient::register_survivor(&s.api()).await.unwrap();
    survivor.set_clock(s.client_clock());
    let key = survivor.verify_org_key("hotline").await.unwrap();
    assert_eq!(key, s.org_key("hotline").public());
    assert_eq!(
        key.fingerprint(),
        s.org_key("hotline").public().fingerprint()
    );
    assert_eq!(survivor.trust_report().trusted_on_first_use, 1);

    // The supervisors replace the key, signing the change with the old one.
    let (sup_api, _) = s.enrolled_member("hotline", "sam", Role::Supervisor).await;
    let next = OrgKeyPair::generate().unwrap();
    let signature = s.org_key("hotline").endorse("hotline", &next.public());
    sup_api
        .set_org_key(&quietline_proto::wire::SetOrgKey {
            public_key: Bytes(next.public().as_bytes().to_vec()),
            signature: Some(Bytes(signature.to_vec())),
        })
        .await
        .unwrap();
    assert_eq!(
        survivor.verify_org_key("hotline").await.unwrap(),
        next.public(),
        "followed through the signed change"
    );
    assert_eq!(survivor.org_key("hotline"), Some(next.public()));

    // The relay appends a key of its own without a valid signature: refused.
    let evil = OrgKeyPair::generate().unwrap();
    s.tamper(
        "INSERT INTO org_keys (org_id, seq, public_key, signature, created_hour) \
         SELECT org_id, 2, $1, $2, 0 FROM org_keys WHERE seq = 1",
        vec![
            Arg::Blob(evil.public().as_bytes().to_vec()),
            Arg::Blob(vec![0; 64]),
        ],
    )
    .await;
    assert!(matches!(
        survivor.verify_org_key("hotline").await,
        Err(Error::Untrusted {
            reason: Refusal::OrgKeyChanged,
            ..
        })
    ));
    assert_eq!(survivor.org_key("hotline"), Some(next.public()), "pin kept");
    s.stop().await;
}

/// Both sides compute the same conversation safety number, and it does not change when the
/// conversation moves to another advocate.
async fn conversation_safety_numbers_match_and_survive_a_transfer(backend: Backend) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    let conv = talking(&s, &mut advocate, &mut survivor).await;
    let mine = survivor.conversation_safety_number(conv).unwrap();
    assert_eq!(mine.len(), 60);
    assert_eq!(advocate.conversation_safety_number(conv).unwrap(), mine);

    let (login, bea) = s.enrolled_member("hotline", "bea", Role::Advocate).await;
    let mut second = s.secure_member("hotline", &login).await;
    advocate
        .api()
        .await
        .unwrap()
        .transfer(conv, bea.member_id)
        .await
        .unwrap();
    survivor.poll().await.unwrap();
    survivor.send_text(conv, "hello again").await.unwrap();
    assert_eq!(texts(&second.poll().await.unwrap()), vec!["hello again"]);
    assert_eq!(second.conversation_safety_number(conv).unwrap(), mine);
    assert_eq!(survivor.conversation_safety_number(conv).unwrap(), mine);
    s.stop().await;
}

/// Put a workflow event of the relay's choosing into a device's queue.
async fn inject_event(s: &TestServer, recipient: Id, kind: &str, conversation: Id) {
    s.tamper(
        "INSERT INTO events (recipient, id, kind, conversation_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        vec![
            Arg::Blob(recipient.0.to_vec()),
            Arg::Blob(random_id().0.to_vec()),
            Arg::Text(kind.to_owned()),
            Arg::Blob(conversation.0.to_vec()),
            Arg::Int(s.clock_now() + 3600),
        ],
    )
    .await;
}

/// A "conversation closed" event is the relay's word too. After it, the advocate's device
/// still holds the conversation's survivor pinned: another identity under the survivor's
/// device id, or another device posing as the survivor, is refused as before.
async fn a_close_announced_by_the_relay_does_not_free_the_conversation_for_another_identity(
    backend: Backend,
) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    let conv = talking(&s, &mut advocate, &mut survivor).await;
    let adv = advocate.device_id();
    inject_event(&s, adv, "conversation_closed", conv).await;
    advocate.poll().await.unwrap();
    assert!(
        advocate.state().session_devices(conv).is_empty(),
        "the sessions went with the announced close"
    );
    forge_first_message(&s, adv, conv, survivor.device_id(), None).await;
    forge_first_message(&s, adv, conv, random_id(), None).await;
    let got = advocate.poll().await.unwrap();
    assert!(texts(&got).is_empty(), "{got:?}");
    let mut reasons = refusals(&got);
    reasons.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        reasons,
        vec![Refusal::IdentityChanged, Refusal::UnexpectedSurvivorDevice]
    );
    s.stop().await;
}

/// A first message that used no one-time prekey (the relay withheld them) replayed after its
/// session is gone is still recognised as answered, and dropped.
async fn a_replayed_first_message_is_dropped_even_after_its_session_is_gone(backend: Backend) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    let adv = advocate.device_id();
    withhold_prekeys(&s, adv).await;
    let conv = open(&mut survivor).await;
    survivor.send_text(conv, FIRST).await.unwrap();
    let copy = held_ciphertext(&s, adv).await;
    assert_eq!(texts(&advocate.poll().await.unwrap()), vec![FIRST]);
    advocate.forget_conversation(conv).unwrap();
    inject(&s, adv, conv, copy).await;
    let got = advocate.poll().await.unwrap();
    assert!(
        texts(&got).is_empty(),
        "the replay is not shown again: {got:?}"
    );
    s.stop().await;
}

/// The relay answers opening contact with another organisation by naming a conversation the
/// survivor already has with a pinned one: refused, so that organisation's devices never
/// enter it.
async fn a_known_conversation_cannot_move_to_another_organisation(backend: Backend) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    let conv = talking(&s, &mut advocate, &mut survivor).await;
    s.create_org("shelter").await;
    s.tamper(
        "UPDATE conversations SET org_id = (SELECT id FROM orgs WHERE code = 'shelter') \
         WHERE id = $1",
        vec![Arg::Blob(conv.0.to_vec())],
    )
    .await;
    let result = survivor
        .open_conversation("shelter", &OpenConversation::default())
        .await;
    assert_eq!(untrusted(result), (conv, Refusal::ConversationMismatch));
    s.stop().await;
}

/// A certificate expires; the relay keeps the device in the fan-out list anyway. The survivor
/// has a session with it, but stops encrypting to it until a certificate valid now comes
/// with its bundle; once the supervisors renew it, the same session carries on.
async fn an_expired_certificate_stops_encryption_even_with_a_session(backend: Backend) {
    let (s, mut advocate, mut survivor) = scene(backend).await;
    let adv = advocate.device_id();
    // A short certificate (ten minutes), which the relay keeps listing after it expires.
    let short = s.certificate_for("hotline", adv, s.clock_now() + 600).await;
    s.store()
        .set_certificate(
            &adv.0,
            short.body.as_slice(),
            short.signature.as_slice(),
            i64::MAX / 2,
        )
        .await
        .unwrap();
    let conv = open(&mut survivor).await;
    survivor.send_text(conv, FIRST).await.unwrap();
    assert_eq!(texts(&advocate.poll().await.unwrap()), vec![FIRST]);
    let before = envelope_count(&s).await;

    s.clock.advance(700);
    let result = survivor.send_text(conv, "after the expiry").await;
    assert_eq!(untrusted(result), (adv, Refusal::BadCertificate));
    assert_eq!(envelope_count(&s).await, before, "nothing was sent");

    // Renewed by the supervisors: the existing session goes on.
    s.certify("hotline", adv).await;
    let sent = survivor.send_text(conv, "renewed").await.unwrap();
    assert_eq!(sent.devices, vec![adv]);
    assert_eq!(texts(&advocate.poll().await.unwrap()), vec!["renewed"]);
    s.stop().await;
}

quietline_tests::on_both!(
    swapped_advocate_keys_are_refused_before_anything_is_sent,
    ghost_devices_in_recipient_lists_and_409_answers_are_refused,
    forged_first_messages_claiming_a_known_device_are_refused,
    withheld_one_time_prekeys_are_counted_on_both_sides,
    replayed_envelopes_are_dropped,
    certificates_under_another_organisation_key_are_refused,
    organisation_keys_are_pinned_on_first_use_and_followed_only_through_signed_changes,
    conversation_safety_numbers_match_and_survive_a_transfer,
    a_close_announced_by_the_relay_does_not_free_the_conversation_for_another_identity,
    a_replayed_first_message_is_dropped_even_after_its_session_is_gone,
    a_known_conversation_cannot_move_to_another_organisation,
    an_expired_certificate_stops_encryption_even_with_a_session,
);
