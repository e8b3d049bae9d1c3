//! Where randomness comes from. Every function that needs it has a `_with` form taking a
//! [`RandomSource`], so tests and the frozen vectors can inject a deterministic one; the
//! plain forms use [`OsRandom`].

use super::CryptoError;

/// A source of random bytes. Implementations other than [`OsRandom`] are for tests only:
/// keys made from a predictable source are worthless.
pub trait RandomSource {
    /// Fill `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError>;
}

/// The operating system's generator (`getrandom`; `crypto.getRandomValues` in a browser).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        getrandom::fill(dest).map_err(|_| CryptoError::Random)
    }
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        (**self).fill(dest)
    }
}

/// 32 random bytes, wiped when dropped.
pub(crate) fn random32(
    rng: &mut dyn RandomSource,
) -> Result<zeroize::Zeroizing<[u8; 32]>, CryptoError> {
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill(out.as_mut())?;
    Ok(out)
}
