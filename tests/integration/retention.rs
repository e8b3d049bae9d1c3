//! Retention set by the organisation, within the operator's caps, enforced by the sweeper;
//! non-expiry timestamps are stored rounded to the hour.

use quietline_proto::ErrorCode;
use quietline_proto::wire::{OpenConversation, OrgSettings, Role};
use quietline_server::sweeper::sweep_once;
use quietline_tests::*;

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
    // Stored times that are not expiries are whole hours.
    for (table, row) in s.store().dump_all_tables().await.unwrap() {
        for field in row.split_whitespace() {
            if let Some(v) = field
                .strip_suffix("")
                .and_then(|f| f.split_once('='))
                .filter(|(k, _)| k.ends_with("_hour"))
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
    s.clock.advance(2 * 3600 + 1);
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

quietline_tests::on_both!(
    organisation_retention_is_bounded_and_enforced,
    without_purge_on_close_a_closed_conversation_keeps_no_messages_and_can_be_reopened,
);
