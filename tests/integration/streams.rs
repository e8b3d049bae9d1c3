//! Live streams end when the right to hold them ends: revocation from the admin command (a
//! separate state with its own hub, like another process), refresh-token reuse, logout and
//! access-token expiry; a device holds a bounded number of streams; a client that floods
//! frames is disconnected.

use clap::Parser;
use quietline_client::Stream;
use quietline_proto::wire::{ClientFrame, ServerFrame};
use quietline_proto::{ErrorCode, Id};
use quietline_server::cli::{Cli, run_to};
use quietline_tests::*;
use std::time::Duration;

/// Wait until the relay ends `stream` (other frames are skipped). Fails after 20 s.
async fn closed(mut stream: Stream) {
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the relay did not close the stream");
}

/// The stream is still open: a frame sent now is answered.
async fn answers(stream: &mut Stream) {
    stream.ack(&[random_id()]).await.unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an answer")
            .unwrap()
            .expect("still open");
        if matches!(frame, ServerFrame::Acked(_)) {
            return;
        }
    }
}

/// A server whose streams re-check their caller every second.
async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |c| c.stream_recheck_secs = 1).await
}

async fn revoking_a_member_from_the_admin_command_closes_its_live_stream(backend: Backend) {
    let s = server(backend).await;
    s.create_org("hotline").await;
    let m = s.member("hotline", "ana", Role::Advocate).await;
    let mut stream = m.api.stream().await.unwrap();
    answers(&mut stream).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    let toml = match (&s.data_dir, &s.database_url) {
        (Some(d), _) => format!("data_dir = {:?}\n", d.path().display().to_string()),
        (_, Some(url)) => format!("database_url = {url:?}\n"),
        _ => unreachable!(),
    };
    std::fs::write(&file, toml).unwrap();
    let cli = Cli::try_parse_from([
        "quietline",
        "--config",
        file.to_str().unwrap(),
        "admin",
        "member",
        "revoke",
        "--org",
        "hotline",
        "--handle",
        "ana",
    ])
    .unwrap();
    let mut out = Vec::new();
    run_to(cli, &mut out).await.unwrap();
    closed(stream).await;
    let err = m.api.stream().await.unwrap_err();
    assert!(err.is(ErrorCode::Unauthorized), "{err}");
    s.stop().await;
}

async fn refresh_token_reuse_closes_the_live_stream(backend: Backend) {
    let s = server(backend).await;
    let sur = s.survivor().await;
    let mut stream = sur.api.stream().await.unwrap();
    answers(&mut stream).await;
    s.api().refresh(&sur.refresh_token).await.unwrap();
    assert!(s.api().refresh(&sur.refresh_token).await.is_err(), "reuse");
    closed(stream).await;
    // The same for a member's device.
    s.create_org("hotline").await;
    let m = s.member("hotline", "ana", Role::Advocate).await;
    let mut stream = m.api.stream().await.unwrap();
    answers(&mut stream).await;
    s.api().refresh(&m.refresh_token).await.unwrap();
    assert!(s.api().refresh(&m.refresh_token).await.is_err(), "reuse");
    closed(stream).await;
    s.stop().await;
}

async fn logout_closes_the_live_stream(backend: Backend) {
    let s = server(backend).await;
    s.create_org("hotline").await;
    let m = s.member("hotline", "ana", Role::Advocate).await;
    let mut stream = m.api.stream().await.unwrap();
    answers(&mut stream).await;
    m.api.logout(&m.refresh_token).await.unwrap();
    closed(stream).await;
    assert!(m.api.inbox().await.unwrap_err().is(ErrorCode::Unauthorized));
    s.stop().await;
}

async fn the_live_stream_ends_when_its_access_token_expires(backend: Backend) {
    let s = server(backend).await;
    let sur = s.survivor().await;
    let mut stream = sur.api.stream().await.unwrap();
    answers(&mut stream).await;
    s.clock
        .advance(s.state.config.access_token_ttl_secs as i64 - 60);
    answers(&mut stream).await;
    s.clock.advance(61);
    closed(stream).await;
    s.stop().await;
}

async fn a_device_holds_at_most_its_allowed_number_of_streams(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.streams_per_device = 2).await;
    let sur = s.survivor().await;
    let mut first = sur.api.stream().await.unwrap();
    let _second = sur.api.stream().await.unwrap();
    let err = sur.api.stream().await.unwrap_err();
    assert!(err.is(ErrorCode::RateLimited), "{err}");
    assert_eq!(err.status(), Some(429));
    // Another device is not affected, and closing one stream frees its place.
    let other = s.survivor().await;
    other.api.stream().await.unwrap();
    answers(&mut first).await;
    first.close().await.unwrap();
    let mut third = None;
    for _ in 0..100 {
        match sur.api.stream().await {
            Ok(st) => {
                third = Some(st);
                break;
            }
            Err(e) => {
                assert!(e.is(ErrorCode::RateLimited));
                // The relay notices the close asynchronously.
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(third.is_some(), "a closed stream frees its place");
    s.stop().await;
}

async fn a_client_flooding_stream_frames_is_disconnected(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.stream_frames_per_second = 1;
        c.stream_frames_burst = 5;
    })
    .await;
    let sur = s.survivor().await;
    let mut stream = sur.api.stream().await.unwrap();
    for _ in 0..20 {
        if stream
            .send(&ClientFrame::Ack {
                ids: vec![Id(rand_bytes())],
            })
            .await
            .is_err()
        {
            break;
        }
    }
    let mut limited = false;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Ok(Some(ServerFrame::Error(e))) if e.code == ErrorCode::RateLimited => {
                    limited = true;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the relay closed the stream");
    assert!(limited, "with a rate_limited error frame first");
    // The device itself is not punished: a new stream works.
    let mut again = sur.api.stream().await.unwrap();
    answers(&mut again).await;
    s.stop().await;
}

use quietline_proto::wire::Role;

quietline_tests::on_both!(
    revoking_a_member_from_the_admin_command_closes_its_live_stream,
    refresh_token_reuse_closes_the_live_stream,
    logout_closes_the_live_stream,
    the_live_stream_ends_when_its_access_token_expires,
    a_device_holds_at_most_its_allowed_number_of_streams,
    a_client_flooding_stream_frames_is_disconnected,
);
