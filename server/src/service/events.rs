//! Events to devices (workflow and safety notices), stored like envelopes and pushed live.

use crate::app::AppState;
use crate::error::Result;
use crate::store::NewEvent;
use quietline_proto::Id;
use quietline_proto::wire::EventKind;

pub fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::AdvocateAvailable => "advocate_available",
        EventKind::QueueChanged => "queue_changed",
        EventKind::RecipientsChanged => "recipients_changed",
        EventKind::TransferredToYou => "transferred_to_you",
        EventKind::ConversationClosed => "conversation_closed",
        EventKind::SurvivorLeft => "survivor_left",
        EventKind::SurvivorReturned => "survivor_returned",
        EventKind::EndedBySurvivor => "ended_by_survivor",
        EventKind::PossibleDuress => "possible_duress",
    }
}

pub fn parse_kind(name: &str) -> Option<EventKind> {
    use EventKind::*;
    [
        AdvocateAvailable,
        QueueChanged,
        RecipientsChanged,
        TransferredToYou,
        ConversationClosed,
        SurvivorLeft,
        SurvivorReturned,
        EndedBySurvivor,
        PossibleDuress,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

/// Store `kind` for every device in `to` and wake their streams. A device holding
/// `max_events_per_device` events gets no more until it fetches some; a `queue_changed`
/// already pending is not stored twice.
pub async fn emit(
    state: &AppState,
    to: &[Id],
    kind: EventKind,
    conversation: Option<Id>,
) -> Result<()> {
    let events: Vec<NewEvent> = to
        .iter()
        .map(|d| NewEvent {
            recipient: d.0.to_vec(),
            id: crate::random::id().0.to_vec(),
            kind: kind_name(kind),
            conversation_id: conversation.map(|c| c.0.to_vec()),
            coalesce: kind == EventKind::QueueChanged,
        })
        .collect();
    let expires = crate::clock::expiry(state.now(), state.config.event_ttl_secs);
    let stored = state
        .store
        .insert_events(
            &events,
            expires,
            i64::from(state.config.max_events_per_device),
        )
        .await?;
    if stored < events.len() as u64 {
        metrics::counter!("quietline_events_not_stored_total")
            .increment(events.len() as u64 - stored);
    }
    wake(state, to).await;
    Ok(())
}

/// Something was stored for `devices`: wake their live streams, on this replica and
/// (PostgreSQL) on the others, and send a wake signal to those with none here when their
/// safe hours allow (in the background; see [`crate::service::push`]).
pub async fn wake(state: &AppState, devices: &[Id]) {
    for d in devices {
        state.hub.wake(d);
    }
    crate::service::push::stored_for(state, devices);
    let payloads: Vec<String> = devices.iter().map(|d| format!("w:{d}")).collect();
    if let Err(e) = state.store.notify_replicas(&payloads).await {
        tracing::warn!(error = %e, "cannot notify other replicas");
    }
}

/// Close the live streams of `devices` everywhere.
pub async fn close_streams(state: &AppState, devices: &[Id]) {
    for d in devices {
        state.hub.close(d);
    }
    let payloads: Vec<String> = devices.iter().map(|d| format!("c:{d}")).collect();
    if let Err(e) = state.store.notify_replicas(&payloads).await {
        tracing::warn!(error = %e, "cannot notify other replicas");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind, listed through an exhaustive match so a new kind cannot be left out.
    fn every_kind() -> Vec<EventKind> {
        use EventKind::*;
        let all = vec![
            AdvocateAvailable,
            QueueChanged,
            RecipientsChanged,
            TransferredToYou,
            ConversationClosed,
            SurvivorLeft,
            SurvivorReturned,
            EndedBySurvivor,
            PossibleDuress,
        ];
        for k in &all {
            match k {
                AdvocateAvailable | QueueChanged | RecipientsChanged | TransferredToYou
                | ConversationClosed | SurvivorLeft | SurvivorReturned | EndedBySurvivor
                | PossibleDuress => {}
            }
        }
        all
    }

    #[test]
    fn kind_names_round_trip() {
        let all = every_kind();
        let mut names = std::collections::HashSet::new();
        for k in &all {
            let name = kind_name(*k);
            assert_eq!(parse_kind(name), Some(*k), "{name}");
            // The stored name is the wire name clients see.
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(name));
            assert!(names.insert(name), "{name} is used twice");
        }
        assert_eq!(names.len(), 9);
        assert_eq!(parse_kind("nope"), None);
        assert_eq!(parse_kind(""), None);
        assert_eq!(parse_kind("Possible_Duress"), None);
    }
}
