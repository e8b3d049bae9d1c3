//! A device's secret state and its encrypted file.
//!
//! [`DeviceState`] holds what a device must keep between runs: its id, its key secrets, its
//! pairwise sessions (one list per conversation and remote device), its refresh and exit
//! tokens, and the ids of envelopes it has already processed. [`StateFile`] keeps it on disk
//! sealed with XChaCha20-Poly1305 under a key from the caller, written atomically (temporary
//! file, fsync, rename) so a crash leaves either the old or the new state, never half of one.
//! Nothing readable is left on the phone (DESIGN.md §2, abuser holding the unlocked phone).

use crate::api::Token;
use crate::error::{Error, Result};
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

/// Associated data of the sealed state file: a file of another kind or version does not open.
const STATE_AAD: &[u8] = b"quietline-client-state-v1";

/// Format version inside the sealed file.
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

/// Where and under which key a [`DeviceState`] is kept.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    key: StoreKey,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>, key: StoreKey) -> StateFile {
        StateFile {
            path: path.into(),
            key,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Seal and write `state`, replacing the file atomically.
    pub fn save(&self, state: &DeviceState) -> Result<()> {
        let plain = state.to_bytes()?;
        let sealed = seal(&self.key, STATE_AAD, &plain)?;
        atomic_write(&self.path, &sealed)
    }

    /// Read and open the state. A wrong key or a tampered file is [`Error::Crypto`].
    pub fn load(&self) -> Result<DeviceState> {
        let sealed = std::fs::read(&self.path)?;
        let plain = open(&self.key, STATE_AAD, &sealed)?;
        DeviceState::from_bytes(&plain)
    }

    /// Overwrite the file with zeros and remove it. (On flash storage the old blocks may
    /// survive; they are ciphertext under a key the caller should also destroy.)
    pub fn destroy(&self) -> Result<()> {
        if let Ok(meta) = std::fs::metadata(&self.path) {
            let zeros = vec![0u8; usize::try_from(meta.len()).unwrap_or(0)];
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
                let _ = f.write_all(&zeros);
                let _ = f.sync_all();
            }
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Write `bytes` to `path` so that a crash leaves the old or the new content: write a
/// temporary file beside it (mode 0600 on Unix), fsync, rename over, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::State("state path has no file name".into()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
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

/// Read a 32-byte store key kept as unpadded base64url text in `path`, or create one there
/// (mode 0600) if the file does not exist.
pub fn load_or_create_key(path: &Path) -> Result<StoreKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = Zeroizing::new(
                quietline_proto::b64::decode(text.trim())
                    .map_err(|_| Error::State("the key file is not base64url".into()))?,
            );
            let arr: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| Error::State("the key file does not hold 32 bytes".into()))?;
            Ok(StoreKey::from_bytes(arr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = StoreKey::generate()?;
            let text = Zeroizing::new(quietline_proto::b64::encode(key.as_bytes()));
            atomic_write(path, text.as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn state_round_trips_through_a_sealed_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("state"), StoreKey::generate().unwrap());
        let s = state();
        file.save(&s).unwrap();
        let raw = std::fs::read(file.path()).unwrap();
        let raw_text = String::from_utf8_lossy(&raw);
        assert!(!raw_text.contains("refresh-secret"));
        assert!(!raw_text.contains(&Id([9; 16]).to_string()));

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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_wrong_key_or_tampered_file_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file = StateFile::new(&path, StoreKey::generate().unwrap());
        file.save(&state()).unwrap();
        let other = StateFile::new(&path, StoreKey::generate().unwrap());
        assert!(matches!(other.load(), Err(Error::Crypto(_))));
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        assert!(matches!(file.load(), Err(Error::Crypto(_))));
        file.destroy().unwrap();
        assert!(!path.exists());
        file.destroy().unwrap();
    }

    #[test]
    fn seen_ids_are_bounded() {
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

    #[test]
    fn key_files_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let a = load_or_create_key(&path).unwrap();
        let b = load_or_create_key(&path).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        std::fs::write(&path, "short").unwrap();
        assert!(load_or_create_key(&path).is_err());
    }
}
