//! In-memory abuse limits (DESIGN.md §2, flooding): adaptive proof-of-work difficulty and
//! per-caller rate limits.
//!
//! Nothing here is stored or logged, and nothing is keyed by IP address: the rate limit is
//! keyed by the authenticated subject (device or member id) and the proof-of-work difficulty
//! rises with how many challenges this replica handed out in the last minute.

use lru::LruCache;
use quietline_proto::Id;
use std::num::NonZeroUsize;
use std::sync::Mutex;

/// Challenges handed out in the current one-minute window.
#[derive(Debug, Default)]
struct Window {
    start: i64,
    count: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: f64,
}

#[derive(Debug)]
pub struct Limits {
    challenges: Mutex<Window>,
    /// Least recently seen callers are forgotten first when full: one new caller costs one
    /// other caller (the longest quiet) a fresh bucket, never everyone.
    buckets: Mutex<LruCache<Id, Bucket>>,
}

/// Most callers tracked at once.
const MAX_TRACKED: usize = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED)
    }
}

impl Limits {
    /// Limits tracking at most `callers` rate-limit buckets.
    pub fn with_capacity(callers: usize) -> Self {
        Limits {
            challenges: Mutex::default(),
            buckets: Mutex::new(LruCache::new(
                NonZeroUsize::new(callers).unwrap_or(NonZeroUsize::MIN),
            )),
        }
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
        let b = map.get_or_insert_mut(caller, || Bucket {
            tokens: burst,
            updated: now,
        });
        b.tokens = (b.tokens + (now - b.updated).max(0.0) * rate).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
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
