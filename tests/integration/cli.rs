//! The `quietline` command line: admin org/member, backup, healthcheck, config.

use clap::Parser;
use quietline_proto::wire::{Enroll, Role};
use quietline_server::cli::{Cli, run_to};
use quietline_tests::*;
use std::process::ExitCode;

async fn quietline(config: &std::path::Path, args: &[&str]) -> (anyhow::Result<ExitCode>, String) {
    let mut argv = vec!["quietline", "--config", config.to_str().unwrap()];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    let result = run_to(cli, &mut out).await;
    (result, String::from_utf8(out).unwrap())
}

async fn admin_commands_create_orgs_invite_and_revoke_members(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.toml");
    let mut toml = match (&s.data_dir, &s.database_url) {
        (Some(d), _) => format!("data_dir = {:?}\n", d.path().display().to_string()),
        (_, Some(url)) => format!(
            "database_url = {url:?}\ndata_dir = {:?}\n",
            s.key_dir.as_ref().unwrap().path().display().to_string()
        ),
        _ => unreachable!(),
    };
    toml.push_str(&format!(
        "listen = {:?}\n",
        s.base.trim_start_matches("http://")
    ));
    std::fs::write(&file, toml).unwrap();

    let (r, out) = quietline(
        &file,
        &[
            "admin",
            "org",
            "create",
            "--code",
            "safe-harbor",
            "--name",
            "Safe Harbor",
        ],
    )
    .await;
    r.unwrap();
    assert!(out.contains("created"));
    let (r, _) = quietline(
        &file,
        &[
            "admin",
            "org",
            "create",
            "--code",
            "safe-harbor",
            "--name",
            "Again",
        ],
    )
    .await;
    assert!(r.is_err(), "duplicate code refused");
    let (r, _) = quietline(
        &file,
        &["admin", "org", "create", "--code", "a b", "--name", "Bad"],
    )
    .await;
    assert!(r.is_err(), "bad code refused");
    let (r, out) = quietline(
        &file,
        &[
            "admin",
            "member",
            "invite",
            "--org",
            "safe-harbor",
            "--handle",
            "ana",
            "--role",
            "supervisor",
        ],
    )
    .await;
    r.unwrap();
    let token = out.trim().to_owned();
    assert_eq!(token.len(), 43);
    let enrolled = s
        .api()
        .enroll(&Enroll {
            token,
            password: "a long enough password".into(),
        })
        .await
        .unwrap();
    let logged = s
        .login(
            "safe-harbor",
            "ana",
            "a long enough password",
            &enrolled.totp_uri,
            None,
        )
        .await
        .unwrap();
    assert_eq!(logged.role, Role::Supervisor);
    let (r, _) = quietline(
        &file,
        &[
            "admin", "member", "invite", "--org", "nowhere", "--handle", "x",
        ],
    )
    .await;
    assert!(r.is_err());
    let (r, out) = quietline(
        &file,
        &[
            "admin",
            "member",
            "revoke",
            "--org",
            "safe-harbor",
            "--handle",
            "ana",
        ],
    )
    .await;
    r.unwrap();
    assert!(out.contains("revoked"));
    let api = s.api().with_token(logged.tokens.access_token.as_str());
    assert_eq!(api.org_settings().await.unwrap_err().status(), Some(401));

    // healthcheck against the running server, and against nothing.
    let cfg = quietline_server::config::Config::load(Some(&file), Vec::new()).unwrap();
    assert_eq!(quietline_server::cli::healthcheck(&cfg), ExitCode::SUCCESS);
    let mut down = cfg.clone();
    down.listen = "127.0.0.1:9".into();
    assert_eq!(quietline_server::cli::healthcheck(&down), ExitCode::FAILURE);

    // backup (SQLite): a consistent copy that opens and has the organisation.
    let dest = dir.path().join("backup.db");
    let (r, out) = quietline(&file, &["backup", dest.to_str().unwrap()]).await;
    match backend {
        Backend::Sqlite => {
            r.unwrap();
            assert!(out.contains("backup written"));
            let restored_dir = tempfile::tempdir().unwrap();
            std::fs::copy(&dest, restored_dir.path().join("quietline.db")).unwrap();
            let restored = quietline_server::store::Store::open_sqlite(restored_dir.path())
                .await
                .unwrap();
            assert!(restored.org_by_code("safe-harbor").await.unwrap().is_some());
            let (r, _) = quietline(&file, &["backup", dest.to_str().unwrap()]).await;
            assert!(r.is_err(), "never overwrites");
        }
        Backend::Postgres => assert!(r.is_err(), "PostgreSQL backups are pg_dump's job"),
    }
    let (r, out) = quietline(&file, &["config", "show"]).await;
    r.unwrap();
    assert!(!out.contains("postgres://"), "secrets redacted");
    s.stop().await;
}

quietline_tests::on_both!(admin_commands_create_orgs_invite_and_revoke_members);
