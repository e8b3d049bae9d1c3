//! The `quietline` command line: serve, migrate, admin, backup, healthcheck, config.

use crate::app::AppState;
use crate::clock::{SystemClock, hour};
use crate::config::Config;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use quietline_proto::wire::Role;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "quietline",
    about = "End-to-end encrypted message relay",
    version
)]
pub struct Cli {
    /// TOML config file (also QUIETLINE_CONFIG).
    #[arg(long, env = "QUIETLINE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (applies migrations first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 if the server on `listen` answers /healthz (for shell-less container images).
    Healthcheck,
    /// Write an online backup of the SQLite database to PATH.
    Backup { path: PathBuf },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print every key with its documentation and default.
    Example,
    /// Print the effective configuration, secrets redacted.
    Show,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Organisations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Members.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organisation; survivors reach it by its code.
    Create {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Invite a member; prints the one-time enrolment token.
    Invite {
        #[arg(long)]
        org: String,
        #[arg(long)]
        handle: String,
        #[arg(long, default_value = "advocate")]
        role: String,
    },
    /// Revoke a member: no more logins, every token dead, conversations back in the queue.
    Revoke {
        #[arg(long)]
        org: String,
        #[arg(long)]
        handle: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The blocking pool runs argon2 among other things; its size is capped so a flood of
    // blocking work cannot spawn threads without bound (tokio's default is 512).
    let blocking_threads = match load_config(cli.config.as_deref()) {
        Ok(c) => c.blocking_threads.max(1) as usize,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(Config::load(path, std::env::vars())?)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    run_to(cli, &mut out).await
}

/// Run a command, writing its output to `out` (tests capture it).
pub async fn run_to(cli: Cli, out: &mut (dyn Write + Send)) -> anyhow::Result<ExitCode> {
    let config = load_config(cli.config.as_deref())?;
    match cli.command {
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            write!(out, "{}", Config::example())?;
        }
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            writeln!(out, "{}", toml::to_string(&config)?)?;
        }
        Command::Healthcheck => return Ok(healthcheck(&config)),
        Command::Serve => {
            crate::serve::init_logging(&config.log_level);
            tracing::info!(config = %config.redacted(), "starting");
            let state = AppState::new(config, Arc::new(SystemClock)).await?;
            let running = crate::serve::start(state, crate::serve::shutdown_signal()).await?;
            tracing::info!(addr = %running.addr, "listening");
            running.task.await??;
        }
        Command::Migrate => {
            let state = AppState::new(config, Arc::new(SystemClock)).await?;
            state.store.close().await;
            writeln!(out, "migrations applied")?;
        }
        Command::Backup { path } => {
            if path.exists() {
                bail!("{} exists; choose a new path", path.display());
            }
            let state = AppState::new(config, Arc::new(SystemClock)).await?;
            if !state.store.backup_sqlite(&path).await? {
                bail!("backup is for SQLite; for PostgreSQL use pg_dump (see docs/OPERATIONS.md)");
            }
            state.store.close().await;
            writeln!(out, "backup written to {}", path.display())?;
        }
        Command::Admin { command } => {
            let state = AppState::new(config, Arc::new(SystemClock)).await?;
            let result = admin(&state, command, out).await;
            state.store.close().await;
            result?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn admin(
    state: &AppState,
    command: AdminCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match command {
        AdminCommand::Org {
            command: OrgCommand::Create { code, name },
        } => {
            let valid = (3..=64).contains(&code.len())
                && code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                bail!("the code must be 3-64 letters, digits, '-' or '_'");
            }
            if name.is_empty() || name.len() > 200 {
                bail!("the name must be 1-200 bytes");
            }
            let id = crate::random::id();
            state
                .store
                .create_org(&id.0, &code, &name, hour(state.now()))
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict => {
                        anyhow::anyhow!("an organisation with that code exists")
                    }
                    other => other.into(),
                })?;
            writeln!(out, "organisation {code} created")?;
        }
        AdminCommand::Member {
            command: MemberCommand::Invite { org, handle, role },
        } => {
            let role = Role::parse(&role).context("role must be advocate or supervisor")?;
            let o = state
                .store
                .org_by_code(&org)
                .await?
                .context("no such organisation")?;
            let org_id = crate::store::to_id(&o.id)?;
            let invited = crate::service::members::invite_in_org(state, org_id, &handle, role)
                .await
                .map_err(|e| anyhow::anyhow!("cannot invite: {}", e.code.default_message()))?;
            writeln!(out, "{}", invited.token)?;
            eprintln!(
                "one-time enrolment token for {handle} printed above; it expires in {} hours",
                invited.expires_in / 3600
            );
        }
        AdminCommand::Member {
            command: MemberCommand::Revoke { org, handle },
        } => {
            let m = state
                .store
                .member_by_handle(&org, &handle)
                .await?
                .context("no such member")?;
            state.store.revoke_member(&m.id).await?;
            let devices = state.store.member_devices(&m.id).await?;
            let ids: Vec<_> = devices
                .iter()
                .filter_map(|d| quietline_proto::Id::from_slice(d))
                .collect();
            crate::service::events::close_streams(state, &ids).await;
            writeln!(out, "member {handle} revoked")?;
        }
    }
    Ok(())
}

/// Plain HTTP/1.1 GET of /healthz on the configured address (under the route prefix, or on
/// the admin listener with `health_on_admin`), without an HTTP client.
pub fn healthcheck(config: &Config) -> ExitCode {
    let (listen, path) = if config.health_on_admin {
        (&config.admin_listen, "/healthz".to_owned())
    } else {
        (&config.listen, format!("{}/healthz", config.route_prefix))
    };
    let addr = listen
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let ok = (|| -> std::io::Result<bool> {
        let timeout = std::time::Duration::from_secs(3);
        let sock: std::net::SocketAddr = addr
            .parse()
            .map_err(|_| std::io::Error::other("listen is not an address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&sock, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = Vec::new();
        s.take(4096).read_to_end(&mut buf)?;
        Ok(buf.starts_with(b"HTTP/1.1 200"))
    })()
    .unwrap_or(false);
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("unhealthy");
        ExitCode::FAILURE
    }
}
