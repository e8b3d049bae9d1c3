//! Time, injectable so tests can jump forward (DESIGN.md §6, retention sweeper).
//!
//! All server logic reads time through [`Clock`]; stored non-expiry times go through
//! [`hour`] so no precise survivor timestamp is kept (DESIGN.md §3, invariant 2).

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

#[cfg(test)]
mod tests {
    use super::*;

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
