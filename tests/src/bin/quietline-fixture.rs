//! A relay for tools outside the suite (tests/schemathesis/run.sh): boots a real server with
//! the test kit (SQLite in a temporary directory, or PostgreSQL with
//! `QUIETLINE_TEST_POSTGRES_URL`), sets up an organisation with a supervisor, an advocate
//! and a survivor device in a claimed conversation with a message pending, prints one JSON
//! line with the base URL, the ids and an access token per role, and serves until its
//! standard input closes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use quietline_proto::wire::{OpenConversation, Role};
use quietline_tests::*;
use std::io::Read;

#[tokio::main]
async fn main() {
    let backend = if postgres_url().is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let supervisor = s.member("hotline", "sam", Role::Supervisor).await;
    let advocate = s.member("hotline", "ana", Role::Advocate).await;
    advocate.api.set_duty(true).await.unwrap();
    let survivor = s.survivor().await;
    let conv = survivor
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    advocate.api.claim(conv).await.unwrap();
    survivor
        .api
        .send(conv, &one_envelope(advocate.device_id))
        .await
        .unwrap();
    let token = |api: &quietline_client::Api| api.token().unwrap().as_str().to_owned();
    let out = serde_json::json!({
        "base": format!("{}{}", s.base, s.state.config.route_prefix),
        "backend": format!("{backend:?}"),
        "conversation": conv.to_string(),
        "survivor_device": survivor.device_id.to_string(),
        "advocate_device": advocate.device_id.to_string(),
        "advocate_member": advocate.member_id.to_string(),
        "tokens": {
            "survivor": token(&survivor.api),
            "advocate": token(&advocate.api),
            "supervisor": token(&supervisor.api),
        },
    });
    println!("{out}");
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .unwrap();
    s.stop().await;
}
