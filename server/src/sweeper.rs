//! The retention sweeper: deletes expired envelopes, events, challenges, refresh tokens and
//! invitations on a timer (docs/THREAT_MODEL.md, invariant 3); purges conversations idle past their
//! organisation's retention together with their survivor devices; deletes survivor devices
//! that have had no conversation for `orphan_device_ttl_secs` and member devices unseen for
//! `member_device_ttl_secs`. It reads time from the injectable clock, and [`sweep_once`]
//! lets tests run it after jumping forward.

use crate::app::AppState;
use crate::clock::hour;
use std::time::Duration;

pub async fn sweep_once(state: &AppState) -> Result<crate::store::Swept, crate::store::StoreError> {
    let now = state.now();
    let mut swept = state.store.sweep(now).await?;
    state.store.sweep_stream_tickets(now).await?;
    let mut gone: Vec<Vec<u8>> = Vec::new();
    for conversation in state.store.idle_conversations(now).await? {
        if let Some(device) = state.store.purge_conversation(&conversation).await? {
            swept.idle_conversations += 1;
            gone.push(device);
        }
    }
    // A device created in hour H is at most `ttl` old once H + ttl <= now.
    let orphans_by = hour(now - state.config.orphan_device_ttl_secs as i64);
    let orphans = state.store.sweep_orphan_devices(orphans_by).await?;
    swept.orphan_devices = orphans.len() as u64;
    gone.extend(orphans);
    let unseen_by = now - state.config.member_device_ttl_secs as i64;
    let culled = state.store.cull_member_devices(unseen_by).await?;
    swept.member_devices = culled.len() as u64;
    gone.extend(culled);
    if !gone.is_empty() {
        crate::service::devices::close_streams(state, &gone).await;
        state.store.after_purge().await;
    }
    if swept.envelopes > 0 {
        metrics::counter!("quietline_envelopes_expired_total").increment(swept.envelopes);
    }
    Ok(swept)
}

/// Run until the process stops.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(state.config.sweep_interval_secs));
    loop {
        tick.tick().await;
        match sweep_once(&state).await {
            Ok(s) => tracing::debug!(envelopes = s.envelopes, events = s.events, "swept"),
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
    }
}
