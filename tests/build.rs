//! Marks the build when `QUIETLINE_TEST_POSTGRES_URL` is set, so the PostgreSQL half of
//! `on_both!` runs; without it those tests are reported as ignored, not as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(quietline_postgres)");
    println!("cargo::rerun-if-env-changed=QUIETLINE_TEST_POSTGRES_URL");
    if std::env::var("QUIETLINE_TEST_POSTGRES_URL").is_ok_and(|s| !s.is_empty()) {
        println!("cargo::rustc-cfg=quietline_postgres");
    }
}
