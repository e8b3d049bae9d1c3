//! Nothing acknowledged is lost (docs/THREAT_MODEL.md, invariant 5): envelopes answered 202 survive
//! `kill -9` of the server process and are delivered after it restarts.
//!
//! The server runs in a child process: this same test binary, re-executed to run only
//! [`child_server`], which serves until killed.

use quietline_client::Api;
use quietline_proto::wire::{Enroll, Login, OpenConversation, Role};
use quietline_server::AppState;
use quietline_server::clock::{Clock, SystemClock};
use quietline_server::config::Config;
use quietline_tests::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

const CHILD_FLAG: &str = "QUIETLINE_TEST_CHILD_SERVER";

/// Runs a server until killed, when started by [`spawn_server`]; otherwise does nothing.
#[test]
#[ignore = "started as a child process by the durability tests"]
fn child_server() {
    if std::env::var(CHILD_FLAG).is_err() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = Config::load(None, std::env::vars()).unwrap();
        quietline_server::serve::init_logging(&config.log_level);
        let state = AppState::new(config, Arc::new(SystemClock)).await.unwrap();
        // SIGTERM stops it gracefully (flushing its log); the durability test uses SIGKILL.
        let running =
            quietline_server::serve::start(state, quietline_server::serve::shutdown_signal())
                .await
                .unwrap();
        println!("CHILD-LISTENING {}", running.addr);
        let _ = running.task.await;
    });
}

fn spawn_server(env: &[(String, String)]) -> (Child, String) {
    let server = spawn_child_server(env);
    (server.child, server.base)
}

/// A server in a child process, with everything it writes to stdout (its log) collected.
pub struct ChildServer {
    pub child: Child,
    pub base: String,
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ChildServer {
    /// Stop the child gracefully (SIGTERM), wait for it to exit, and return every line it
    /// wrote, read until both pipes reached their end.
    pub fn stop_and_collect_log(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "the child server stopped cleanly: {exit:?}");
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }
}

pub fn spawn_child_server(env: &[(String, String)]) -> ChildServer {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "durability::child_server",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FLAG, "1")
        .env("QUIETLINE_LISTEN", "127.0.0.1:0")
        .env("QUIETLINE_ADMIN_LISTEN", "")
        .env("QUIETLINE_POW_BITS", "4")
        .env("QUIETLINE_LOG_LEVEL", "warn")
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let err_log = log.clone();
    let err_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            err_log.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("child printed its address").unwrap();
        if let Some((_, addr)) = line.split_once("CHILD-LISTENING ") {
            break addr.trim().to_owned();
        }
        log.lock().unwrap().push(line);
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    let out_log = log.clone();
    let out_reader = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            out_log.lock().unwrap().push(line);
        }
    });
    ChildServer {
        child,
        base: format!("http://{addr}"),
        log,
        readers: vec![err_reader, out_reader],
    }
}

async fn accepted_envelopes_survive_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![];
    let mut config = test_config();
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
    let (mut child, base) = spawn_server(&env);
    // Set up through a second handle on the same database.
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
    let api = Api::new(&base).unwrap();
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
    let reg = api
        .with_token(logged.tokens.access_token.as_str())
        .register_member_device(fake_keys(5))
        .await
        .unwrap();
    // Certified with an organisation key, as a supervisor would, so it is a recipient.
    let key = register_org_key(&admin.store, org).await;
    let now = SystemClock.now();
    certify_in_store(
        &admin.store,
        "hotline",
        &key,
        reg.device_id,
        now,
        now + 86_400,
    )
    .await;
    let adv_token = reg.tokens.access_token.clone();
    api.with_token(adv_token.as_str())
        .set_duty(true)
        .await
        .unwrap();
    let sur_reg = api.register_survivor(fake_keys(5)).await.unwrap();
    let sur = api.with_token(sur_reg.tokens.access_token.as_str());
    let conv = sur
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;

    let mut sent = Vec::new();
    for _ in 0..25 {
        let msg = one_envelope(reg.device_id);
        sur.send(conv, &msg).await.unwrap(); // 202: durable from here on
        sent.push((msg.message_id, msg.envelopes[0].ciphertext.clone()));
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().unwrap();
    admin.store.close().await;

    let (mut child, base) = spawn_server(&env);
    let adv = Api::new(&base).unwrap().with_token(adv_token.as_str());
    let mut received = Vec::new();
    loop {
        let inbox = adv.inbox().await.unwrap();
        if inbox.envelopes.is_empty() {
            break;
        }
        let ids: Vec<_> = inbox.envelopes.iter().map(|e| e.id).collect();
        received.extend(inbox.envelopes.into_iter().map(|e| (e.id, e.ciphertext)));
        adv.ack(&ids).await.unwrap();
    }
    assert_eq!(
        received, sent,
        "every accepted envelope is delivered after kill -9, in order, byte for byte"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

quietline_tests::on_both!(accepted_envelopes_survive_kill_9);
