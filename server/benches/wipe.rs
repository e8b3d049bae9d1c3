//! Quick-exit benchmark (docs/BENCHMARKS.md: wipe p99 ≤ 10 ms with 1,000 envelopes pending for
//! the device). Run: `cargo bench -p quietline-server --bench wipe`.
//!
//! Each round registers a survivor device with a conversation and 1,000 pending envelopes
//! (1 KiB), then times (a) the wipe transaction alone, as the server runs it, and (b) the
//! whole `POST /v1/exit` service call, which holds every answer to a fixed floor. SQLite in
//! a temporary directory; PostgreSQL too when `QUIETLINE_BENCH_POSTGRES_URL` names a database.

use quietline_server::AppState;
use quietline_server::clock::SystemClock;
use quietline_server::config::{Config, Secret};
use quietline_server::store::NewDevice;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 25;
const PENDING: usize = 1000;

fn id() -> [u8; 16] {
    quietline_server::random::bytes()
}

async fn round(state: &AppState, org: &[u8]) -> anyhow::Result<(Duration, Duration)> {
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
    let ciphertext = vec![1u8; 1024];
    for _ in 0..PENDING {
        state
            .store
            .insert_message(
                &conv,
                &id(),
                &[(device.to_vec(), ciphertext.clone())],
                i64::MAX / 2,
                1_000_000,
                None,
            )
            .await?;
    }
    let started = Instant::now();
    quietline_server::service::exit::exit(state, Some(&exit_token), br#"{"mode":"wipe"}"#).await?;
    let whole = started.elapsed();
    anyhow::ensure!(
        state.store.count_envelopes(&device).await? == 0,
        "wipe left envelopes"
    );
    // The same wipe transaction alone, on a second device of the same shape.
    let device2 = id();
    let hash2 = quietline_server::random::token_hash(&quietline_server::random::token());
    state
        .store
        .create_device(
            &NewDevice {
                id: &device2,
                member_id: None,
                identity_key: &key,
                signing_key: &key,
                identity_signature: &sig,
                signed_prekey_id: 1,
                signed_prekey: &key,
                signed_prekey_sig: &sig,
                exit_token_hash: Some(&hash2),
                created_hour: 0,
            },
            &[],
        )
        .await?;
    let conv2 = id();
    state
        .store
        .create_conversation(&conv2, org, &device2, false, None, 0)
        .await?;
    for _ in 0..PENDING {
        state
            .store
            .insert_message(
                &conv2,
                &id(),
                &[(device2.to_vec(), ciphertext.clone())],
                i64::MAX / 2,
                1_000_000,
                None,
            )
            .await?;
    }
    let decoy = id();
    let scratch = quietline_server::random::bytes::<32>();
    let started = Instant::now();
    state
        .store
        .quick_exit(
            quietline_server::store::ExitTargets {
                hide: &decoy,
                wipe: &device2,
                scratch: &scratch,
            },
            &[],
            i64::MAX / 2,
            1000,
        )
        .await?;
    let tx = started.elapsed();
    anyhow::ensure!(
        state.store.count_envelopes(&device2).await? == 0,
        "wipe left envelopes"
    );
    Ok((tx, whole))
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
    let mut tx = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..ROUNDS {
        let (t, w) = round(&state, &org).await?;
        tx.push(t);
        whole.push(w);
    }
    tx.sort();
    whole.sort();
    println!(
        "{name}: wipe with {PENDING} pending, {ROUNDS} rounds: transaction p50 {:.2} ms p99 {:.2} ms max {:.2} ms; \
         whole exit call (6 ms floor) p50 {:.2} ms p99 {:.2} ms",
        pct(&tx, 0.5),
        pct(&tx, 0.99),
        pct(&tx, 1.0),
        pct(&whole, 0.5),
        pct(&whole, 0.99),
    );
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
