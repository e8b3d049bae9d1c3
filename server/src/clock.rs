//! Time, injectable so tests can jump forward (ARCHITECTURE.md, retention sweeper).
//!
//! All server logic reads time through [`Clock`]; stored non-expiry times go through
//! [`hour`] so no precise survivor timestamp is kept (docs/THREAT_MODEL.md, invariant 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + 'static {
    /// Unix time in seconds.
    fn now(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn starting_now() -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(SystemClock.now())))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn set(&self, secs: i64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Round a time down to the hour: the precision of every stored non-expiry timestamp.
pub fn hour(t: i64) -> i64 {
    t - t.rem_euclid(3600)
}

/// The stored form of an expiry `ttl_secs` after `now`: rounded UP to the next hour, so a
/// stored expiry never gives back the exact time a message was sent, a token refreshed or a
/// wake signal went out; things live up to an hour longer than their lifetime, never less.
pub fn expiry(now: i64, ttl_secs: u64) -> i64 {
    let t = now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX));
    match t.rem_euclid(3600) {
        0 => t,
        r => t.saturating_add(3600 - r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_round_up_to_the_hour() {
        assert_eq!(expiry(7200, 0), 7200);
        assert_eq!(expiry(7200, 1), 10_800);
        assert_eq!(expiry(7199, 1), 7200);
        assert_eq!(expiry(1_700_000_123, 300) % 3600, 0);
        assert!(expiry(1_700_000_123, 300) >= 1_700_000_423);
        assert!(expiry(1_700_000_123, 300) < 1_700_000_423 + 3600);
        assert_eq!(expiry(i64::MAX - 5, u64::MAX), i64::MAX);
    }

    #[test]
    fn hour_rounds_down() {
        assert_eq!(hour(7200), 7200);
        assert_eq!(hour(7199), 3600);
        assert_eq!(hour(1_700_000_123) % 3600, 0);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::starting_now();
        let t = c.now();
        c.advance(10);
        assert_eq!(c.now(), t + 10);
    }
}
