//! The retention sweeper: deletes expired envelopes, events, challenges, refresh tokens and
//! invitations on a timer (DESIGN.md §3, invariant 3). It reads time from the injectable
//! clock, and [`sweep_once`] lets tests run it after jumping forward.

use crate::app::AppState;
use std::time::Duration;

pub async fn sweep_once(state: &AppState) -> Result<crate::store::Swept, crate::store::StoreError> {
    let mut swept = state.store.sweep(state.now()).await?;
    state.store.sweep_stream_tickets(state.now()).await?;
    for conversation in state.store.idle_conversations(state.now()).await? {
        if state.store.purge_conversation(&conversation).await? {
            swept.idle_conversations += 1;
        }
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
