//! Member devices can be removed: by their owner, with a browser session's logout, and by the
//! sweeper once unseen for `member_device_ttl_secs`; messages go only to live devices.

use quietline_client::{Api, RawRequest};
use quietline_proto::wire::{OpenConversation, Role};
use quietline_proto::{ErrorCode, Id};
use quietline_server::sweeper::sweep_once;
use quietline_tests::*;

/// Log `m` in again and register another device; its id, client and refresh token.
async fn another_device(s: &TestServer, m: &Member) -> (Id, Api, String) {
    let logged = s
        .login("hotline", &m.handle, &m.password, &m.totp_uri, None)
        .await
        .unwrap();
    let reg = s
        .api()
        .with_token(logged.tokens.access_token.as_str())
        .register_member_device(fake_keys(5))
        .await
        .unwrap();
    s.certify("hotline", reg.device_id).await;
    (
        reg.device_id,
        s.api().with_token(reg.tokens.access_token.as_str()),
        reg.tokens.refresh_token,
    )
}

async fn members_remove_their_own_devices_and_nobody_elses(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let ana = s.member("hotline", "ana", Role::Advocate).await;
    let bo = s.member("hotline", "bo", Role::Supervisor).await;
    let sur = s.survivor().await;
    let (second, second_api, second_refresh) = another_device(&s, &ana).await;

    // Someone else's device, a survivor's, an unknown one: the same 404, nothing removed.
    let mut answers = Vec::new();
    for target in [bo.device_id, sur.device_id, random_id()] {
        let r = ana
            .api
            .raw(RawRequest::delete(format!("/v1/devices/{target}")))
            .await
            .unwrap();
        answers.push((r.status, r.body));
    }
    let r = sur
        .api
        .raw(RawRequest::delete(format!("/v1/devices/{}", sur.device_id)))
        .await
        .unwrap();
    answers.push((r.status, r.body));
    for a in &answers {
        assert_eq!(a, &answers[0]);
    }
    assert_eq!(answers[0].0, 404);
    for d in [bo.device_id, sur.device_id] {
        assert!(s.store().device_auth(&d.0).await.unwrap().is_some());
    }

    // Her own second device: gone with its tokens; the first one is untouched.
    second_api.inbox().await.unwrap();
    ana.api.remove_device(second).await.unwrap();
    assert!(s.store().device_auth(&second.0).await.unwrap().is_none());
    assert!(
        second_api
            .inbox()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    assert!(
        s.api()
            .refresh(&second_refresh)
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    assert!(
        ana.api
            .remove_device(second)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    ana.api.inbox().await.unwrap();
    s.stop().await;
}

async fn logout_can_remove_the_browser_device(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let ana = s.member("hotline", "ana", Role::Advocate).await;
    let (kept, kept_api, kept_refresh) = another_device(&s, &ana).await;
    let (gone, _, gone_refresh) = another_device(&s, &ana).await;

    // A plain logout ends the session and keeps the device.
    kept_api.logout(&kept_refresh).await.unwrap();
    assert!(s.store().device_auth(&kept.0).await.unwrap().is_some());
    // With the flag, the device goes too.
    s.api().logout_removing_device(&gone_refresh).await.unwrap();
    assert!(s.store().device_auth(&gone.0).await.unwrap().is_none());
    assert_eq!(s.store().count_one_time_prekeys(&gone.0).await.unwrap(), 0);
    // A survivor's refresh token with the flag removes nothing.
    let sur = s.survivor().await;
    s.api()
        .logout_removing_device(&sur.refresh_token)
        .await
        .unwrap();
    assert!(
        s.store()
            .device_auth(&sur.device_id.0)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.store()
            .device_auth(&ana.device_id.0)
            .await
            .unwrap()
            .is_some()
    );
    s.stop().await;
}

async fn unseen_member_devices_get_no_messages_and_are_culled(backend: Backend) {
    const TTL: i64 = 2 * 24 * 3600;
    let s = TestServer::start_with(backend, |c| c.member_device_ttl_secs = TTL as u64).await;
    s.create_org("hotline").await;
    let ana = s.member("hotline", "ana", Role::Advocate).await;
    ana.api.set_duty(true).await.unwrap();
    let (abandoned, _, _) = another_device(&s, &ana).await;

    // Both are live now: a survivor opening contact encrypts to both.
    let early = s.survivor().await;
    let opened = early
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    assert_eq!(opened.recipients.len(), 2);

    // Three days on, only the first device has been used again.
    s.clock.advance(TTL + 24 * 3600);
    let fresh = s.api().refresh(&ana.refresh_token).await.unwrap();
    let ana_api = s.api().with_token(fresh.access_token.as_str());
    ana_api.inbox().await.unwrap();
    let sur = s.survivor().await;
    let opened = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    let to: Vec<Id> = opened.recipients.iter().map(|b| b.device_id).collect();
    assert_eq!(to, vec![ana.device_id], "only the live device");
    assert!(s.store().device_auth(&abandoned.0).await.unwrap().is_some());

    let swept = sweep_once(&s.state).await.unwrap();
    assert_eq!(swept.member_devices, 1);
    assert!(s.store().device_auth(&abandoned.0).await.unwrap().is_none());
    assert!(
        s.store()
            .device_auth(&ana.device_id.0)
            .await
            .unwrap()
            .is_some()
    );
    s.stop().await;
}

quietline_tests::on_both!(
    members_remove_their_own_devices_and_nobody_elses,
    logout_can_remove_the_browser_device,
    unseen_member_devices_get_no_messages_and_are_culled,
);
