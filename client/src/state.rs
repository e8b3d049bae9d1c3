//! A device's secret state and its encrypted file.
//!
//! [`DeviceState`] holds what a device must keep between runs: its id, its key secrets, its
//! pairwise sessions (one list per conversation and remote device), its refresh and exit
//! tokens, and the ids of envelopes it has already processed. [`StateFile`] keeps it on disk
//! sealed with XChaCha20-Poly1305 under a key derived from a passphrase (Argon2id) or handed
//! over by a platform keystore, never under a key in a file beside it; written atomically
//! (temporary file, fsync, rename) so a crash leaves either the old or the new state, never
//! half of one; locked so that two processes never work on one state. Nothing readable is
//! left on the phone (docs/THREAT_MODEL.md, abuser holding the unlocked phone). The file format and
//! its limits are in docs/CLIENT.md.

use crate::api::Token;
use crate::error::{Error, Result};
use crate::trust::TrustState;
use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::keys::DeviceSecrets;
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::{StoreKey, open, seal};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Format version of the serialised state inside the sealed file.
const STATE_FORMAT: u8 = 1;

/// How many processed envelope ids are remembered for de-duplication.
pub const SEEN_IDS: usize = 4096;

/// Sessions kept per conversation and remote device. More than one exists when both sides
/// started a session at once; the newest that worked comes first.
pub const SESSIONS_PER_DEVICE: usize = 3;

/// Everything secret a device keeps between runs.
pub struct DeviceState {
    pub(crate) device_id: Id,
    pub(crate) secrets: DeviceSecrets,
    pub(crate) refresh_token: Option<Token>,
    pub(crate) exit_token: Option<Token>,
    /// `(conversation, remote device)` -> sessions, newest first.
    pub(crate) sessions: BTreeMap<(Id, Id), Vec<Session>>,
    pub(crate) conversations: BTreeSet<Id>,
    /// What this device decided to trust (pinned organisation keys and identities).
    pub(crate) trust: TrustState,
    seen_order: VecDeque<Id>,
    seen: HashSet<Id>,
}

impl std::fmt::Debug for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceState")
            .field("sessions", &self.sessions.len())
            .field("conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

impl DeviceState {
    pub fn new(
        device_id: Id,
        secrets: DeviceSecrets,
        refresh_token: Option<Token>,
        exit_token: Option<Token>,
    ) -> DeviceState {
        DeviceState {
            device_id,
            secrets,
            refresh_token,
            exit_token,
            sessions: BTreeMap::new(),
            conversations: BTreeSet::new(),
            trust: TrustState::default(),
            seen_order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    pub fn device_id(&self) -> Id {
        self.device_id
    }

    pub fn secrets(&self) -> &DeviceSecrets {
        &self.secrets
    }

    /// Conversations this device has opened or received messages in.
    pub fn conversations(&self) -> impl Iterator<Item = Id> + '_ {
        self.conversations.iter().copied()
    }

    /// Remote devices this device has a session with in `conversation`.
    pub fn session_devices(&self, conversation: Id) -> Vec<Id> {
        self.sessions
            .range((conversation, Id([0; 16]))..=(conversation, Id([0xff; 16])))
            .filter(|(_, list)| !list.is_empty())
            .map(|((_, device), _)| *device)
            .collect()
    }

    /// Has the envelope `id` been processed already?
    pub fn has_seen(&self, id: Id) -> bool {
        self.seen.contains(&id)
    }

    pub(crate) fn mark_seen(&mut self, id: Id) {
        if self.seen.insert(id) {
            self.seen_order.push_back(id);
            while self.seen_order.len() > SEEN_IDS {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    /// Put `session` first for `(conversation, device)`, keeping at most
    /// [`SESSIONS_PER_DEVICE`].
    pub(crate) fn insert_session(&mut self, conversation: Id, device: Id, session: Session) {
        let list = self.sessions.entry((conversation, device)).or_default();
        list.insert(0, session);
        list.truncate(SESSIONS_PER_DEVICE);
        self.conversations.insert(conversation);
    }

    /// Drop every session of `conversation` (closed or purged): their keys are gone for good.
    pub(crate) fn forget_conversation(&mut self, conversation: Id) {
        self.sessions.retain(|(c, _), _| *c != conversation);
        self.conversations.remove(&conversation);
    }

    /// Serialise (unsealed). The result holds secrets: seal it before it leaves memory.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let stored = Stored {
            v: STATE_FORMAT,
            device_id: self.device_id,
            secrets: Bytes(self.secrets.to_bytes().to_vec()),
            refresh_token: self.refresh_token.as_ref().map(|t| t.as_str().to_owned()),
            exit_token: self.exit_token.as_ref().map(|t| t.as_str().to_owned()),
            sessions: self
                .sessions
                .iter()
                .flat_map(|((conversation, device), list)| {
                    list.iter().map(|s| StoredSession {
                        conversation: *conversation,
                        device: *device,
                        session: Bytes(s.to_bytes().to_vec()),
                    })
                })
                .collect(),
            conversations: self.conversations.iter().copied().collect(),
            seen: self.seen_order.iter().copied().collect(),
            trust: self.trust.clone(),
        };
        Ok(Zeroizing::new(serde_json::to_vec(&stored)?))
    }

    /// Parse what [`DeviceState::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<DeviceState> {
        let stored: Stored = serde_json::from_slice(bytes)?;
        if stored.v != STATE_FORMAT {
            return Err(Error::State("unsupported state format".into()));
        }
        let mut state = DeviceState::new(
            stored.device_id,
            DeviceSecrets::from_bytes(stored.secrets.as_slice())?,
            stored.refresh_token.as_deref().map(Token::new),
            stored.exit_token.as_deref().map(Token::new),
        );
        for s in &stored.sessions {
            let session = Session::from_bytes(s.session.as_slice())?;
            // Stored newest first: append to keep the order.
            state
                .sessions
                .entry((s.conversation, s.device))
                .or_default()
                .push(session);
        }
        state.conversations = stored.conversations.iter().copied().collect();
        state.trust = stored.trust.clone();
        for id in &stored.seen {
            state.mark_seen(*id);
        }
        Ok(state)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSession {
    conversation: Id,
    device: Id,
    session: Bytes,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    v: u8,
    device_id: Id,
    secrets: Bytes,
    refresh_token: Option<String>,
    exit_token: Option<String>,
    sessions: Vec<StoredSession>,
    conversations: Vec<Id>,
    seen: Vec<Id>,
    #[serde(default)]
    trust: TrustState,
}

impl Drop for Stored {
    // The intermediate copies hold key material and tokens: wipe them.
    fn drop(&mut self) {
        self.secrets.0.zeroize();
        for s in &mut self.sessions {
            s.session.0.zeroize();
        }
        if let Some(t) = &mut self.refresh_token {
            t.zeroize();
        }
        if let Some(t) = &mut self.exit_token {
            t.zeroize();
        }
    }
}

/// Argon2id cost parameters of a passphrase-sealed state file.
///
/// They are written in clear in the file's header, so the file opens with the parameters it
/// was made with. [`KdfParams::DEFAULT`] is what [`StateFile::create_with_passphrase`] uses;
/// [`KdfParams::new`] takes others within [`KdfParams::MAX_M_COST_KIB`],
/// [`KdfParams::MAX_T_COST`] and [`KdfParams::MAX_P_COST`], the bounds every opened file is
/// held to as well, so a planted file cannot make the client allocate gigabytes or spin for
/// minutes before it even tries the passphrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane: the memory and passes of RFC 9106's second recommended
    /// option, on one lane because the derivation runs on one thread; light enough for a
    /// phone, and run once per start of the client, not per save.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    /// The most memory a state file may ask for: 256 MiB.
    pub const MAX_M_COST_KIB: u32 = 256 * 1024;
    /// The most passes a state file may ask for.
    pub const MAX_T_COST: u32 = 10;
    /// The most lanes a state file may ask for.
    pub const MAX_P_COST: u32 = 4;

    /// Memory in KiB, passes and lanes, refused outside Argon2's minimums and this type's
    /// maximums. Small values are for tests and for devices that cannot afford the default.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<KdfParams> {
        let params = KdfParams {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        params.check()?;
        Ok(params)
    }

    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    fn check(&self) -> Result<()> {
        let in_bounds = (1..=Self::MAX_P_COST).contains(&self.p_cost)
            && (1..=Self::MAX_T_COST).contains(&self.t_cost)
            && self.m_cost_kib <= Self::MAX_M_COST_KIB
            && self.m_cost_kib >= argon2::Params::MIN_M_COST.max(8 * self.p_cost);
        if in_bounds {
            Ok(())
        } else {
            Err(Error::StateFormat(
                "the key derivation parameters are out of bounds",
            ))
        }
    }

    /// Argon2id over `passphrase` and `salt`, 32 bytes out. Checks the bounds first: nothing
    /// is allocated for parameters out of bounds.
    fn derive(&self, passphrase: &[u8], salt: &[u8; SALT_LEN]) -> Result<StoreKey> {
        self.check()?;
        #[cfg(test)]
        tests::DERIVATIONS.with(|n| n.set(n.get() + 1));
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| Error::StateFormat("the key derivation parameters are invalid"))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(|_| Error::State("the passphrase could not be used".into()))?;
        Ok(StoreKey::from_bytes(*out))
    }
}

/// First bytes of every state file.
const MAGIC: &[u8; 8] = b"QLSTATE\0";

/// File format after the magic. Format 1 had no header: the sealed bytes alone, under a key
/// kept in a `.key` file beside them. It is refused.
const FILE_FORMAT: u8 = 2;

/// The first byte of a format-1 file (the sealing format byte of `quietline_proto::crypto::seal`).
const OLD_FORMAT_FIRST_BYTE: u8 = 1;

/// How the key of a file is had: from the caller (a platform keystore), or from a passphrase.
const KDF_CALLER_KEY: u8 = 0;
const KDF_ARGON2ID: u8 = 1;

const SALT_LEN: usize = 16;

/// magic, format, kdf, m, t, p (u32 little-endian each), salt.
const HEADER_LEN: usize = MAGIC.len() + 1 + 1 + 3 * 4 + SALT_LEN;

/// Associated data of the sealed state, followed by the header: a changed header, or a file
/// of another kind, does not open.
const STATE_AAD: &[u8] = b"quietline-client-state-v2";

/// The clear header of a state file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    kdf: u8,
    params: KdfParams,
    salt: [u8; SALT_LEN],
}

impl Header {
    fn caller_key() -> Header {
        Header {
            kdf: KDF_CALLER_KEY,
            params: KdfParams {
                m_cost_kib: 0,
                t_cost: 0,
                p_cost: 0,
            },
            salt: [0; SALT_LEN],
        }
    }

    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8] = FILE_FORMAT;
        out[9] = self.kdf;
        out[10..14].copy_from_slice(&self.params.m_cost_kib.to_le_bytes());
        out[14..18].copy_from_slice(&self.params.t_cost.to_le_bytes());
        out[18..22].copy_from_slice(&self.params.p_cost.to_le_bytes());
        out[22..].copy_from_slice(&self.salt);
        out
    }

    /// Split a file into its header and the sealed state, refusing anything this client did
    /// not write (an old format, another file, a kdf it does not know, out-of-bounds cost
    /// parameters) before any key is derived.
    fn parse(file: &[u8]) -> Result<(Header, &[u8])> {
        if !file.starts_with(MAGIC) {
            if file.first() == Some(&OLD_FORMAT_FIRST_BYTE) {
                return Err(Error::StateFormat(
                    "this state file has the old format, sealed under a key kept in a separate .key file; it is no longer read: delete both files and register the device again",
                ));
            }
            return Err(Error::StateFormat("this is not a Quietline state file"));
        }
        if file.len() < HEADER_LEN {
            return Err(Error::StateFormat("the state file is truncated"));
        }
        let (head, sealed) = file.split_at(HEADER_LEN);
        if head[8] != FILE_FORMAT {
            return Err(Error::StateFormat(
                "the state file has a format this client does not know",
            ));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&head[22..]);
        let header = Header {
            kdf: head[9],
            params: KdfParams {
                m_cost_kib: u32_at(10),
                t_cost: u32_at(14),
                p_cost: u32_at(18),
            },
            salt,
        };
        match header.kdf {
            KDF_CALLER_KEY if header == Header::caller_key() => {}
            KDF_CALLER_KEY => {
                return Err(Error::StateFormat("the state file's header is malformed"));
            }
            KDF_ARGON2ID => header.params.check()?,
            _ => {
                return Err(Error::StateFormat(
                    "the state file names a key derivation this client does not know",
                ));
            }
        }
        Ok((header, sealed))
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = STATE_AAD.to_vec();
        aad.extend_from_slice(&self.to_bytes());
        aad
    }
}

/// Where and under which key a [`DeviceState`] is kept, with the lock that keeps other
/// processes out.
///
/// The file is a clear header (magic, format, key derivation, Argon2id parameters, salt)
/// followed by the state sealed with XChaCha20-Poly1305; the header is part of the associated
/// data, so changing any of it makes the file refuse to open. The key is derived once, when
/// the `StateFile` is created or opened, and kept (zeroized on drop); every save seals under a
/// fresh random nonce. While a `StateFile` lives it holds an exclusive advisory lock on
/// `<state>.lock`: a second `StateFile` for the same path, in this process or another, gets
/// [`Error::StateLocked`].
pub struct StateFile {
    path: PathBuf,
    key: StoreKey,
    header: Header,
    lock_path: PathBuf,
    /// Holds the lock until dropped.
    _lock: std::fs::File,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile")
            .field("path", &self.path)
            .field("passphrase", &(self.header.kdf == KDF_ARGON2ID))
            .finish_non_exhaustive()
    }
}

impl StateFile {
    /// A state sealed under `key` from the caller's platform keystore (a non-extractable
    /// WebCrypto key in the browser, Android Keystore, the iOS Keychain). Takes the lock; the
    /// file need not exist yet. A passphrase-sealed file at `path` does not load with it.
    pub fn new(path: impl Into<PathBuf>, key: StoreKey) -> Result<StateFile> {
        let path = path.into();
        let (lock, lock_path) = take_lock(&path)?;
        Ok(StateFile {
            path,
            key,
            header: Header::caller_key(),
            lock_path,
            _lock: lock,
        })
    }

    /// A new state sealed under `passphrase`, with [`KdfParams::DEFAULT`]. Fails if a file
    /// exists at `path`. Takes the lock and derives the key now; the file is written by the
    /// first [`StateFile::save`].
    pub fn create_with_passphrase(
        path: impl Into<PathBuf>,
        passphrase: &[u8],
    ) -> Result<StateFile> {
        Self::create_with_passphrase_and_params(path, passphrase, KdfParams::DEFAULT)
    }

    /// [`StateFile::create_with_passphrase`] with other cost parameters (tests use small ones).
    pub fn create_with_passphrase_and_params(
        path: impl Into<PathBuf>,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<StateFile> {
        let path = path.into();
        params.check()?;
        if passphrase.is_empty() {
            return Err(Error::State("the passphrase is empty".into()));
        }
        let (lock, lock_path) = take_lock(&path)?;
        if path.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a state file already exists at this path",
            )
            .into());
        }
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| Error::State(format!("no randomness: {e}")))?;
        let header = Header {
            kdf: KDF_ARGON2ID,
            params,
            salt,
        };
        let key = params.derive(passphrase, &salt)?;
        Ok(StateFile {
            path,
            key,
            header,
            lock_path,
            _lock: lock,
        })
    }

    /// Open the passphrase-sealed state at `path`: take the lock, read the header (refusing
    /// an old format and out-of-bounds parameters before any work), derive the key and check
    /// it opens the state. A wrong passphrase, or a file altered after it was written, is
    /// [`Error::WrongPassphrase`].
    pub fn open_with_passphrase(path: impl Into<PathBuf>, passphrase: &[u8]) -> Result<StateFile> {
        let path = path.into();
        let (lock, lock_path) = take_lock(&path)?;
        let file = std::fs::read(&path)?;
        let (header, sealed) = Header::parse(&file)?;
        if header.kdf != KDF_ARGON2ID {
            return Err(Error::StateFormat(
                "this state file is sealed under a platform key, not a passphrase",
            ));
        }
        let key = header.params.derive(passphrase, &header.salt)?;
        open(&key, &header.aad(), sealed).map_err(|_| Error::WrongPassphrase)?;
        Ok(StateFile {
            path,
            key,
            header,
            lock_path,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Seal and write `state` under a fresh nonce, replacing the file atomically. No key is
    /// derived here.
    pub fn save(&self, state: &DeviceState) -> Result<()> {
        let plain = state.to_bytes()?;
        let mut out = self.header.to_bytes().to_vec();
        out.extend_from_slice(&seal(&self.key, &self.header.aad(), &plain)?);
        atomic_write(&self.path, &out)
    }

    /// Read and open the state. A tampered file is [`Error::WrongPassphrase`] for a
    /// passphrase-sealed state and [`Error::Crypto`] under a caller's key (a wrong key too).
    pub fn load(&self) -> Result<DeviceState> {
        let file = std::fs::read(&self.path)?;
        let (header, sealed) = Header::parse(&file)?;
        if header.kdf != self.header.kdf {
            return Err(Error::StateFormat(if header.kdf == KDF_ARGON2ID {
                "this state file is sealed under a passphrase, not a platform key"
            } else {
                "this state file is sealed under a platform key, not a passphrase"
            }));
        }
        let plain = match open(&self.key, &header.aad(), sealed) {
            Ok(plain) => plain,
            Err(_) if self.header.kdf == KDF_ARGON2ID => return Err(Error::WrongPassphrase),
            Err(e) => return Err(e.into()),
        };
        DeviceState::from_bytes(&plain)
    }

    /// Erase the state: overwrite the state file and any temporary file left by an
    /// interrupted save with zeros and remove them, remove the lock file, then drop the key
    /// (zeroized) and release the lock. After it no file of the state is left in the
    /// directory. Every removal is tried; the first failure is returned. (On flash storage
    /// old blocks may survive; they are ciphertext under a key that is gone from memory, and
    /// which a passphrase or the platform keystore would have to give again.)
    pub fn destroy(self) -> Result<()> {
        let mut result = shred(&self.path);
        match temp_path(&self.path) {
            Ok(tmp) => result = result.and(shred(&tmp)),
            Err(e) => result = result.and(Err(e)),
        }
        result = result.and(remove_if_present(&self.lock_path));
        drop(self);
        result
    }
}

/// Overwrite `path` with zeros and remove it; nothing to do if it does not exist.
fn shred(path: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(path) {
        let zeros = vec![0u8; usize::try_from(meta.len()).unwrap_or(0)];
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
            let _ = f.write_all(&zeros);
            let _ = f.sync_all();
        }
    }
    remove_if_present(path)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, prefix: &str, suffix: &str) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::State("state path has no file name".into()))?;
    let mut sibling = std::ffi::OsString::from(prefix);
    sibling.push(name);
    sibling.push(suffix);
    Ok(path.with_file_name(sibling))
}

/// Where [`atomic_write`] puts its temporary file for `path`.
fn temp_path(path: &Path) -> Result<PathBuf> {
    sibling(path, ".", ".tmp")
}

/// Take the exclusive advisory lock on `<path>.lock` (created mode 0600), without waiting.
fn take_lock(path: &Path) -> Result<(std::fs::File, PathBuf)> {
    let lock_path = sibling(path, "", ".lock")?;
    // A lock file removed by a `destroy` between our open and our lock guards nothing:
    // check it is still the file at the path, and otherwise start again.
    for _ in 0..3 {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&lock_path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::StateLocked),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        if still_at(&file, &lock_path) {
            return Ok((file, lock_path));
        }
    }
    Err(Error::StateLocked)
}

#[cfg(unix)]
fn still_at(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

/// Write `bytes` to `path` so that a crash leaves the old or the new content: write a
/// temporary file beside it (mode 0600 on Unix), fsync, rename over, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = temp_path(path)?;
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    #[cfg(unix)]
    {
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Tests that hold a state lock run one at a time with the one that starts a child
    /// process: a child forked while another test's lock file is open holds a copy of that
    /// descriptor, and so the lock, until it has exec'd, which on a loaded machine can be
    /// long enough for the next test to see its own state as locked.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }
    use std::cell::Cell;

    thread_local! {
        /// Argon2id runs on this thread (each test runs on its own thread).
        pub(crate) static DERIVATIONS: Cell<usize> = const { Cell::new(0) };
    }

    fn derivations() -> usize {
        DERIVATIONS.with(Cell::get)
    }

    /// Cheap parameters, so the tests do not spend 64 MiB per derivation.
    fn small() -> KdfParams {
        KdfParams::new(8, 1, 1).unwrap()
    }

    fn state() -> DeviceState {
        let (secrets, _) = DeviceSecrets::generate().unwrap();
        let mut s = DeviceState::new(
            Id([9; 16]),
            secrets,
            Some(Token::new("refresh-secret")),
            Some(Token::new("exit-secret")),
        );
        s.mark_seen(Id([1; 16]));
        s.conversations.insert(Id([2; 16]));
        s
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Write a header with other values in front of a file's sealed bytes.
    fn rewrite_header(path: &Path, edit: impl FnOnce(&mut [u8])) {
        let mut raw = std::fs::read(path).unwrap();
        edit(&mut raw[..HEADER_LEN]);
        std::fs::write(path, &raw).unwrap();
    }

    #[test]
    fn state_round_trips_through_a_passphrase_sealed_file() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file =
            StateFile::create_with_passphrase_and_params(&path, b"blue kettle", small()).unwrap();
        let s = state();
        file.save(&s).unwrap();
        let raw = std::fs::read(file.path()).unwrap();
        assert!(raw.starts_with(MAGIC));
        let raw_text = String::from_utf8_lossy(&raw);
        assert!(!raw_text.contains("refresh-secret"));
        assert!(!raw_text.contains(&Id([9; 16]).to_string()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [file.path(), file.lock_path.as_path()] {
                let mode = std::fs::metadata(p).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
        drop(file);

        let file = StateFile::open_with_passphrase(&path, b"blue kettle").unwrap();
        let back = file.load().unwrap();
        assert_eq!(back.device_id(), Id([9; 16]));
        assert!(back.has_seen(Id([1; 16])));
        assert_eq!(back.conversations().collect::<Vec<_>>(), vec![Id([2; 16])]);
        assert_eq!(
            back.refresh_token.as_ref().map(Token::as_str),
            Some("refresh-secret")
        );
        assert_eq!(
            back.secrets.identity().public(),
            s.secrets.identity().public()
        );
    }

    #[test]
    fn the_default_parameters_are_argon2id_64_mib_3_passes_1_lane_and_recorded_in_the_header() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file = StateFile::create_with_passphrase(&path, b"blue kettle").unwrap();
        file.save(&state()).unwrap();
        drop(file);
        let raw = std::fs::read(&path).unwrap();
        let (header, _) = Header::parse(&raw).unwrap();
        assert_eq!(header.kdf, KDF_ARGON2ID);
        assert_eq!(
            (
                header.params.m_cost_kib(),
                header.params.t_cost(),
                header.params.p_cost()
            ),
            (64 * 1024, 3, 1)
        );
        let back = StateFile::open_with_passphrase(&path, b"blue kettle").unwrap();
        assert_eq!(back.load().unwrap().device_id(), Id([9; 16]));
    }

    #[test]
    fn the_key_is_derived_once_per_open_and_every_save_uses_a_fresh_nonce() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let before = derivations();
        let file = StateFile::create_with_passphrase_and_params(&path, b"pw", small()).unwrap();
        assert_eq!(derivations() - before, 1);
        let s = state();
        file.save(&s).unwrap();
        let first = std::fs::read(&path).unwrap();
        file.save(&s).unwrap();
        let second = std::fs::read(&path).unwrap();
        file.load().unwrap();
        assert_eq!(derivations() - before, 1, "saves and loads derive nothing");
        // Same header and salt, different nonce (and so ciphertext).
        assert_eq!(first[..HEADER_LEN], second[..HEADER_LEN]);
        let nonce = HEADER_LEN + 1..HEADER_LEN + 1 + 24;
        assert_ne!(first[nonce.clone()], second[nonce]);
        drop(file);
        let file = StateFile::open_with_passphrase(&path, b"pw").unwrap();
        assert_eq!(derivations() - before, 2);
        file.save(&s).unwrap();
        assert_eq!(derivations() - before, 2);
    }

    #[test]
    fn a_wrong_passphrase_is_refused_with_its_own_error() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file =
            StateFile::create_with_passphrase_and_params(&path, b"blue kettle", small()).unwrap();
        file.save(&state()).unwrap();
        drop(file);
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(
            StateFile::open_with_passphrase(&path, b"blue kettlf"),
            Err(Error::WrongPassphrase)
        ));
        assert!(matches!(
            StateFile::open_with_passphrase(&path, b""),
            Err(Error::WrongPassphrase)
        ));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the file is unchanged"
        );
        // The failed opens released the lock: the right passphrase still opens it.
        StateFile::open_with_passphrase(&path, b"blue kettle").unwrap();
    }

    #[test]
    fn a_changed_header_or_sealed_byte_is_refused() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file = StateFile::create_with_passphrase_and_params(&path, b"pw", small()).unwrap();
        file.save(&state()).unwrap();
        drop(file);
        let good = std::fs::read(&path).unwrap();
        // (what, header byte, bits flipped): memory 8 -> 16 KiB, passes 1 -> 2, a salt bit.
        for (what, i, flip) in [
            ("memory", 10, 0x18u8),
            ("passes", 14, 0x03),
            ("salt", 30, 1),
        ] {
            std::fs::write(&path, &good).unwrap();
            rewrite_header(&path, |h| h[i] ^= flip);
            assert!(
                matches!(
                    StateFile::open_with_passphrase(&path, b"pw"),
                    Err(Error::WrongPassphrase)
                ),
                "changed {what} must not open"
            );
        }
        // The last byte of the ciphertext.
        let mut raw = good.clone();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        assert!(matches!(
            StateFile::open_with_passphrase(&path, b"pw"),
            Err(Error::WrongPassphrase)
        ));
        // A file altered while open is refused by load too.
        std::fs::write(&path, &good).unwrap();
        let file = StateFile::open_with_passphrase(&path, b"pw").unwrap();
        std::fs::write(&path, &raw).unwrap();
        assert!(matches!(file.load(), Err(Error::WrongPassphrase)));
        drop(file);
        // An unknown format or kdf byte is refused before any key is derived.
        for (i, v) in [(8, 3u8), (9, 7u8)] {
            std::fs::write(&path, &good).unwrap();
            rewrite_header(&path, |h| h[i] = v);
            let before = derivations();
            assert!(matches!(
                StateFile::open_with_passphrase(&path, b"pw"),
                Err(Error::StateFormat(_))
            ));
            assert_eq!(derivations(), before);
        }
    }

    #[test]
    fn hostile_cost_parameters_are_refused_before_any_work() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file = StateFile::create_with_passphrase_and_params(&path, b"pw", small()).unwrap();
        file.save(&state()).unwrap();
        drop(file);
        let good = std::fs::read(&path).unwrap();
        // 4 TiB of memory, 4 billion passes, 16 million lanes, 512 MiB, zero passes, zero
        // memory: had any reached Argon2 the first would abort the process.
        let hostile: [(u32, u32, u32); 6] = [
            (u32::MAX, 3, 1),
            (8, u32::MAX, 1),
            (64, 1, 0x00ff_ffff),
            (512 * 1024, 1, 1),
            (8, 0, 1),
            (0, 1, 1),
        ];
        for (m, t, p) in hostile {
            std::fs::write(&path, &good).unwrap();
            rewrite_header(&path, |h| {
                h[10..14].copy_from_slice(&m.to_le_bytes());
                h[14..18].copy_from_slice(&t.to_le_bytes());
                h[18..22].copy_from_slice(&p.to_le_bytes());
            });
            let before = derivations();
            match StateFile::open_with_passphrase(&path, b"pw") {
                Err(Error::StateFormat(msg)) => assert!(msg.contains("out of bounds"), "{msg}"),
                other => panic!("({m}, {t}, {p}) must be refused, got {other:?}"),
            }
            assert_eq!(derivations(), before, "({m}, {t}, {p}) derived a key");
        }
        // The same bounds hold for new files.
        assert!(KdfParams::new(KdfParams::MAX_M_COST_KIB + 1, 1, 1).is_err());
        assert!(KdfParams::new(64, KdfParams::MAX_T_COST + 1, 1).is_err());
        assert!(KdfParams::new(64, 1, KdfParams::MAX_P_COST + 1).is_err());
        assert!(
            KdfParams::new(15, 1, 2).is_err(),
            "argon2 needs 8 KiB per lane"
        );
        assert!(KdfParams::new(KdfParams::MAX_M_COST_KIB, KdfParams::MAX_T_COST, 4).is_ok());
    }

    #[test]
    fn a_state_file_of_the_old_format_is_refused_with_a_clear_error() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        // Format 1: the sealed bytes alone, key in `state.key`.
        let key = StoreKey::generate().unwrap();
        let plain = state().to_bytes().unwrap();
        let old = seal(&key, b"quietline-client-state-v1", &plain).unwrap();
        std::fs::write(&path, &old).unwrap();
        match StateFile::open_with_passphrase(&path, b"pw") {
            Err(Error::StateFormat(msg)) => assert!(msg.contains("old format"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
        let file = StateFile::new(&path, key).unwrap();
        match file.load() {
            Err(Error::StateFormat(msg)) => assert!(msg.contains("old format"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
        drop(file);
        std::fs::write(&path, b"{\"v\":1}").unwrap();
        match StateFile::open_with_passphrase(&path, b"pw") {
            Err(Error::StateFormat(msg)) => assert!(msg.contains("not a Quietline"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
        std::fs::write(&path, &MAGIC[..]).unwrap();
        assert!(matches!(
            StateFile::open_with_passphrase(&path, b"pw"),
            Err(Error::StateFormat(_))
        ));
    }

    #[test]
    fn create_refuses_an_existing_file_and_an_empty_passphrase() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert!(matches!(
            StateFile::create_with_passphrase_and_params(&path, b"", small()),
            Err(Error::State(_))
        ));
        std::fs::write(&path, b"anything").unwrap();
        match StateFile::create_with_passphrase_and_params(&path, b"pw", small()) {
            Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"anything");
    }

    #[test]
    fn a_locked_state_cannot_be_opened_or_created_a_second_time() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file = StateFile::create_with_passphrase_and_params(&path, b"pw", small()).unwrap();
        let before = derivations();
        assert!(matches!(
            StateFile::create_with_passphrase_and_params(&path, b"pw", small()),
            Err(Error::StateLocked)
        ));
        file.save(&state()).unwrap();
        assert!(matches!(
            StateFile::open_with_passphrase(&path, b"pw"),
            Err(Error::StateLocked)
        ));
        assert!(matches!(
            StateFile::new(&path, StoreKey::generate().unwrap()),
            Err(Error::StateLocked)
        ));
        assert_eq!(derivations(), before, "a locked state costs no derivation");
        drop(file);
        let again = StateFile::open_with_passphrase(&path, b"pw").unwrap();
        assert_eq!(again.load().unwrap().device_id(), Id([9; 16]));
    }

    /// Run by [`a_locked_state_cannot_be_opened_by_another_process`] in a child process.
    #[test]
    #[ignore = "run in a child process by a_locked_state_cannot_be_opened_by_another_process"]
    fn lock_probe() {
        let path = std::env::var_os("QUIETLINE_LOCK_PROBE").unwrap();
        let outcome = match StateFile::open_with_passphrase(PathBuf::from(path), b"pw") {
            Ok(_) => "opened",
            Err(Error::StateLocked) => "locked",
            Err(_) => "failed",
        };
        println!("lock-probe={outcome}");
    }

    fn probe_from_another_process(path: &Path) -> String {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "state::tests::lock_probe",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("QUIETLINE_LOCK_PROBE", path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        // The harness prints `test ... ` before the probe's line: look anywhere in a line.
        stdout
            .lines()
            .find_map(|l| {
                l.split_once("lock-probe=")
                    .map(|(_, o)| o.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("the probe did not run: {stdout}"))
    }

    #[test]
    fn a_locked_state_cannot_be_opened_by_another_process() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file = StateFile::create_with_passphrase_and_params(&path, b"pw", small()).unwrap();
        file.save(&state()).unwrap();
        assert_eq!(probe_from_another_process(&path), "locked");
        drop(file);
        assert_eq!(probe_from_another_process(&path), "opened");
    }

    #[test]
    fn destroy_leaves_no_file_of_the_state_and_frees_the_path() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("unrelated"), b"kept").unwrap();
        let path = dir.path().join("state");
        let file = StateFile::create_with_passphrase_and_params(&path, b"pw", small()).unwrap();
        file.save(&state()).unwrap();
        // What an interrupted save leaves behind.
        let tmp = temp_path(&path).unwrap();
        std::fs::write(&tmp, b"half a state").unwrap();
        assert_eq!(
            entries(dir.path()),
            vec![".state.tmp", "state", "state.lock", "unrelated"]
        );
        file.destroy().unwrap();
        assert_eq!(entries(dir.path()), vec!["unrelated"]);
        // Nothing is left to open, and the path is free for a new state.
        assert!(matches!(
            StateFile::open_with_passphrase(&path, b"pw"),
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
        let file = StateFile::create_with_passphrase_and_params(&path, b"new", small()).unwrap();
        // Destroying a state that was never saved removes its lock file.
        file.destroy().unwrap();
        assert_eq!(entries(dir.path()), vec!["unrelated"]);
    }

    #[tokio::test]
    async fn quick_exit_wipe_and_duress_destroy_the_state_files_whatever_the_relay_answers() {
        use crate::{Api, ExitMode, SecureClient};
        // Nothing listens on port 1: the relay call fails, the local wipe must still happen.
        let relay = Api::new("http://127.0.0.1:1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut client = SecureClient::resume(&relay, state(), None);
        let file = StateFile::create_with_passphrase_and_params(&path, b"pw", small()).unwrap();
        client.persist_to(file).unwrap();
        assert!(client.quick_exit(ExitMode::Hide).await.is_err());
        assert_eq!(
            entries(dir.path()),
            vec!["state", "state.lock"],
            "hide keeps it"
        );
        drop(client);
        std::fs::remove_file(&path).unwrap();
        for mode in [ExitMode::Wipe, ExitMode::Duress] {
            let mut client = SecureClient::resume(&relay, state(), None);
            let file = StateFile::create_with_passphrase_and_params(&path, b"pw", small()).unwrap();
            client.persist_to(file).unwrap();
            std::fs::write(temp_path(&path).unwrap(), b"half a state").unwrap();
            assert!(matches!(
                client.quick_exit(mode).await,
                Err(Error::Transport(_))
            ));
            assert!(entries(dir.path()).is_empty(), "{mode:?} left files");
            // Later saves write nothing back.
            client.save().unwrap();
            assert!(entries(dir.path()).is_empty(), "{mode:?} left files");
        }
    }

    #[test]
    fn a_platform_key_state_round_trips_and_refuses_a_wrong_key_or_tampering() {
        let _serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let key = StoreKey::generate().unwrap();
        let file = StateFile::new(&path, key.clone()).unwrap();
        file.save(&state()).unwrap();
        assert_eq!(file.load().unwrap().device_id(), Id([9; 16]));
        drop(file);
        let other = StateFile::new(&path, StoreKey::generate().unwrap()).unwrap();
        assert!(matches!(other.load(), Err(Error::Crypto(_))));
        drop(other);
        // Neither way of opening mistakes one kind of file for the other.
        match StateFile::open_with_passphrase(&path, b"pw") {
            Err(Error::StateFormat(msg)) => assert!(msg.contains("platform key"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
        let pw_path = dir.path().join("pw-state");
        let pw = StateFile::create_with_passphrase_and_params(&pw_path, b"pw", small()).unwrap();
        pw.save(&state()).unwrap();
        drop(pw);
        let keyed = StateFile::new(&pw_path, key.clone()).unwrap();
        match keyed.load() {
            Err(Error::StateFormat(msg)) => assert!(msg.contains("passphrase"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
        drop(keyed);

        let file = StateFile::new(&path, key).unwrap();
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        assert!(matches!(file.load(), Err(Error::Crypto(_))));
        raw[last] ^= 1;
        raw[HEADER_LEN - 1] ^= 1; // the (unused) salt of a caller-key header
        std::fs::write(&path, &raw).unwrap();
        assert!(matches!(file.load(), Err(Error::StateFormat(_))));
        file.destroy().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn seen_ids_are_bounded() {
        let _serial = serial();
        let mut s = state();
        for i in 0..(SEEN_IDS as u32 + 10) {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_le_bytes());
            b[15] = 0xee;
            s.mark_seen(Id(b));
        }
        assert_eq!(s.seen.len(), SEEN_IDS);
        assert_eq!(s.seen_order.len(), SEEN_IDS);
    }
}
