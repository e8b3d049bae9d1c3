//! The token signing key is kept in a 0600 file in the data directory, never in the
//! database (so never in a backup), survives restarts, and a key older versions kept in the
//! database is moved out.

use quietline_proto::wire::Role;
use quietline_tests::*;

fn key_file(s: &TestServer) -> std::path::PathBuf {
    s.state
        .config
        .data_dir
        .join(quietline_server::secret_file::FILE_NAME)
}

async fn the_signing_key_is_a_private_file_never_in_the_database_or_a_backup(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let ana = s.member("hotline", "ana", Role::Advocate).await;
    let key = std::fs::read(key_file(&s)).unwrap();
    assert_eq!(key.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_file(&s))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "readable by the server's user only");
    }
    let forms = [hex(&key), quietline_proto::b64::encode(&key)];
    for (table, row) in s.store().dump_all_tables().await.unwrap() {
        assert_ne!(table, "server_secrets", "the secrets table is empty: {row}");
        for f in &forms {
            assert!(!row.contains(f.as_str()), "{table} holds the signing key");
        }
    }
    // `quietline backup` (SQLite): the backup file has no trace of the key.
    if s.backend == Backend::Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.db");
        assert!(s.store().backup_sqlite(&path).await.unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 4096);
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_slice()));
    }
    // A fresh start on the same data directory signs and verifies with the same key: a
    // token from before still works.
    let restarted = s.replica().await;
    let api = quietline_client::Api::new(&restarted.base)
        .unwrap()
        .with_token(ana.api.token().unwrap().as_str());
    api.inbox().await.unwrap();
    restarted.stop().await;
    s.stop().await;
}

async fn a_key_kept_in_the_database_by_an_older_version_is_moved_to_the_file(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let ana = s.member("hotline", "ana", Role::Advocate).await;
    // As an older version left it: the key in `server_secrets`, no file.
    let key = std::fs::read(key_file(&s)).unwrap();
    std::fs::remove_file(key_file(&s)).unwrap();
    s.store()
        .restore_legacy_secret("jwt_hs256", &key)
        .await
        .unwrap();
    assert!(
        s.store()
            .dump_all_tables()
            .await
            .unwrap()
            .iter()
            .any(|(t, _)| t == "server_secrets")
    );

    let upgraded = s.replica().await;
    assert_eq!(
        std::fs::read(key_file(&s)).unwrap(),
        key,
        "moved, not replaced"
    );
    assert!(
        !s.store()
            .dump_all_tables()
            .await
            .unwrap()
            .iter()
            .any(|(t, _)| t == "server_secrets"),
        "and deleted from the database"
    );
    let api = quietline_client::Api::new(&upgraded.base)
        .unwrap()
        .with_token(ana.api.token().unwrap().as_str());
    api.inbox().await.unwrap();
    upgraded.stop().await;
    s.stop().await;
}

quietline_tests::on_both!(
    the_signing_key_is_a_private_file_never_in_the_database_or_a_backup,
    a_key_kept_in_the_database_by_an_older_version_is_moved_to_the_file,
);
