//! Retention set by the organisation, within the operator's caps, enforced by the sweeper;
//! non-expiry timestamps are stored rounded to the hour.

use quietline_proto::ErrorCode;
use quietline_proto::wire::{OpenConversation, OrgSettings, PushRegistration, Role};
use quietline_server::sweeper::sweep_once;
use quietline_tests::*;

fn rows(dump: &[(String, String)], table: &str) -> usize {
    dump.iter().filter(|(t, _)| t == table).count()
}

/// The documented lifetimes (docs/SAFETY.md): a proof-of-work challenge lives 5 minutes,
/// an event and an invitation 7 days, a refresh token 30 days. Past them each is refused
/// and the sweeper deletes it; before, nothing is swept. One hour of slack allows for
/// expiries stored rounded to the hour.
async fn events_challenges_invitations_and_refresh_tokens_expire_as_documented(backend: Backend) {
    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;
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
    adv.api.claim(conv).await.unwrap();
    // An event for the advocate: the survivor left quickly.
    s.api()
        .exit(&sur.exit_token, quietline_client::ExitMode::Hide)
        .await
        .unwrap();
    // Two solved challenges, never used.
    let api = s.api();
    let pow_a = quietline_client::solve_challenge(api.challenge().await.unwrap())
        .await
        .unwrap();
    let pow_b = quietline_client::solve_challenge(api.challenge().await.unwrap())
        .await
        .unwrap();
    // An invitation, never used.
    let org = s.store().org_by_code("hotline").await.unwrap().unwrap();
    let invited = quietline_server::service::members::invite_in_org(
        &s.state,
        quietline_proto::Id::from_slice(&org.id).unwrap(),
        "bo",
        Role::Advocate,
    )
    .await
    .unwrap();
    let dump = s.store().dump_all_tables().await.unwrap();
    assert!(rows(&dump, "events") >= 1);
    assert_eq!(rows(&dump, "challenges"), 2);
    assert!(rows(&dump, "refresh_tokens") >= 1);

    // Fresh: nothing of these is swept.
    let swept = sweep_once(&s.state).await.unwrap();
    assert_eq!(
        (
            swept.events,
            swept.challenges,
            swept.refresh_tokens,
            swept.invitations
        ),
        (0, 0, 0, 0)
    );

    // Challenges: 5 minutes.
    s.clock.advance(5 * 60 + HOUR + 1);
    let err = api
        .register_device(&quietline_proto::wire::RegisterDevice {
            pow: Some(pow_a),
            keys: fake_keys(1),
        })
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::InvalidProofOfWork), "{err:?}");
    let swept = sweep_once(&s.state).await.unwrap();
    assert_eq!(swept.challenges, 1, "the unused one is swept");
    assert_eq!(
        (swept.events, swept.invitations, swept.refresh_tokens),
        (0, 0, 0)
    );
    drop(pow_b);

    // Events and invitations: 7 days.
    s.clock.advance(7 * DAY + HOUR);
    let err = api
        .enroll(&quietline_proto::wire::Enroll {
            token: invited.token,
            password: "a long enough password".into(),
        })
        .await
        .unwrap_err();
    assert!(
        err.status().is_some_and(|st| (400..500).contains(&st)),
        "{err:?}"
    );
    let swept = sweep_once(&s.state).await.unwrap();
    assert!(swept.events >= 1);
    assert_eq!(swept.invitations, 1);
    assert_eq!(swept.refresh_tokens, 0, "refresh tokens live longer");
    let dump = s.store().dump_all_tables().await.unwrap();
    assert_eq!(rows(&dump, "events"), 0);
    assert_eq!(rows(&dump, "challenges"), 0);

    // Refresh tokens: 30 days from issue.
    s.clock.advance(30 * DAY + HOUR - 7 * DAY);
    let err = api.refresh(&adv.refresh_token).await.unwrap_err();
    assert!(err.is(ErrorCode::Unauthorized), "{err:?}");
    let swept = sweep_once(&s.state).await.unwrap();
    assert!(swept.refresh_tokens >= 1);
    let dump = s.store().dump_all_tables().await.unwrap();
    assert_eq!(rows(&dump, "refresh_tokens"), 0);
    s.stop().await;
}

async fn organisation_retention_is_bounded_and_enforced(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let sup = s.member("hotline", "sam", Role::Supervisor).await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    let defaults = sup.api.org_settings().await.unwrap();
    assert_eq!(
        defaults.envelope_ttl_secs,
        Some(7 * 24 * 3600),
        "safe default: 7 days"
    );
    assert_eq!(
        defaults.idle_ttl_secs,
        Some(30 * 24 * 3600),
        "safe default: 30 days"
    );
    for bad in [
        OrgSettings {
            envelope_ttl_secs: Some(0),
            ..OrgSettings::default()
        },
        OrgSettings {
            envelope_ttl_secs: Some(365 * 24 * 3600),
            ..OrgSettings::default()
        },
        OrgSettings {
            idle_ttl_secs: Some(10),
            ..OrgSettings::default()
        },
    ] {
        assert!(
            sup.api
                .set_org_settings(&bad)
                .await
                .unwrap_err()
                .is(ErrorCode::BadRequest)
        );
    }
    assert!(
        adv.api
            .set_org_settings(&OrgSettings::default())
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    let set = sup
        .api
        .set_org_settings(&OrgSettings {
            envelope_ttl_secs: Some(2 * 3600),
            idle_ttl_secs: Some(24 * 3600),
            ..OrgSettings::default()
        })
        .await
        .unwrap();
    assert_eq!(set.envelope_ttl_secs, Some(2 * 3600));
    assert_eq!(
        set.out_of_hours_message, defaults.out_of_hours_message,
        "absent fields unchanged"
    );

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
    // Every stored time is a whole hour: times that are not expiries rounded down, expiries
    // (envelopes, events, tokens, challenges, invitations) rounded up.
    for (table, row) in s.store().dump_all_tables().await.unwrap() {
        for field in row.split_whitespace() {
            if let Some(v) = field
                .strip_suffix("")
                .and_then(|f| f.split_once('='))
                .filter(|(k, v)| {
                    (k.ends_with("_hour") || k.ends_with("expires_at")) && *v != "NULL"
                })
            {
                assert_eq!(
                    v.1.parse::<i64>().unwrap() % 3600,
                    0,
                    "{table}.{} is rounded to the hour",
                    v.0
                );
            }
        }
    }
    // Rounded up to the hour, the two-hour lifetime ends within three hours.
    s.clock.advance(2 * 3600 - 1);
    assert_eq!(sweep_once(&s.state).await.unwrap().envelopes, 0);
    s.clock.advance(3600 + 1);
    assert_eq!(
        sweep_once(&s.state).await.unwrap().envelopes,
        1,
        "the organisation's envelope lifetime"
    );
    assert_eq!(
        s.store().count_envelopes(&adv.device_id.0).await.unwrap(),
        0
    );
    assert!(
        s.store().conversation(&conv.0).await.unwrap().is_some(),
        "not idle long enough yet"
    );
    s.clock.advance(24 * 3600);
    assert_eq!(sweep_once(&s.state).await.unwrap().idle_conversations, 1);
    assert!(
        s.store().conversation(&conv.0).await.unwrap().is_none(),
        "idle conversation purged"
    );
    let needle = hex(&conv.0);
    assert!(
        s.store()
            .dump_all_tables()
            .await
            .unwrap()
            .iter()
            .all(|(_, row)| !row.contains(&needle))
    );
    s.stop().await;
}

async fn without_purge_on_close_a_closed_conversation_keeps_no_messages_and_can_be_reopened(
    backend: Backend,
) {
    use quietline_proto::wire::ConversationState;
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let sup = s.member("hotline", "sam", Role::Supervisor).await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    assert_eq!(
        sup.api.org_settings().await.unwrap().purge_on_close,
        Some(true),
        "safe default: purge at once"
    );
    sup.api
        .set_org_settings(&OrgSettings {
            purge_on_close: Some(false),
            idle_ttl_secs: Some(24 * 3600),
            ..OrgSettings::default()
        })
        .await
        .unwrap();
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
    adv.api
        .send(conv, &one_envelope(sur.device_id))
        .await
        .unwrap();
    adv.api.close(conv).await.unwrap();
    assert_eq!(
        s.store().count_envelopes(&sur.device_id.0).await.unwrap(),
        0,
        "messages purged at once"
    );
    assert_eq!(
        adv.api.conversation(conv).await.unwrap().state,
        ConversationState::Closed
    );
    assert!(
        adv.api
            .send(conv, &one_envelope(sur.device_id))
            .await
            .unwrap_err()
            .is(ErrorCode::Conflict)
    );
    // The survivor comes back: the same conversation, the same advocate.
    let again = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    assert_eq!(again.conversation.id, conv);
    assert_eq!(again.conversation.assigned_to, Some(adv.member_id));
    sur.api
        .send(conv, &one_envelope(adv.device_id))
        .await
        .unwrap();
    // Closed and idle long enough: purged.
    adv.api.close(conv).await.unwrap();
    s.clock.advance(24 * 3600 + 3600);
    assert_eq!(sweep_once(&s.state).await.unwrap().idle_conversations, 1);
    assert!(s.store().conversation(&conv.0).await.unwrap().is_none());
    s.stop().await;
}

/// Every rendering of `b` that `dump_all_tables` could hold.
fn forms(b: &[u8]) -> [String; 2] {
    [hex(b), quietline_proto::b64::encode(b)]
}

/// What a survivor device leaves behind if anything: ids, keys, token hashes, endpoint.
struct Traces(Vec<String>);

impl Traces {
    async fn of(sur: &Survivor, conversation: Option<quietline_proto::Id>) -> Traces {
        let mut t = Vec::new();
        t.extend(forms(&sur.device_id.0));
        t.extend(forms(sur.identity.public().dh_key()));
        t.extend(forms(sur.identity.public().signing_key()));
        if let Some(c) = conversation {
            t.extend(forms(&c.0));
        }
        for token in [&sur.refresh_token, &sur.exit_token] {
            t.extend(forms(&quietline_server::random::token_hash(token)));
        }
        let endpoint = format!("https://push.example.org/up/{}", hex(&sur.device_id.0[..8]));
        sur.api
            .register_push(&PushRegistration {
                endpoint: endpoint.clone(),
                utc_offset_minutes: 0,
                safe_hours: vec![],
            })
            .await
            .unwrap();
        t.push(endpoint);
        Traces(t)
    }

    async fn present(&self, s: &TestServer) -> usize {
        let dump = s.store().dump_all_tables().await.unwrap();
        self.0
            .iter()
            .filter(|needle| dump.iter().any(|(_, row)| row.contains(needle.as_str())))
            .count()
    }
}

async fn survivor_devices_are_purged_with_their_conversation_and_orphans_are_swept(
    backend: Backend,
) {
    // The advocate's device must outlive the jumps of the clock below.
    let s = TestServer::start_with(backend, |c| c.member_device_ttl_secs = 365 * 24 * 3600).await;
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    let open = async |sur: &Survivor| {
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
        conv
    };

    // Closed by the advocate: the device goes with the conversation at once.
    let closed = s.survivor().await;
    let conv = open(&closed).await;
    adv.api.claim(conv).await.unwrap();
    adv.api
        .send(conv, &one_envelope(closed.device_id))
        .await
        .unwrap();
    let closed_traces = Traces::of(&closed, Some(conv)).await;
    assert!(closed_traces.present(&s).await > 0);
    adv.api.close(conv).await.unwrap();
    assert_eq!(closed_traces.present(&s).await, 0, "closed: nothing left");
    assert!(
        closed
            .api
            .inbox()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );

    // Closed by the survivor: the same.
    let own = s.survivor().await;
    let conv = open(&own).await;
    let own_traces = Traces::of(&own, Some(conv)).await;
    own.api.close(conv).await.unwrap();
    assert_eq!(own_traces.present(&s).await, 0, "closed by the survivor");

    // Idle purge, and an orphan that never opened a conversation.
    let idle = s.survivor().await;
    let conv = open(&idle).await;
    let idle_traces = Traces::of(&idle, Some(conv)).await;
    let orphan = s.survivor().await;
    let orphan_traces = Traces::of(&orphan, None).await;
    let orphan_ttl = s.state.config.orphan_device_ttl_secs as i64;
    s.clock.advance(orphan_ttl - 3600);
    let swept = sweep_once(&s.state).await.unwrap();
    assert_eq!(swept.orphan_devices, 0, "not old enough yet");
    assert!(orphan_traces.present(&s).await > 0);
    assert!(idle_traces.present(&s).await > 0);
    s.clock.advance(3600 + 3600);
    let swept = sweep_once(&s.state).await.unwrap();
    assert_eq!(swept.orphan_devices, 1);
    assert_eq!(orphan_traces.present(&s).await, 0, "orphan: nothing left");
    assert!(
        idle_traces.present(&s).await > 0,
        "its conversation keeps it"
    );

    s.clock.advance(31 * 24 * 3600); // past the default idle lifetime of 30 days
    let swept = sweep_once(&s.state).await.unwrap();
    assert_eq!(swept.idle_conversations, 1);
    assert_eq!(idle_traces.present(&s).await, 0, "idle purge: nothing left");
    // The advocate's own device is untouched.
    assert!(
        s.store()
            .device_auth(&adv.device_id.0)
            .await
            .unwrap()
            .is_some()
    );
    s.stop().await;
}

quietline_tests::on_both!(
    survivor_devices_are_purged_with_their_conversation_and_orphans_are_swept,
    events_challenges_invitations_and_refresh_tokens_expire_as_documented,
    organisation_retention_is_bounded_and_enforced,
    without_purge_on_close_a_closed_conversation_keeps_no_messages_and_can_be_reopened,
);
