//! Architecture invariants checked on the build itself.

/// The server has no decrypt code: it builds `quietline-proto` without the `crypto`
/// feature (ARCHITECTURE.md). Asked of cargo's own feature resolution for the server
/// package alone, as `cargo build -p quietline-server` resolves it.
#[test]
fn the_server_builds_proto_without_crypto() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let features = |package: &str| -> String {
        let out = std::process::Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["tree", "--offline", "--locked", "-p", package])
            .args(["-e", "normal,build,features", "-i", "quietline-proto"])
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let server = features("quietline-server");
    assert!(
        server.contains("quietline-proto feature \"openapi\""),
        "the tree was read: {server}"
    );
    assert!(
        !server.contains("feature \"crypto\""),
        "the server pulls in proto's crypto:\n{server}"
    );
    // The check can see the feature where it is on: the client builds proto with it.
    let client = features("quietline-client");
    assert!(
        client.contains("quietline-proto feature \"crypto\""),
        "{client}"
    );
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Only `store/` runs SQL (the PostgreSQL LISTEN connection in `hub` excepted: it runs no
/// statement of ours); `service/` uses nothing of HTTP.
#[test]
fn only_the_store_speaks_sql_and_services_know_no_http() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10);
    let mut problems = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        if !rel.starts_with("store") {
            for sql in [
                "sqlx::query",
                "query_scalar(",
                "query_as(",
                "sqlx::raw_sql",
                "AssertSqlSafe",
            ] {
                if text.contains(sql) {
                    problems.push(format!("{rel} runs SQL ({sql})"));
                }
            }
        }
        if rel.starts_with("service") {
            for http in ["axum", "crate::http", "StatusCode", "hyper"] {
                if text.contains(http) {
                    problems.push(format!("{rel} uses HTTP ({http})"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
