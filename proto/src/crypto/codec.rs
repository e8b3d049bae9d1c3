//! A bounds-checked byte reader and a writer for the binary formats (envelopes, stored
//! sessions, stored device secrets). Every read is checked, so a decoder built on it
//! returns `Malformed` on any input instead of panicking (issue 3, point 3).

use super::CryptoError;

pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CryptoError> {
        if n > self.rest.len() {
            return Err(CryptoError::Malformed);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CryptoError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| CryptoError::Malformed)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CryptoError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CryptoError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CryptoError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, CryptoError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A presence flag: 0 or 1, anything else is malformed.
    pub(crate) fn flag(&mut self) -> Result<bool, CryptoError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CryptoError::Malformed),
        }
    }

    /// An optional 32-byte value: a flag, then 32 bytes if set.
    pub(crate) fn opt32(&mut self) -> Result<Option<[u8; 32]>, CryptoError> {
        if self.flag()? {
            Ok(Some(self.array()?))
        } else {
            Ok(None)
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.rest
    }

    /// The input must be used up exactly: trailing bytes are malformed, not ignored.
    pub(crate) fn finish(self) -> Result<(), CryptoError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CryptoError::Malformed)
        }
    }
}

pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_flag(&mut self, v: bool);
    fn put_opt32(&mut self, v: Option<&[u8; 32]>);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_flag(&mut self, v: bool) {
        self.push(u8::from(v));
    }
    fn put_opt32(&mut self, v: Option<&[u8; 32]>) {
        match v {
            Some(bytes) => {
                self.push(1);
                self.extend_from_slice(bytes);
            }
            None => self.push(0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_short_input_and_trailing_bytes() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.u16().unwrap(), 1);
        assert_eq!(r.u16(), Err(CryptoError::Malformed));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.finish(), Err(CryptoError::Malformed));
        assert_eq!(Reader::new(&[2]).flag(), Err(CryptoError::Malformed));
    }
}
