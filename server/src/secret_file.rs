//! The token signing key when none is configured: a file of 32 random bytes, `jwt_secret`
//! in the data directory, readable by the server's user only (mode 0600).
//!
//! It is kept out of the database on purpose: a database backup or a read-only dump must not
//! be enough to forge access tokens. `quietline backup` copies the database only, so the key
//! is in no backup it makes. A key that an older version kept in the database
//! (`server_secrets`) is moved into the file on the first start and deleted from the table,
//! so tokens issued before the upgrade keep working.

use crate::store::Store;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the file in the data directory.
pub const FILE_NAME: &str = "jwt_secret";
/// Name of the key in older versions' `server_secrets` table.
const LEGACY_NAME: &str = "jwt_hs256";

/// The signing key from `<data_dir>/jwt_secret`, created on first use (moving a key found in
/// the database there first).
pub async fn signing_secret(data_dir: &Path, store: &Store) -> anyhow::Result<Vec<u8>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join(FILE_NAME);
    if let Some(legacy) = store.take_legacy_secret(LEGACY_NAME).await? {
        if !path.exists()
            && let Err(e) = create_exclusive(&path, &legacy)
        {
            // Put it back rather than lose every session; the next start tries again.
            store.restore_legacy_secret(LEGACY_NAME, &legacy).await?;
            return Err(e);
        }
        tracing::info!("moved the token signing key out of the database into its key file");
    }
    if !path.exists() {
        let fresh = crate::random::bytes::<32>();
        match create_exclusive(&path, &fresh) {
            Ok(()) => {}
            // Another process on the same data directory was first; use its key.
            Err(_) if path.exists() => {}
            Err(e) => return Err(e),
        }
    }
    read_private(&path)
}

/// Write `bytes` to a new file at `path`, mode 0600, flushed to disk; never replaces an
/// existing file, and never leaves a partly written one at `path`.
fn create_exclusive(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.{}.tmp", path.display(), crate::random::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| -> std::io::Result<()> {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        // A hard link fails if `path` exists: the first writer wins, whole.
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    written.with_context(|| format!("cannot create {}", path.display()))
}

/// Read the key file, first tightening its mode to 0600 if someone loosened it.
fn read_private(path: &Path) -> anyhow::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!("the token key file was readable by others; set its mode to 0600");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() < 32 {
        anyhow::bail!("{} is shorter than 32 bytes", path.display());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_with_mode_0600_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        create_exclusive(&path, &[1; 32]).unwrap();
        assert!(create_exclusive(&path, &[2; 32]).is_err());
        assert_eq!(read_private(&path).unwrap(), vec![1; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            read_private(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "a loosened mode is tightened");
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
