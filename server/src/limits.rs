//! In-memory abuse limits (docs/THREAT_MODEL.md, flooding): adaptive proof-of-work difficulty,
//! per-caller rate limits, global limits on the anonymous routes, the argon2 slots and the
//! quick-exit queue.
//!
//! Nothing here is stored or logged, and nothing is keyed by IP address: the per-caller rate
//! limit is keyed by the authenticated subject (device or member id); the anonymous routes
//! share one bucket per route for everyone, keyed by nothing at all; the proof-of-work
//! difficulty rises with how many challenges this replica handed out in the last minute.

use lru::LruCache;
use quietline_proto::Id;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Challenges handed out in the current one-minute window.
#[derive(Debug, Default)]
struct Window {
    start: i64,
    count: u64,
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    updated: f64,
}

impl Bucket {
    pub fn full(burst: f64, now: f64) -> Bucket {
        Bucket {
            tokens: burst,
            updated: now,
        }
    }

    /// Refill for the time since the last call, then take one token if there is one.
    pub fn take(&mut self, now: f64, rate: f64, burst: f64) -> bool {
        self.tokens = (self.tokens + (now - self.updated).max(0.0) * rate).min(burst);
        self.updated = self.updated.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The anonymous routes, each with one global bucket shared by every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnonRoute {
    Challenge,
    Register,
    Enroll,
    Login,
    ExitReturn,
}

impl AnonRoute {
    pub fn label(self) -> &'static str {
        match self {
            AnonRoute::Challenge => "challenge",
            AnonRoute::Register => "register",
            AnonRoute::Enroll => "enroll",
            AnonRoute::Login => "login",
            AnonRoute::ExitReturn => "exit_return",
        }
    }
}

/// A bounded pool of slots with a bounded number of waiters, counting how many slots were
/// ever in use at once (observable in tests and metrics).
#[derive(Debug)]
pub struct Slots {
    permits: std::sync::Arc<Semaphore>,
    capacity: usize,
    max_waiting: usize,
    waiting: AtomicUsize,
    busy: std::sync::Arc<AtomicUsize>,
    peak: std::sync::Arc<AtomicUsize>,
}

/// One slot; given back on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    busy: std::sync::Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Slots {
    pub fn new(capacity: usize, max_waiting: usize) -> Slots {
        let capacity = capacity.max(1);
        Slots {
            permits: std::sync::Arc::new(Semaphore::new(capacity)),
            capacity,
            max_waiting,
            waiting: AtomicUsize::new(0),
            busy: Default::default(),
            peak: Default::default(),
        }
    }

    /// Wait for a slot; `None` at once when `max_waiting` callers are already waiting.
    pub async fn acquire(&self) -> Option<Slot> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return None;
                }
                let p = self.permits.clone().acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                p.ok()?
            }
        };
        let now_busy = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now_busy, Ordering::SeqCst);
        Some(Slot {
            _permit: permit,
            busy: self.busy.clone(),
        })
    }

    /// Most slots ever in use at the same time.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[derive(Debug)]
pub struct Limits {
    challenges: Mutex<Window>,
    /// Least recently seen callers are forgotten first when full: one new caller costs one
    /// other caller (the longest quiet) a fresh bucket, never everyone.
    buckets: Mutex<LruCache<Id, Bucket>>,
    anonymous: Mutex<HashMap<AnonRoute, Bucket>>,
    /// Argon2 hashes and verifications (each holds about 19 MiB while it runs).
    pub argon2: Slots,
    /// Quick exits doing their database work.
    pub exit: Slots,
}

/// Most callers tracked at once.
const MAX_TRACKED: usize = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED)
    }
}

impl Limits {
    pub fn new(c: &crate::config::Config) -> Limits {
        Self::with_config_and_capacity(c, MAX_TRACKED)
    }

    /// Limits tracking at most `callers` rate-limit buckets.
    pub fn with_capacity(callers: usize) -> Self {
        Self::with_config_and_capacity(&crate::config::Config::default(), callers)
    }

    fn with_config_and_capacity(c: &crate::config::Config, callers: usize) -> Limits {
        Limits {
            challenges: Default::default(),
            buckets: Mutex::new(LruCache::new(
                NonZeroUsize::new(callers).unwrap_or(NonZeroUsize::MIN),
            )),
            anonymous: Default::default(),
            argon2: Slots::new(c.argon2_concurrency as usize, c.argon2_queue as usize),
            exit: Slots::new(c.exit_concurrency as usize, c.exit_queue as usize),
        }
    }

    /// The global bucket of an anonymous route: `rate` per second on average, bursts of
    /// `burst`, for all callers together. False when the route is over its limit.
    pub fn allow_anonymous(&self, route: AnonRoute, now: f64, rate: f64, burst: f64) -> bool {
        let Ok(mut map) = self.anonymous.lock() else {
            return false;
        };
        map.entry(route)
            .or_insert_with(|| Bucket::full(burst, now))
            .take(now, rate, burst)
    }

    /// Difficulty for the next challenge: `base` bits, plus one bit for every doubling of the
    /// issue rate above `per_minute`, at most `max_extra` more. Counts this challenge.
    pub fn next_pow_bits(&self, now: i64, base: u8, per_minute: u32, max_extra: u8) -> u8 {
        let Ok(mut w) = self.challenges.lock() else {
            return base;
        };
        if now - w.start >= 60 {
            w.start = now;
            w.count = 0;
        }
        w.count += 1;
        let per_minute = u64::from(per_minute.max(1));
        let mut extra = 0u8;
        let mut threshold = per_minute;
        while w.count > threshold && extra < max_extra {
            extra += 1;
            threshold = threshold.saturating_mul(2);
        }
        base.saturating_add(extra)
            .min(quietline_proto::pow::MAX_BITS)
    }

    /// Token bucket per caller: `rate` requests per second on average, bursts of `burst`.
    /// `now` is in seconds (fractional). Returns false when the caller must wait.
    pub fn allow(&self, caller: Id, now: f64, rate: f64, burst: f64) -> bool {
        let Ok(mut map) = self.buckets.lock() else {
            return true;
        };
        map.get_or_insert_mut(caller, || Bucket::full(burst, now))
            .take(now, rate, burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_rises_with_the_rate_and_is_capped() {
        let l = Limits::default();
        let bits: Vec<u8> = (0..100).map(|_| l.next_pow_bits(1000, 10, 10, 3)).collect();
        assert_eq!(bits[0], 10);
        assert_eq!(bits[9], 10);
        assert_eq!(bits[10], 11);
        assert_eq!(bits[20], 12);
        assert_eq!(bits[40], 13);
        assert_eq!(bits[99], 13, "capped");
        assert_eq!(
            l.next_pow_bits(1060, 10, 10, 3),
            10,
            "a new minute starts afresh"
        );
    }

    #[tokio::test]
    async fn slots_cap_concurrency_and_refuse_beyond_the_queue() {
        let slots = std::sync::Arc::new(Slots::new(2, 1));
        let a = slots.acquire().await.unwrap();
        let b = slots.acquire().await.unwrap();
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire().await.is_some() })
        };
        // Let the waiter queue up, then a fourth caller finds the queue full.
        while slots.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(slots.acquire().await.is_none(), "queue full");
        drop(a);
        assert!(
            waiter.await.unwrap(),
            "the queued caller gets the freed slot"
        );
        drop(b);
        assert_eq!(slots.peak(), 2);
    }

    #[test]
    fn anonymous_buckets_are_per_route() {
        let l = Limits::default();
        let n = (0..10)
            .filter(|_| l.allow_anonymous(AnonRoute::Login, 50.0, 1.0, 3.0))
            .count();
        assert_eq!(n, 3);
        assert!(l.allow_anonymous(AnonRoute::Challenge, 50.0, 1.0, 3.0));
        assert!(l.allow_anonymous(AnonRoute::Login, 51.0, 1.0, 3.0));
    }

    #[test]
    fn bucket_allows_bursts_then_the_rate() {
        let l = Limits::default();
        let me = Id([1; 16]);
        let allowed = (0..10).filter(|_| l.allow(me, 100.0, 1.0, 5.0)).count();
        assert_eq!(allowed, 5);
        assert!(
            l.allow(Id([2; 16]), 100.0, 1.0, 5.0),
            "others are not affected"
        );
        assert!(!l.allow(me, 100.5, 1.0, 5.0));
        assert!(l.allow(me, 101.1, 1.0, 5.0));
    }

    #[test]
    fn a_full_map_forgets_the_least_recent_caller_not_everyone() {
        let l = Limits::with_capacity(3);
        let (a, b, c, d) = (Id([1; 16]), Id([2; 16]), Id([3; 16]), Id([4; 16]));
        // a, b and c drain their buckets (burst 1).
        for who in [a, b, c] {
            assert!(l.allow(who, 100.0, 0.001, 1.0));
            assert!(!l.allow(who, 100.0, 0.001, 1.0));
        }
        // a is seen again, so b is now the least recent; a new caller pushes b out.
        assert!(!l.allow(a, 100.0, 0.001, 1.0));
        assert!(l.allow(d, 100.0, 0.001, 1.0));
        assert!(!l.allow(a, 100.0, 0.001, 1.0), "a keeps its empty bucket");
        assert!(!l.allow(c, 100.0, 0.001, 1.0), "c keeps its empty bucket");
        assert!(l.allow(b, 100.0, 0.001, 1.0), "b was forgotten");
    }
}
