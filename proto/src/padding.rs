//! Envelope size buckets (docs/THREAT_MODEL.md, network observer; §5).
//!
//! Clients pad plaintext before encryption so that every encoded envelope is exactly one of
//! these sizes; the server refuses any other size. An observer of the traffic, or of a database
//! dump, learns only which bucket a message fell in.

/// Allowed encoded envelope sizes in bytes, ascending.
pub const ENVELOPE_BUCKETS: [usize; 4] = [1024, 4096, 16 * 1024, 64 * 1024];

/// The largest envelope the server takes.
pub const MAX_ENVELOPE: usize = ENVELOPE_BUCKETS[ENVELOPE_BUCKETS.len() - 1];

/// Is `len` exactly one of the buckets?
pub fn is_bucket(len: usize) -> bool {
    ENVELOPE_BUCKETS.contains(&len)
}

/// The smallest bucket that holds `len` bytes, if any.
pub fn bucket_for(len: usize) -> Option<usize> {
    ENVELOPE_BUCKETS.iter().copied().find(|&b| b >= len)
}

/// Response bodies are padded to multiples of this many bytes (docs/SAFETY.md, disguise).
pub const RESPONSE_PAD_QUANTUM: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact() {
        assert!(is_bucket(1024));
        assert!(!is_bucket(1023));
        assert!(!is_bucket(1025));
        assert!(!is_bucket(0));
        assert_eq!(bucket_for(1), Some(1024));
        assert_eq!(bucket_for(1025), Some(4096));
        assert_eq!(bucket_for(MAX_ENVELOPE), Some(MAX_ENVELOPE));
        assert_eq!(bucket_for(MAX_ENVELOPE + 1), None);
    }
}
