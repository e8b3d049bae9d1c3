//! Quick-exit latency per mode: every answer of `POST /v1/exit` should take the same time
//! (held to `ANSWER_FLOOR`), whatever the mode and whether the token exists. Timing lives
//! here, not in the test suite, which only checks that no answer leaves before the floor
//! (`exit::no_exit_answer_leaves_before_the_floor`).
//! Run: `cargo bench -p quietline-server --bench exit_modes`; SQLite in a temporary
//! directory, PostgreSQL too when `QUIETLINE_BENCH_POSTGRES_URL` names a database.

use quietline_server::AppState;
use quietline_server::clock::SystemClock;
use quietline_server::config::{Config, Secret};
use quietline_server::store::NewDevice;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 50;
const MODES: [&str; 4] = ["hide", "wipe", "duress", "unknown"];

fn id() -> [u8; 16] {
    quietline_server::random::bytes()
}

/// A survivor device with an open conversation and one pending envelope; its exit token.
async fn survivor(state: &AppState, org: &[u8]) -> anyhow::Result<String> {
    let device = id();
    let exit_token = quietline_server::random::token();
    let hash = quietline_server::random::token_hash(&exit_token);
    let key = [7u8; 32];
    let sig = [7u8; 64];
    state
        .store
        .create_device(
            &NewDevice {
                id: &device,
                member_id: None,
                identity_key: &key,
                signing_key: &key,
                identity_signature: &sig,
                signed_prekey_id: 1,
                signed_prekey: &key,
                signed_prekey_sig: &sig,
                exit_token_hash: Some(&hash),
                created_hour: 0,
            },
            &[],
        )
        .await?;
    let conv = id();
    state
        .store
        .create_conversation(&conv, org, &device, false, None, 0)
        .await?;
    state
        .store
        .insert_message(
            &conv,
            &id(),
            &[(device.to_vec(), vec![1u8; 1024])],
            i64::MAX / 2,
            1_000_000,
            None,
        )
        .await?;
    Ok(exit_token)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn bench(name: &str, config: Config) -> anyhow::Result<()> {
    let state = AppState::new(config, Arc::new(SystemClock)).await?;
    let org = id();
    state
        .store
        .create_org(
            &org,
            &format!("bench-{}", quietline_proto::b64::encode(&org)),
            "Bench",
            0,
        )
        .await?;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); MODES.len()];
    for _ in 0..ROUNDS {
        // Interleaved, so drift on a shared machine hits every mode alike.
        for (i, mode) in MODES.iter().enumerate() {
            let (token, body) = match *mode {
                "unknown" => (
                    quietline_server::random::token(),
                    r#"{"mode":"wipe"}"#.to_owned(),
                ),
                m => (
                    survivor(&state, &org).await?,
                    format!(r#"{{"mode":"{m}"}}"#),
                ),
            };
            let started = Instant::now();
            quietline_server::service::exit::exit(&state, Some(&token), body.as_bytes()).await?;
            times[i].push(started.elapsed());
        }
    }
    for (mode, t) in MODES.iter().zip(&mut times) {
        t.sort();
        println!(
            "{name}: exit {mode:>7}: p50 {:.2} ms p90 {:.2} ms max {:.2} ms over {ROUNDS} calls",
            pct(t, 0.5),
            pct(t, 0.9),
            pct(t, 1.0),
        );
    }
    state.store.close().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        bench("sqlite", config).await?;
        if let Ok(url) = std::env::var("QUIETLINE_BENCH_POSTGRES_URL") {
            let config = Config {
                database_url: Secret::new(url),
                ..Config::default()
            };
            bench("postgres", config).await?;
        }
        Ok(())
    })
}
