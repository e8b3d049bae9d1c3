//! Nothing identifying is kept (docs/THREAT_MODEL.md, invariant 2): a full conversation, a hide and
//! return, a wipe and a duress exit, sent with a distinctive user agent, forwarding headers
//! and client address, leave none of them, no token and no plaintext in any table, and none
//! of them, no key and no device or conversation id in any log line, at the most verbose
//! level.

use crate::durability::spawn_child_server;
use quietline_client::{Api, ExitMode, SecureClient};
use quietline_proto::wire::{Enroll, Login, OpenConversation, Role};
use quietline_server::AppState;
use quietline_server::clock::{Clock, SystemClock};
use quietline_tests::*;
use std::sync::Arc;

const UA: &str = "DistinctiveAgent/7.31 (Pixel 9; Android 15)";
const CLIENT_IP: &str = "127.0.0.2";
const XFF: &str = "203.0.113.77";
const FORWARDED_FOR: &str = "198.51.100.23";
const SECRET_TEXT: &str = "my address is 41 Elm Street, flat 3";
const REPLY_TEXT: &str = "we can meet you at the library at noon";

fn tracked_client(base: &str) -> Api {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", XFF.parse().unwrap());
    headers.insert("forwarded", format!("for={FORWARDED_FOR}").parse().unwrap());
    headers.insert("x-real-ip", XFF.parse().unwrap());
    let http = reqwest::Client::builder()
        .user_agent(UA)
        .default_headers(headers)
        .local_address(CLIENT_IP.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    Api::with_client(base, http).unwrap()
}

async fn nothing_identifying_is_stored_or_logged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    let mut env = vec![("QUIETLINE_LOG_LEVEL".to_owned(), "trace".to_owned())];
    // The data directory: the SQLite database, or (PostgreSQL) only the token key file,
    // shared by the child server and the handle the test uses.
    env.push((
        "QUIETLINE_DATA_DIR".to_owned(),
        dir.path().display().to_string(),
    ));
    config.data_dir = dir.path().to_owned();
    if backend == Backend::Postgres {
        let url = fresh_postgres_database(&postgres_url().unwrap()).await;
        env.push(("QUIETLINE_DATABASE_URL".to_owned(), url.clone()));
        config.database_url = quietline_server::config::Secret::new(url);
    }
    let server = spawn_child_server(&env);
    let admin = AppState::new(config, Arc::new(SystemClock)).await.unwrap();
    admin
        .store
        .create_org(&random_id().0, "hotline", "Hotline", 0)
        .await
        .unwrap();
    let org = quietline_proto::Id::from_slice(
        &admin
            .store
            .org_by_code("hotline")
            .await
            .unwrap()
            .unwrap()
            .id,
    )
    .unwrap();
    let invited =
        quietline_server::service::members::invite_in_org(&admin, org, "ana", Role::Advocate)
            .await
            .unwrap();

    let api = tracked_client(&server.base);
    let mut secrets: Vec<String> = vec![invited.token.clone()];
    let enrolled = api
        .enroll(&Enroll {
            token: invited.token,
            password: "a long enough password".into(),
        })
        .await
        .unwrap();
    let totp = totp_rs::TOTP::from_url_unchecked(&enrolled.totp_uri).unwrap();
    let logged = api
        .login(&Login {
            org: "hotline".into(),
            handle: "ana".into(),
            password: "a long enough password".into(),
            totp: totp.generate(SystemClock.now() as u64),
            device_id: None,
        })
        .await
        .unwrap();
    secrets.push(logged.tokens.access_token.clone());
    secrets.push(logged.tokens.refresh_token.clone());
    let member_api = api.with_token(logged.tokens.access_token.as_str());
    let mut advocate = SecureClient::register_member_device(&member_api)
        .await
        .unwrap();
    // The organisation key, registered and used to certify the advocate's device as the
    // supervisors would; the survivors' clients pin it.
    let org_key = register_org_key(&admin.store, org).await;
    let now = SystemClock.now();
    certify_in_store(
        &admin.store,
        "hotline",
        &org_key,
        advocate.device_id(),
        now,
        now + 86_400,
    )
    .await;
    advocate.pin_org_key("hotline", &org_key.public()).unwrap();
    assert!(advocate.join_org("hotline").await.unwrap());
    advocate.api().await.unwrap().set_duty(true).await.unwrap();

    // A conversation, both ways.
    let mut survivor = SecureClient::register_survivor(&api).await.unwrap();
    survivor.pin_org_key("hotline", &org_key.public()).unwrap();
    let mut ids = vec![survivor.device_id(), advocate.device_id()];
    let mut keys = vec![
        *survivor.identity().dh_key(),
        *survivor.identity().signing_key(),
    ];
    keys.push(*advocate.identity().dh_key());
    let opened = survivor
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    let conv = opened.conversation.id;
    ids.push(conv);
    survivor.send_text(conv, SECRET_TEXT).await.unwrap();
    assert_eq!(
        texts(&advocate.poll().await.unwrap()),
        vec![SECRET_TEXT.to_owned()]
    );
    advocate.api().await.unwrap().claim(conv).await.unwrap();
    advocate.send_text(conv, REPLY_TEXT).await.unwrap();
    assert_eq!(
        texts(&survivor.poll().await.unwrap()),
        vec![REPLY_TEXT.to_owned()]
    );
    secrets.push(
        survivor
            .api()
            .await
            .unwrap()
            .token()
            .unwrap()
            .as_str()
            .to_owned(),
    );
    secrets.push(
        advocate
            .api()
            .await
            .unwrap()
            .token()
            .unwrap()
            .as_str()
            .to_owned(),
    );
    // A browser opens its stream with a ticket in the URL; neither the ticket nor its
    // refused second use may reach a log line.
    let ticket = advocate
        .api()
        .await
        .unwrap()
        .stream_ticket()
        .await
        .unwrap()
        .ticket;
    drop(
        quietline_client::Stream::connect_with_ticket(&server.base, &ticket)
            .await
            .unwrap(),
    );
    assert!(
        quietline_client::Stream::connect_with_ticket(&server.base, &ticket)
            .await
            .is_err()
    );
    secrets.push(ticket);
    let exit_token = survivor.exit_token().unwrap().as_str().to_owned();
    secrets.push(exit_token.clone());

    // Hide, come back, then wipe.
    survivor.quick_exit(ExitMode::Hide).await.unwrap();
    survivor.come_back().await.unwrap();
    secrets.push(survivor.exit_token().unwrap().as_str().to_owned());
    secrets.push(
        survivor
            .api()
            .await
            .unwrap()
            .token()
            .unwrap()
            .as_str()
            .to_owned(),
    );
    survivor.quick_exit(ExitMode::Wipe).await.unwrap();

    // A second survivor exits under duress.
    let mut second = SecureClient::register_survivor(&api).await.unwrap();
    second.pin_org_key("hotline", &org_key.public()).unwrap();
    ids.push(second.device_id());
    let conv2 = second
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    ids.push(conv2);
    second.send_text(conv2, SECRET_TEXT).await.unwrap();
    secrets.push(second.exit_token().unwrap().as_str().to_owned());
    second.quick_exit(ExitMode::Duress).await.unwrap();
    let _ = advocate.poll().await.unwrap();

    // Every table.
    let dump = admin.store.dump_all_tables().await.unwrap();
    let mut db_needles: Vec<String> = vec![
        UA.into(),
        CLIENT_IP.into(),
        XFF.into(),
        FORWARDED_FOR.into(),
        "DistinctiveAgent".into(),
    ];
    for t in [SECRET_TEXT, REPLY_TEXT] {
        db_needles.push(t.into());
        db_needles.push(hex(t.as_bytes()));
    }
    db_needles.extend(secrets.iter().cloned());
    for (table, row) in &dump {
        for needle in &db_needles {
            assert!(
                !row.contains(needle.as_str()),
                "table {table} holds something identifying"
            );
        }
    }
    // Every log line, at trace level.
    // Stopped gracefully and read to the end of its output, so no line is missed.
    let log = tokio::task::spawn_blocking(move || server.stop_and_collect_log())
        .await
        .unwrap()
        .join("\n");
    assert!(
        log.contains("\"route\""),
        "the child logged requests: {}",
        &log[..log.len().min(500)]
    );
    let mut log_needles = db_needles.clone();
    for id in &ids {
        log_needles.push(id.to_string());
        log_needles.push(hex(&id.0));
    }
    for k in &keys {
        log_needles.push(quietline_proto::b64::encode(k));
        log_needles.push(hex(k));
    }
    for needle in &log_needles {
        let hit = log.lines().find(|l| l.contains(needle.as_str()));
        assert!(
            hit.is_none(),
            "a log line contains something identifying: {}",
            hit.unwrap_or_default().replace(needle.as_str(), "<HERE>")
        );
    }
    admin.store.close().await;
}

quietline_tests::on_both!(nothing_identifying_is_stored_or_logged);
