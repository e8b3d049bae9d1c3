//! Live delivery: wakes the streams of devices that have something new.
//!
//! The hub carries no data, only "look again" signals keyed by device id; the stream then
//! reads the database, so a wake-up that is lost or doubled cannot lose or duplicate an
//! envelope (docs/THREAT_MODEL.md, invariant 5). With PostgreSQL, wake-ups also travel to the other
//! replicas through LISTEN/NOTIFY ([`listen_postgres`]). A device's streams can also be told
//! to close (quick exit, revocation).

use quietline_proto::Id;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// One live stream's mailbox.
#[derive(Debug, Default)]
pub struct Listener {
    notify: Notify,
    closed: AtomicBool,
}

impl Listener {
    /// Wait for the next wake-up (returns at once if one came since the last wait).
    pub async fn woken(&self) {
        self.notify.notified().await
    }
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Default)]
pub struct Hub {
    listeners: Mutex<HashMap<Id, Vec<Weak<Listener>>>>,
}

pub const PG_CHANNEL: &str = "quietline_wake";

impl Hub {
    /// Register a stream for `device`; dropping the returned `Arc` unregisters it.
    pub fn subscribe(&self, device: Id) -> Arc<Listener> {
        let listener = Arc::new(Listener::default());
        if let Ok(mut map) = self.listeners.lock() {
            let list = map.entry(device).or_default();
            list.retain(|w| w.strong_count() > 0);
            list.push(Arc::downgrade(&listener));
        }
        listener
    }

    /// Register a stream for `device` unless it already has `max` live streams here.
    pub fn try_subscribe(&self, device: Id, max: usize) -> Option<Arc<Listener>> {
        let mut map = self.listeners.lock().ok()?;
        let list = map.entry(device).or_default();
        list.retain(|w| w.strong_count() > 0);
        if list.len() >= max {
            return None;
        }
        let listener = Arc::new(Listener::default());
        list.push(Arc::downgrade(&listener));
        Some(listener)
    }

    fn each(&self, device: &Id, f: impl Fn(&Listener)) {
        if let Ok(mut map) = self.listeners.lock()
            && let Some(list) = map.get_mut(device)
        {
            list.retain(|w| w.strong_count() > 0);
            for l in list.iter().filter_map(Weak::upgrade) {
                f(&l);
            }
            if list.is_empty() {
                map.remove(device);
            }
        }
    }

    /// Wake every local stream of `device`.
    pub fn wake(&self, device: &Id) {
        self.each(device, |l| l.notify.notify_one());
    }

    /// Tell every local stream of `device` to close.
    pub fn close(&self, device: &Id) {
        self.each(device, |l| {
            l.closed.store(true, Ordering::SeqCst);
            l.notify.notify_one();
        });
    }

    /// Whether `device` has a live stream on this replica (then it needs no wake signal).
    pub fn has_listeners(&self, device: &Id) -> bool {
        self.listeners
            .lock()
            .map(|m| {
                m.get(device)
                    .is_some_and(|v| v.iter().any(|w| w.strong_count() > 0))
            })
            .unwrap_or(false)
    }

    /// Number of live streams (for metrics).
    pub fn live(&self) -> usize {
        self.listeners
            .lock()
            .map(|m| {
                m.values()
                    .map(|v| v.iter().filter(|w| w.strong_count() > 0).count())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Forward PostgreSQL notifications on [`PG_CHANNEL`] to the local hub. The payload is
/// `w:<id>` (wake) or `c:<id>` (close). Reconnects on error.
pub async fn listen_postgres(pool: sqlx::PgPool, hub: Arc<Hub>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for cross-replica wake-ups; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(PG_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(n) => apply(&hub, n.payload()),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the notification connection; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Act on one notification payload, `w:<id>` or `c:<id>`. Anything else (a payload from
/// another program on the channel, non-ASCII text, a bad id) is ignored, never a panic.
pub fn apply(hub: &Hub, payload: &str) {
    let (Some(kind), Some(id)) = (payload.get(..2), payload.get(2..)) else {
        return;
    };
    let Ok(id) = id.parse::<Id>() else {
        return;
    };
    match kind {
        "w:" => hub.wake(&id),
        "c:" => hub.close(&id),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_notifications_are_ignored_without_panicking() {
        let hub = Hub::default();
        let id = Id([3; 16]);
        let l = hub.subscribe(id);
        for payload in [
            "",
            "w",
            "é",
            "éé",
            "wé",
            "w:é",
            "ü:x",
            "c:not-an-id",
            "x:{id}",
        ] {
            apply(&hub, payload);
        }
        assert!(!l.is_closed());
        apply(&hub, &format!("c:{id}"));
        assert!(l.is_closed());
    }

    #[tokio::test]
    async fn wake_reaches_only_that_devices_streams() {
        let hub = Hub::default();
        let a = hub.subscribe(Id([1; 16]));
        let b = hub.subscribe(Id([2; 16]));
        hub.wake(&Id([1; 16]));
        tokio::time::timeout(std::time::Duration::from_secs(1), a.woken())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), b.woken())
                .await
                .is_err()
        );
        hub.close(&Id([2; 16]));
        assert!(b.is_closed());
        let second = hub.try_subscribe(Id([1; 16]), 2).unwrap();
        assert!(hub.try_subscribe(Id([1; 16]), 2).is_none(), "capped");
        drop(second);
        assert!(hub.has_listeners(&Id([1; 16])));
        drop(a);
        drop(b);
        assert_eq!(hub.live(), 0);
        assert!(!hub.has_listeners(&Id([1; 16])));
    }
}
