//! Tokens, sign-in and the authorization matrix.

use futures_util::future::join_all;
use quietline_client::{Api, RawRequest, RawResponse};
use quietline_proto::ErrorCode;
use quietline_proto::wire::{
    Duty, Enroll, Invite, Login, OpenConversation, OutgoingEnvelope, Role, SendMessage,
};
use quietline_tests::*;

async fn refresh_token_reuse_revokes_the_whole_family(backend: Backend) {
    let s = TestServer::start(backend).await;
    let sur = s.survivor().await;
    let api = s.api();
    let second = api.refresh(&sur.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, sur.refresh_token);
    let device = api.with_token(second.access_token.as_str());
    device.inbox().await.unwrap();
    // The first token again: refused, and the whole session dies with it.
    let err = api.refresh(&sur.refresh_token).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(
        api.refresh(&second.refresh_token)
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    assert!(
        device
            .inbox()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized),
        "access token revoked too"
    );
    assert!(
        sur.api
            .inbox()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    s.stop().await;
}

/// Logout deletes the whole refresh-token family: the token given, the ones it replaced,
/// and nothing of any other session (docs/SAFETY.md, `refresh_tokens`).
async fn logout_kills_the_whole_token_family(backend: Backend) {
    let s = TestServer::start(backend).await;
    let refresh_rows = async || {
        s.store()
            .dump_all_tables()
            .await
            .unwrap()
            .into_iter()
            .filter(|(t, _)| t == "refresh_tokens")
            .count()
    };
    let sur = s.survivor().await;
    let other = s.survivor().await;
    let api = s.api();
    let second = api.refresh(&sur.refresh_token).await.unwrap();
    let third = api.refresh(&second.refresh_token).await.unwrap();
    assert_eq!(
        refresh_rows().await,
        4,
        "three of one family, one of the other"
    );
    let device = api.with_token(third.access_token.as_str());
    device.logout(&third.refresh_token).await.unwrap();
    assert_eq!(
        refresh_rows().await,
        1,
        "only the other session's token is left"
    );
    for token in [
        &sur.refresh_token,
        &second.refresh_token,
        &third.refresh_token,
    ] {
        assert!(
            api.refresh(token)
                .await
                .unwrap_err()
                .is(ErrorCode::Unauthorized)
        );
    }
    // The other session is untouched.
    let renewed = api.refresh(&other.refresh_token).await.unwrap();
    api.with_token(renewed.access_token.as_str())
        .inbox()
        .await
        .unwrap();

    // A member's session too.
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    let before = refresh_rows().await;
    adv.api.logout(&adv.refresh_token).await.unwrap();
    assert!(refresh_rows().await < before);
    assert!(
        api.refresh(&adv.refresh_token)
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    s.stop().await;
}

async fn members_sign_in_with_password_and_totp_and_failures_back_off(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let m = s.member("hotline", "ana", Role::Advocate).await;
    // Right password, wrong code; wrong password, right code; unknown handle: all 401.
    let api = s.api();
    s.clock.advance(30);
    let bad_code = api
        .login(&Login {
            org: "hotline".into(),
            handle: "ana".into(),
            password: m.password.clone(),
            totp: "000000".into(),
            device_id: None,
        })
        .await
        .unwrap_err();
    assert!(bad_code.is(ErrorCode::Unauthorized));
    let bad_pw = api
        .login(&Login {
            org: "hotline".into(),
            handle: "ana".into(),
            password: "wrong password!!".into(),
            totp: s.totp_code(&m.totp_uri),
            device_id: None,
        })
        .await
        .unwrap_err();
    assert!(bad_pw.is(ErrorCode::Unauthorized));
    let unknown = api
        .login(&Login {
            org: "hotline".into(),
            handle: "nobody".into(),
            password: m.password.clone(),
            totp: "123456".into(),
            device_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        unknown.body(),
        bad_pw.body(),
        "unknown handle looks like a wrong password"
    );
    // A code works once.
    let ok = s
        .login(
            "hotline",
            "ana",
            &m.password,
            &m.totp_uri,
            Some(m.device_id),
        )
        .await
        .unwrap();
    assert_eq!(ok.role, Role::Advocate);
    let replay = api
        .login(&Login {
            org: "hotline".into(),
            handle: "ana".into(),
            password: m.password.clone(),
            totp: s.totp_code(&m.totp_uri),
            device_id: None,
        })
        .await
        .unwrap_err();
    assert!(
        replay.is(ErrorCode::Unauthorized),
        "a TOTP code is accepted once"
    );
    // After repeated failures even the right credentials wait.
    for _ in 0..6 {
        let _ = api
            .login(&Login {
                org: "hotline".into(),
                handle: "ana".into(),
                password: "wrong password!!".into(),
                totp: "000000".into(),
                device_id: None,
            })
            .await;
    }
    let err = api
        .login(&Login {
            org: "hotline".into(),
            handle: "ana".into(),
            password: m.password.clone(),
            totp: s.totp_code(&m.totp_uri),
            device_id: None,
        })
        .await
        .unwrap_err();
    assert!(
        err.is(ErrorCode::Unauthorized),
        "a full attempt window answers like a wrong password: {err}"
    );
    s.clock.advance(3600);
    s.login("hotline", "ana", &m.password, &m.totp_uri, None)
        .await
        .unwrap();
    s.stop().await;
}

async fn enrolment_tokens_work_once_and_passwords_must_be_long(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let sup = s.member("hotline", "sam", Role::Supervisor).await;
    let invited = sup
        .api
        .invite(&Invite {
            handle: "new".into(),
            role: Role::Advocate,
        })
        .await
        .unwrap();
    let api = s.api();
    let short = api
        .enroll(&Enroll {
            token: invited.token.clone(),
            password: "short".into(),
        })
        .await
        .unwrap_err();
    assert!(short.is(ErrorCode::BadRequest));
    api.enroll(&Enroll {
        token: invited.token.clone(),
        password: "a long enough password".into(),
    })
    .await
    .unwrap();
    let again = api
        .enroll(&Enroll {
            token: invited.token,
            password: "another long password".into(),
        })
        .await
        .unwrap_err();
    assert!(again.is(ErrorCode::Unauthorized));
    let dup = sup
        .api
        .invite(&Invite {
            handle: "new".into(),
            role: Role::Advocate,
        })
        .await
        .unwrap_err();
    assert!(dup.is(ErrorCode::Conflict));
    s.stop().await;
}

async fn authorization_matrix(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    s.create_org("shelter").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let other_org = s.member("shelter", "olga", Role::Supervisor).await;
    other_org.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let other_sur = s.survivor().await;
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

    // Another organisation: the conversation does not exist for them.
    for err in [
        other_org.api.conversation(conv).await.unwrap_err(),
        other_org.api.claim(conv).await.unwrap_err(),
        other_org.api.close(conv).await.unwrap_err(),
        other_org.api.recipients(conv).await.unwrap_err(),
        other_org.api.bundle(a.device_id).await.unwrap_err(),
        other_org.api.bundle(sur.device_id).await.unwrap_err(),
    ] {
        assert!(err.is(ErrorCode::NotFound), "{err}");
    }
    assert!(
        other_org
            .api
            .conversations()
            .await
            .unwrap()
            .conversations
            .is_empty()
    );

    // Another survivor device: same.
    assert!(
        other_sur
            .api
            .conversation(conv)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    assert!(
        other_sur
            .api
            .recipients(conv)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    let err = other_sur
        .api
        .send(conv, &one_envelope(a.device_id))
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::NotFound));
    assert!(
        other_sur
            .api
            .bundle(a.device_id)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound),
        "no conversation, no bundles"
    );
    assert_eq!(
        other_sur.api.ack(&[mid]).await.unwrap().deleted,
        0,
        "cannot ack another device's envelope"
    );
    assert_eq!(s.store().count_envelopes(&a.device_id.0).await.unwrap(), 1);

    // A survivor device calling member routes.
    assert!(
        sur.api
            .set_duty(true)
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    assert!(
        sur.api
            .claim(conv)
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    assert!(
        sur.api
            .invite(&Invite {
                handle: "x".into(),
                role: Role::Supervisor
            })
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    assert!(
        sur.api
            .org_settings()
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    // An advocate calling supervisor routes.
    assert!(
        a.api
            .invite(&Invite {
                handle: "x".into(),
                role: Role::Supervisor
            })
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    // The trust routes: supervisors only, and only for their own organisation's devices.
    let cert = s
        .certificate_for("hotline", a.device_id, s.clock_now() + 3600)
        .await;
    let key = quietline_proto::wire::SetOrgKey {
        public_key: quietline_proto::b64::Bytes(vec![0; 32]),
        signature: None,
    };
    for err in [
        a.api.org_devices().await.unwrap_err(),
        a.api.certify(a.device_id, &cert).await.unwrap_err(),
        a.api.set_org_key(&key).await.unwrap_err(),
        sur.api.org_devices().await.unwrap_err(),
        sur.api.certify(a.device_id, &cert).await.unwrap_err(),
        sur.api.set_org_key(&key).await.unwrap_err(),
    ] {
        assert!(err.is(ErrorCode::Forbidden), "{err}");
    }
    assert!(
        other_org
            .api
            .certify(a.device_id, &cert)
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound),
        "another organisation's device does not exist for a supervisor"
    );
    assert!(
        !other_org
            .api
            .org_devices()
            .await
            .unwrap()
            .devices
            .iter()
            .any(|d| d.device_id == a.device_id)
    );
    assert!(
        sur.api
            .my_certificate()
            .await
            .unwrap_err()
            .is(ErrorCode::NotFound)
    );
    // A member opening contact like a survivor.
    assert!(
        a.api
            .open_conversation("hotline", &OpenConversation::default())
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );

    // No token, garbage, forged, another server's, expired.
    let anon = s.api();
    assert!(
        anon.conversations()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    let garbage = anon.with_token("garbage");
    assert!(
        garbage
            .conversations()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    let token = sur.api.token().unwrap().as_str().to_owned();
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(
        anon.with_token(forged.as_str())
            .conversations()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    let foreign = quietline_server::auth::jwt::Keys::new(&[9; 32], &[], 300)
        .unwrap()
        .issue(
            quietline_server::auth::jwt::Subject::Survivor {
                device: sur.device_id,
            },
            0,
            s.clock_now(),
        )
        .unwrap();
    assert!(
        anon.with_token(foreign.as_str())
            .conversations()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    let raw = anon
        .raw(
            RawRequest::get("/v1/conversations")
                .header("authorization", "Basic dXNlcjpwYXNz")
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 401);
    s.clock.advance(3601);
    assert!(
        sur.api
            .conversations()
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized),
        "expired"
    );

    // A revoked member's tokens die at once.
    let fresh = s
        .login(
            "hotline",
            "ana",
            &a.password,
            &a.totp_uri,
            Some(a.device_id),
        )
        .await
        .unwrap();
    let a_api = Api::new(&s.base)
        .unwrap()
        .with_token(fresh.tokens.access_token.as_str());
    a_api.set_duty(false).await.unwrap();
    let m = s
        .store()
        .member_by_handle("hotline", "ana")
        .await
        .unwrap()
        .unwrap();
    s.store().revoke_member(&m.id).await.unwrap();
    assert!(
        a_api
            .set_duty(true)
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    assert!(
        s.login("hotline", "ana", &a.password, &a.totp_uri, None)
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    let _ = Duty { on_duty: true };
    s.stop().await;
}

async fn reusing_a_member_devices_refresh_token_ends_the_thiefs_access_token(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let m = s.member("hotline", "ana", Role::Advocate).await;
    // The thief copied the refresh token and used it first.
    let stolen = s.api().refresh(&m.refresh_token).await.unwrap();
    let thief = s.api().with_token(stolen.access_token.as_str());
    thief.inbox().await.unwrap();
    // The owner presents the same token: reuse, the session is revoked.
    assert!(
        s.api()
            .refresh(&m.refresh_token)
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    assert!(
        thief.inbox().await.unwrap_err().is(ErrorCode::Unauthorized),
        "the thief's device-bound access token is dead"
    );
    assert!(m.api.inbox().await.unwrap_err().is(ErrorCode::Unauthorized));
    assert!(
        s.api()
            .refresh(&stolen.refresh_token)
            .await
            .unwrap_err()
            .is(ErrorCode::Unauthorized)
    );
    // The owner signs in again on the same device and works.
    let again = s
        .login(
            "hotline",
            "ana",
            &m.password,
            &m.totp_uri,
            Some(m.device_id),
        )
        .await
        .unwrap();
    s.api()
        .with_token(again.tokens.access_token.as_str())
        .inbox()
        .await
        .unwrap();
    s.stop().await;
}

fn login_request(org: &str, handle: &str, password: &str, totp: &str) -> RawRequest {
    RawRequest::post("/v1/auth/login")
        .no_auth()
        .json(&serde_json::json!({
            "org": org, "handle": handle, "password": password, "totp": totp,
        }))
}

async fn concurrent_login_guesses_cannot_exceed_the_allowed_attempts(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.login_failures_before_backoff = 3).await;
    s.create_org("hotline").await;
    let m = s.member("hotline", "ana", Role::Advocate).await;
    let api = s.api();
    let guesses = (0..20).map(|i| {
        let api = api.clone();
        async move {
            api.raw(login_request(
                "hotline",
                "ana",
                &format!("guess number {i:04}"),
                "000000",
            ))
            .await
            .unwrap()
        }
    });
    for r in join_all(guesses).await {
        assert_eq!(r.status, 401);
    }
    let row = s
        .store()
        .member(&m.member_id.0)
        .await
        .unwrap()
        .expect("member");
    assert_eq!(
        row.failed_logins, 3,
        "twenty concurrent guesses, exactly three attempts checked"
    );
    // The window is full: even the right credentials wait for it to end.
    let err = api
        .login(&Login {
            org: "hotline".into(),
            handle: "ana".into(),
            password: m.password.clone(),
            totp: s.totp_code(&m.totp_uri),
            device_id: None,
        })
        .await
        .unwrap_err();
    assert!(err.is(ErrorCode::Unauthorized));
    s.stop().await;
}

async fn unknown_and_real_handles_get_identical_login_failures(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.login_failures_before_backoff = 2).await;
    s.create_org("hotline").await;
    let m = s.member("hotline", "ana", Role::Advocate).await;
    let api = s.api();
    let answer = |handle: &'static str, password: String| {
        let api = api.clone();
        async move {
            api.raw(login_request("hotline", handle, &password, "000000"))
                .await
                .unwrap()
        }
    };
    let same = |a: &RawResponse, b: &RawResponse, what: &str| {
        assert_eq!(a.status, b.status, "{what}: status");
        assert_eq!(a.body, b.body, "{what}: body bytes");
    };
    let unknown = answer("nobody", "some password here".into()).await;
    assert_eq!(unknown.status, 401);
    let wrong_password = answer("ana", "some password here".into()).await;
    same(&unknown, &wrong_password, "wrong password");
    let wrong_code = answer("ana", m.password.clone()).await;
    same(&unknown, &wrong_code, "right password, wrong code");
    // Ana's window is now full; a real handle that is locked answers the same too.
    let locked = answer("ana", m.password.clone()).await;
    same(&unknown, &locked, "full window");
    let unknown_again = answer("nobody", "some password here".into()).await;
    same(&unknown, &unknown_again, "unknown again");
    s.stop().await;

    // 429 comes from the global login limit, for real and unknown handles alike.
    let s = TestServer::start_with(backend, |c| {
        c.login_per_second = 1;
        c.login_burst = 2;
    })
    .await;
    s.create_org("hotline").await;
    let _m = s.member("hotline", "ana", Role::Advocate).await; // spends one login
    let api = s.api();
    let mut limited = Vec::new();
    for handle in ["ana", "nobody", "ana", "nobody", "ana", "nobody"] {
        let r = api
            .raw(login_request(
                "hotline",
                handle,
                "some password here",
                "000000",
            ))
            .await
            .unwrap();
        if r.status == 429 {
            limited.push((handle, r));
        } else {
            assert_eq!(r.status, 401);
        }
    }
    let real = limited
        .iter()
        .find(|(h, _)| *h == "ana")
        .expect("real handle limited");
    let unknown = limited
        .iter()
        .find(|(h, _)| *h == "nobody")
        .expect("unknown handle limited");
    assert_eq!(real.1.body, unknown.1.body);
    s.stop().await;
}

async fn a_stranger_locks_a_member_out_for_at_most_one_window(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.login_failures_before_backoff = 3;
        c.login_window_secs = 300;
    })
    .await;
    s.create_org("hotline").await;
    let m = s.member("hotline", "ana", Role::Advocate).await;
    let api = s.api();
    let guess = || async {
        let r = api
            .raw(login_request(
                "hotline",
                "ana",
                "stranger's guess!",
                "000000",
            ))
            .await
            .unwrap();
        assert_eq!(r.status, 401);
    };
    let owner = || async {
        api.login(&Login {
            org: "hotline".into(),
            handle: "ana".into(),
            password: m.password.clone(),
            totp: s.totp_code(&m.totp_uri),
            device_id: None,
        })
        .await
    };
    for _ in 0..3 {
        guess().await;
    }
    s.clock.advance(30);
    assert!(
        owner().await.is_err(),
        "locked out while the window is full"
    );
    // The stranger keeps guessing all through the window; that does not extend it.
    for _ in 0..8 {
        s.clock.advance(30);
        guess().await;
    }
    s.clock.advance(300 - 30 * 9);
    owner().await.expect("the lockout ends with its window");
    s.stop().await;
}

quietline_tests::on_both!(
    logout_kills_the_whole_token_family,
    refresh_token_reuse_revokes_the_whole_family,
    members_sign_in_with_password_and_totp_and_failures_back_off,
    enrolment_tokens_work_once_and_passwords_must_be_long,
    authorization_matrix,
    reusing_a_member_devices_refresh_token_ends_the_thiefs_access_token,
    concurrent_login_guesses_cannot_exceed_the_allowed_attempts,
    unknown_and_real_handles_get_identical_login_failures,
    a_stranger_locks_a_member_out_for_at_most_one_window,
);
