//! The `quietline` binary: all of it lives in [`quietline_server::cli`].

fn main() -> std::process::ExitCode {
    quietline_server::cli::main()
}
