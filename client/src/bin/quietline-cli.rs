//! `quietline-cli`: placeholder until the CLI lands.
fn main() {}
