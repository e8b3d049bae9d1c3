//! `quietline-cli`: a terminal client for demos and manual testing of a relay.
//!
//! `survivor` opens contact with an organisation and chats; `advocate` logs in with password
//! and TOTP, registers a device, goes on duty, claims and chats; `enroll` accepts an
//! invitation. Every message is end-to-end encrypted by [`quietline_client::SecureClient`];
//! the device's state lives in a sealed file (docs/CLIENT.md).

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use quietline_client::state::load_or_create_key;
use quietline_client::{
    Api, Error as SdkError, ExitMode, Incoming, SecureClient, StateFile, Stream,
};
use quietline_proto::wire::{
    Conversation, ConversationState, Enroll, EventKind, Login, OpenConversation, ServerFrame,
};
use quietline_proto::{ErrorCode, Id};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

#[derive(Parser, Debug)]
#[command(
    name = "quietline-cli",
    about = "Terminal client for a Quietline relay",
    version
)]
struct Cli {
    /// Base URL of the relay, route prefix included (for example http://127.0.0.1:8080/x7).
    #[arg(
        long,
        env = "QUIETLINE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reach an organisation as a survivor and chat (lines from stdin are sent).
    Survivor(SurvivorArgs),
    /// Log in as an advocate, go on duty, claim conversations and chat.
    Advocate(AdvocateArgs),
    /// Accept an invitation: set a password, print the TOTP URI for the authenticator.
    Enroll(EnrollArgs),
    /// Check that the relay answers /healthz and /readyz.
    Health,
}

#[derive(Args, Debug)]
struct StateArgs {
    /// Sealed state file of this device (created on first run).
    #[arg(long)]
    state: PathBuf,
    /// File with the 32-byte key sealing the state (default: the state path + `.key`;
    /// created if missing). Keep it somewhere else than the state in real use.
    #[arg(long)]
    state_key: Option<PathBuf>,
}

impl StateArgs {
    fn key_path(&self) -> PathBuf {
        match &self.state_key {
            Some(p) => p.clone(),
            None => {
                let mut p = self.state.clone().into_os_string();
                p.push(".key");
                PathBuf::from(p)
            }
        }
    }

    fn file(&self) -> Result<StateFile> {
        let key_path = self.key_path();
        let key = load_or_create_key(&key_path)
            .with_context(|| format!("state key {}", key_path.display()))?;
        Ok(StateFile::new(&self.state, key))
    }
}

#[derive(Args, Debug)]
struct SurvivorArgs {
    /// The organisation's code.
    #[arg(long)]
    org: String,
    #[command(flatten)]
    state: StateArgs,
    /// Ask to be seen first.
    #[arg(long)]
    urgent: bool,
    /// Preferred language tag, such as `en` or `es`.
    #[arg(long)]
    language: Option<String>,
}

#[derive(Args, Debug)]
struct AdvocateArgs {
    /// The organisation's code.
    #[arg(long)]
    org: String,
    /// Your handle in the organisation.
    #[arg(long)]
    handle: String,
    /// File holding your password (first line).
    #[arg(long)]
    password_file: PathBuf,
    /// TOTP secret, base32 (as shown by authenticator apps).
    #[arg(long, conflicts_with_all = ["totp_uri", "totp_uri_file"])]
    totp_secret: Option<String>,
    /// The otpauth:// URI printed at enrolment.
    #[arg(long, conflicts_with = "totp_uri_file")]
    totp_uri: Option<String>,
    /// File holding the otpauth:// URI.
    #[arg(long)]
    totp_uri_file: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    /// Claim the first waiting conversation whenever none is selected.
    #[arg(long)]
    auto_claim: bool,
}

#[derive(Args, Debug)]
struct EnrollArgs {
    /// The one-time enrolment token from `quietline admin member invite` or an invitation.
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// File holding the enrolment token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// File holding the new password (first line, at least 12 characters).
    #[arg(long)]
    password_file: PathBuf,
    /// Also write the otpauth:// URI to this file (mode 0600).
    #[arg(long)]
    totp_uri_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Survivor(args) => survivor(&cli.server, args).await,
        Command::Advocate(args) => advocate(&cli.server, args).await,
        Command::Enroll(args) => enroll(&cli.server, args).await,
        Command::Health => health(&cli.server).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- helpers

fn read_secret_line(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(Zeroizing::new(line.to_owned()))
}

fn short(id: Id) -> String {
    id.to_string().chars().take(6).collect()
}

fn info(msg: impl AsRef<str>) {
    println!("-- {}", msg.as_ref());
}

/// Lines typed on stdin, read on a thread of their own; the channel closes at end of input.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Connect the stream, retrying with backoff while the relay is unreachable.
async fn connect(client: &mut SecureClient) -> Result<Stream> {
    let mut delay = Duration::from_millis(500);
    loop {
        match client.connect().await {
            Ok(s) => return Ok(s),
            Err(e) if e.status().is_none() => {
                info(format!("relay unreachable ({e}); retrying"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(15));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn describe_event(kind: EventKind) -> &'static str {
    match kind {
        EventKind::AdvocateAvailable => "an advocate is available now",
        EventKind::QueueChanged => "the queue changed",
        EventKind::RecipientsChanged => "the people in this conversation changed",
        EventKind::TransferredToYou => "a conversation was transferred to you",
        EventKind::ConversationClosed => "the conversation was closed",
        EventKind::SurvivorLeft => "the survivor left quickly: do not write until they return",
        EventKind::SurvivorReturned => "the survivor is back",
        EventKind::EndedBySurvivor => "the survivor ended the conversation",
        EventKind::PossibleDuress => "POSSIBLE DURESS: the survivor wiped under a duress code",
    }
}

// ---------------------------------------------------------------- health

async fn health(server: &str) -> Result<()> {
    let api = Api::new(server)?;
    let h = api.healthz().await?;
    println!("healthz: {}", h.status);
    let r = api.readyz().await?;
    println!("readyz: {}", r.status);
    Ok(())
}

// ---------------------------------------------------------------- enroll

async fn enroll(server: &str, args: EnrollArgs) -> Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Zeroizing::new(t.clone()),
        (None, Some(f)) => read_secret_line(f)?,
        (None, None) => bail!("give --token or --token-file"),
    };
    let password = read_secret_line(&args.password_file)?;
    let api = Api::new(server)?;
    let enrolled = api
        .enroll(&Enroll {
            token: token.to_string(),
            password: password.to_string(),
        })
        .await?;
    println!("member id: {}", enrolled.member_id);
    println!("add this to your authenticator app:");
    println!("{}", enrolled.totp_uri);
    if let Some(out) = &args.totp_uri_out {
        quietline_client::state::atomic_write(out, enrolled.totp_uri.as_bytes())?;
        info(format!("TOTP URI written to {}", out.display()));
    }
    Ok(())
}

/// Overwrite a file with zeros and remove it; a missing file is fine.
fn destroy_file(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    if let Ok(meta) = std::fs::metadata(path) {
        let zeros = vec![0u8; usize::try_from(meta.len()).unwrap_or(0)];
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(&zeros)?;
        f.sync_all()?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------- survivor

async fn survivor(server: &str, args: SurvivorArgs) -> Result<()> {
    let relay = Api::new(server)?;
    let file = args.state.file()?;
    let mut client = if file.exists() {
        let c = SecureClient::load(&relay, file).context("opening the state file")?;
        info("device state loaded");
        c
    } else {
        info("registering this device (solving the proof of work)...");
        let mut c = SecureClient::register_survivor(&relay).await?;
        c.persist_to(file)?;
        info("device registered");
        c
    };
    // A conversation closed while this device was away is forgotten here.
    client.prune_conversations().await?;
    let known = client.state().conversations().next();
    let mut conversation = match known {
        Some(c) => {
            info(format!("continuing conversation {}", short(c)));
            c
        }
        None => open_contact(&mut client, &args).await?,
    };
    info("type a message and press enter; /safety, /exit hide|wipe|duress, /quit");

    let mut stream = connect(&mut client).await?;
    for inc in client.poll().await? {
        show_survivor(&inc);
    }
    let mut lines = stdin_lines();
    let mut pending: VecDeque<String> = VecDeque::new();
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let line = line.trim().to_owned();
                if line.is_empty() {
                    continue;
                }
                match line.as_str() {
                    "/quit" => break,
                    "/safety" => {
                        for (d, n) in client.safety_numbers(conversation) {
                            println!("-- safety number with {}: {n}", short(d));
                        }
                    }
                    "/exit hide" | "/exit wipe" | "/exit duress" => {
                        let mode = match line.as_str() {
                            "/exit hide" => ExitMode::Hide,
                            "/exit wipe" => ExitMode::Wipe,
                            _ => ExitMode::Duress,
                        };
                        if let Err(e) = client.quick_exit(mode).await {
                            info(format!("quick exit: {e}"));
                        }
                        // The SDK destroyed the state file; its key file goes too.
                        if matches!(mode, ExitMode::Wipe | ExitMode::Duress)
                            && let Err(e) = destroy_file(&args.state.key_path())
                        {
                            info(format!("quick exit: the key file: {e}"));
                        }
                        return Ok(());
                    }
                    text => {
                        if !client.state().conversations().any(|c| c == conversation) {
                            conversation = open_contact(&mut client, &args).await?;
                        }
                        pending.push_back(text.to_owned());
                        flush(&mut client, conversation, &mut pending).await?;
                    }
                }
            }
            frame = stream.next() => {
                match frame {
                    Ok(Some(frame)) => {
                        let wake = matches!(&frame, ServerFrame::Event(_));
                        if let Some(inc) = client.handle_frame(&mut stream, frame).await? {
                            show_survivor(&inc);
                        }
                        let open = client.state().conversations().any(|c| c == conversation);
                        if wake && !open {
                            info("the conversation has ended; your next message opens a new contact");
                            pending.clear();
                        }
                        if wake && open && !pending.is_empty() {
                            flush(&mut client, conversation, &mut pending).await?;
                        }
                    }
                    Ok(None) | Err(SdkError::WebSocket(_)) => {
                        info("stream closed; reconnecting");
                        stream = connect(&mut client).await?;
                        for inc in client.poll().await? {
                            show_survivor(&inc);
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let _ = stream.close().await;
    Ok(())
}

/// Open contact with the organisation and say where the survivor stands in the queue.
async fn open_contact(client: &mut SecureClient, args: &SurvivorArgs) -> Result<Id> {
    let opened = client
        .open_conversation(
            &args.org,
            &OpenConversation {
                urgent: args.urgent,
                language: args.language.clone(),
            },
        )
        .await?;
    info(format!(
        "contact opened; you are number {} in the queue",
        opened.queue_position
    ));
    if let Some(m) = &opened.out_of_hours_message {
        info(format!("nobody is on duty right now: {m}"));
    }
    Ok(opened.conversation.id)
}

/// Send queued lines; keep them queued while nobody can receive.
async fn flush(
    client: &mut SecureClient,
    conversation: Id,
    pending: &mut VecDeque<String>,
) -> Result<()> {
    while let Some(text) = pending.front() {
        match client.send_text(conversation, text).await {
            Ok(sent) => {
                info(format!("sent to {} device(s)", sent.devices.len()));
                pending.pop_front();
            }
            Err(SdkError::NoRecipients) => {
                info("nobody is available yet; your message will be sent when someone is");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn show_survivor(inc: &Incoming) {
    match inc {
        Incoming::Message(m) => match m.text() {
            Some(t) => println!("<< advocate: {t}"),
            None => info("a message of a kind this client cannot show"),
        },
        Incoming::Event(ev) => info(describe_event(ev.kind)),
        Incoming::Undecryptable { error, .. } => {
            info(format!("a message could not be read ({error})"))
        }
    }
}

// ---------------------------------------------------------------- advocate

struct Desk {
    member_id: Id,
    current: Option<Id>,
    queue: Vec<Conversation>,
    auto_claim: bool,
}

fn totp_code(args: &AdvocateArgs) -> Result<String> {
    use totp_rs::{Algorithm, Secret, TOTP};
    let totp = if let Some(secret) = &args.totp_secret {
        let bytes = Secret::Encoded(secret.trim().replace(' ', "").to_uppercase())
            .to_bytes()
            .map_err(|e| anyhow!("TOTP secret: {e:?}"))?;
        TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new())
    } else {
        let uri = match (&args.totp_uri, &args.totp_uri_file) {
            (Some(u), _) => Zeroizing::new(u.clone()),
            (None, Some(f)) => read_secret_line(f)?,
            (None, None) => bail!("give --totp-secret, --totp-uri or --totp-uri-file"),
        };
        TOTP::from_url_unchecked(uri.as_str()).map_err(|e| anyhow!("TOTP URI: {e:?}"))?
    };
    Ok(totp.generate_current()?)
}

async fn login(
    relay: &Api,
    args: &AdvocateArgs,
    device: Option<Id>,
) -> Result<quietline_proto::wire::LoggedIn> {
    let password = read_secret_line(&args.password_file)?;
    let logged = relay
        .login(&Login {
            org: args.org.clone(),
            handle: args.handle.clone(),
            password: password.to_string(),
            totp: totp_code(args)?,
            device_id: device,
        })
        .await;
    match logged {
        Ok(l) => Ok(l),
        Err(e) if e.is(ErrorCode::Unauthorized) => Err(anyhow!(
            "login refused: check the handle, password and TOTP (a code works once; wait for the next one)"
        )),
        Err(e) => Err(e.into()),
    }
}

async fn advocate(server: &str, args: AdvocateArgs) -> Result<()> {
    let relay = Api::new(server)?;
    let file = args.state.file()?;
    let (mut client, member_id) = if file.exists() {
        let mut c = SecureClient::load(&relay, file).context("opening the state file")?;
        let logged = login(&relay, &args, Some(c.device_id())).await?;
        c.adopt_tokens(&logged.tokens)?;
        info(format!(
            "logged in as {} ({})",
            args.handle,
            logged.role.as_str()
        ));
        (c, logged.member_id)
    } else {
        let logged = login(&relay, &args, None).await?;
        let member = relay.with_token(logged.tokens.access_token.as_str());
        let mut c = SecureClient::register_member_device(&member).await?;
        c.persist_to(file)?;
        info(format!(
            "logged in as {} ({}); this device is registered",
            args.handle,
            logged.role.as_str()
        ));
        (c, logged.member_id)
    };
    client.replenish_prekeys(20, 100).await?;
    client.api().await?.set_duty(true).await?;
    info("you are on duty");
    info(
        "commands: /queue, /claim [N], /use N, /transfer MEMBER_ID, /close, /duty on|off, /safety, /quit; other lines are sent to the selected conversation",
    );

    let mut desk = Desk {
        member_id,
        current: None,
        queue: Vec::new(),
        auto_claim: args.auto_claim,
    };
    let mut stream = connect(&mut client).await?;
    for inc in client.poll().await? {
        show_advocate(&mut desk, &inc);
    }
    refresh_queue(&mut client, &mut desk, true).await?;
    let mut lines = stdin_lines();
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let line = line.trim().to_owned();
                if line.is_empty() {
                    continue;
                }
                if line == "/quit" {
                    break;
                }
                if let Err(e) = advocate_command(&mut client, &mut desk, &line).await {
                    info(format!("{e:#}"));
                }
            }
            frame = stream.next() => {
                match frame {
                    Ok(Some(frame)) => {
                        let queue_event = matches!(
                            &frame,
                            ServerFrame::Event(ev) if matches!(ev.kind, EventKind::QueueChanged | EventKind::TransferredToYou | EventKind::ConversationClosed)
                        );
                        if let Some(inc) = client.handle_frame(&mut stream, frame).await? {
                            show_advocate(&mut desk, &inc);
                        }
                        if queue_event {
                            refresh_queue(&mut client, &mut desk, true).await?;
                        }
                    }
                    Ok(None) | Err(SdkError::WebSocket(_)) => {
                        info("stream closed; reconnecting");
                        stream = connect(&mut client).await?;
                        for inc in client.poll().await? {
                            show_advocate(&mut desk, &inc);
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if let Ok(api) = client.api().await {
        let _ = api.set_duty(false).await;
        info("off duty");
    }
    let _ = stream.close().await;
    Ok(())
}

fn pick(desk: &Desk, arg: &str) -> Result<Id> {
    if let Ok(n) = arg.parse::<usize>() {
        return desk
            .queue
            .get(n.wrapping_sub(1))
            .map(|c| c.id)
            .ok_or_else(|| anyhow!("no conversation number {n}; see /queue"));
    }
    desk.queue
        .iter()
        .map(|c| c.id)
        .find(|id| id.to_string().starts_with(arg))
        .ok_or_else(|| anyhow!("no conversation {arg}; see /queue"))
}

async fn refresh_queue(client: &mut SecureClient, desk: &mut Desk, print: bool) -> Result<()> {
    desk.queue = client.api().await?.conversations().await?.conversations;
    if let Some(c) = desk.current
        && !desk.queue.iter().any(|q| q.id == c)
    {
        desk.current = None;
    }
    if print {
        if desk.queue.is_empty() {
            info("queue: empty");
        }
        for (i, c) in desk.queue.iter().enumerate() {
            let who = match c.assigned_to {
                Some(m) if m == desk.member_id => "yours",
                Some(_) => "a colleague's",
                None => "waiting",
            };
            let mark = if desk.current == Some(c.id) { "*" } else { " " };
            println!(
                "{mark} {}. {} {}{}{}",
                i + 1,
                short(c.id),
                who,
                if c.urgent { ", URGENT" } else { "" },
                c.language
                    .as_deref()
                    .map(|l| format!(", language {l}"))
                    .unwrap_or_default(),
            );
        }
    }
    let waiting = desk
        .queue
        .iter()
        .find(|c| c.state == ConversationState::Waiting)
        .map(|c| c.id);
    if desk.auto_claim
        && desk.current.is_none()
        && let Some(c) = waiting
    {
        match client.api().await?.claim(c).await {
            Ok(_) => {
                desk.current = Some(c);
                info(format!("claimed {}", short(c)));
            }
            Err(e) if e.is(ErrorCode::Conflict) => info("someone else claimed it first"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn advocate_command(client: &mut SecureClient, desk: &mut Desk, line: &str) -> Result<()> {
    let mut parts = line.split_whitespace();
    let cmd = parts.next().unwrap_or("");
    let arg = parts.next();
    match cmd {
        "/queue" => refresh_queue(client, desk, true).await?,
        "/claim" => {
            refresh_queue(client, desk, false).await?;
            let id = match arg {
                Some(a) => pick(desk, a)?,
                None => desk
                    .queue
                    .iter()
                    .find(|c| c.state == ConversationState::Waiting)
                    .map(|c| c.id)
                    .ok_or_else(|| anyhow!("nobody is waiting"))?,
            };
            client.api().await?.claim(id).await?;
            desk.current = Some(id);
            info(format!(
                "claimed {}; you are talking with them now",
                short(id)
            ));
        }
        "/use" => {
            refresh_queue(client, desk, false).await?;
            let id = pick(desk, arg.ok_or_else(|| anyhow!("/use N"))?)?;
            desk.current = Some(id);
            info(format!("now talking in {}", short(id)));
        }
        "/transfer" => {
            let conv = desk
                .current
                .ok_or_else(|| anyhow!("no conversation selected"))?;
            let to: Id = arg
                .ok_or_else(|| anyhow!("/transfer MEMBER_ID"))?
                .parse()
                .map_err(|_| anyhow!("not a member id"))?;
            client.api().await?.transfer(conv, to).await?;
            desk.current = None;
            info(format!("{} transferred", short(conv)));
        }
        "/close" => {
            let conv = desk
                .current
                .ok_or_else(|| anyhow!("no conversation selected"))?;
            client.close(conv).await?;
            desk.current = None;
            info(format!("{} closed and purged", short(conv)));
        }
        "/duty" => {
            let on = match arg {
                Some("on") => true,
                Some("off") => false,
                _ => bail!("/duty on|off"),
            };
            client.api().await?.set_duty(on).await?;
            info(if on { "on duty" } else { "off duty" });
        }
        "/safety" => {
            let conv = desk
                .current
                .ok_or_else(|| anyhow!("no conversation selected"))?;
            for (d, n) in client.safety_numbers(conv) {
                println!("-- safety number with {}: {n}", short(d));
            }
        }
        c if c.starts_with('/') => bail!("unknown command {c}"),
        _ => {
            let conv = desk
                .current
                .ok_or_else(|| anyhow!("claim a conversation first (/claim)"))?;
            match client.send_text(conv, line).await {
                Ok(sent) => info(format!("sent to {} device(s)", sent.devices.len())),
                Err(SdkError::NoRecipients) => bail!("nobody to send to in this conversation"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn show_advocate(desk: &mut Desk, inc: &Incoming) {
    match inc {
        Incoming::Message(m) => {
            let text = m
                .text()
                .unwrap_or("(a message of a kind this client cannot show)");
            println!("<< [{}] {text}", short(m.conversation_id));
        }
        Incoming::Event(ev) => {
            let c = ev.conversation_id.map(short).unwrap_or_default();
            info(format!("[{c}] {}", describe_event(ev.kind)));
            if matches!(
                ev.kind,
                EventKind::ConversationClosed | EventKind::EndedBySurvivor
            ) && desk.current == ev.conversation_id
            {
                desk.current = None;
            }
        }
        Incoming::Undecryptable {
            conversation_id,
            error,
            ..
        } => info(format!(
            "[{}] a message could not be read ({error})",
            short(*conversation_id)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "quietline-cli",
            "--server",
            "http://127.0.0.1:8080/x7",
            "advocate",
            "--org",
            "safe-harbor",
            "--handle",
            "alice",
            "--password-file",
            "pw",
            "--totp-uri",
            "otpauth://totp/x?secret=AAAA",
            "--state",
            "alice.state",
        ])
        .unwrap();
        assert_eq!(cli.server, "http://127.0.0.1:8080/x7");
        assert!(matches!(cli.command, Command::Advocate(_)));
        assert!(
            Cli::try_parse_from([
                "quietline-cli",
                "advocate",
                "--org",
                "o",
                "--handle",
                "h",
                "--password-file",
                "p",
                "--totp-uri",
                "u",
                "--totp-secret",
                "s",
                "--state",
                "s"
            ])
            .is_err()
        );
    }

    #[test]
    fn the_key_file_is_destroyed_and_a_missing_one_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let args = StateArgs {
            state: dir.path().join("device.state"),
            state_key: None,
        };
        let key = args.key_path();
        assert_eq!(key, dir.path().join("device.state.key"));
        args.file().unwrap();
        assert!(key.exists(), "created on first use");
        destroy_file(&key).unwrap();
        assert!(!key.exists());
        destroy_file(&key).unwrap();
        let elsewhere = StateArgs {
            state: dir.path().join("device.state"),
            state_key: Some(dir.path().join("k")),
        };
        assert_eq!(elsewhere.key_path(), dir.path().join("k"));
    }

    #[test]
    fn totp_codes_come_from_a_secret_or_a_uri() {
        let base = |secret: Option<&str>, uri: Option<&str>| AdvocateArgs {
            org: "o".into(),
            handle: "h".into(),
            password_file: "p".into(),
            totp_secret: secret.map(str::to_owned),
            totp_uri: uri.map(str::to_owned),
            totp_uri_file: None,
            state: StateArgs {
                state: "s".into(),
                state_key: None,
            },
            auto_claim: false,
        };
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let a = totp_code(&base(Some(secret), None)).unwrap();
        let uri = format!("otpauth://totp/Org:alice?secret={secret}&issuer=Org");
        let b = totp_code(&base(None, Some(&uri))).unwrap();
        assert_eq!(a.len(), 6);
        // Same secret, same 30-second step (retry once across a step boundary).
        if a != b {
            let a = totp_code(&base(Some(secret), None)).unwrap();
            assert_eq!(a, b);
        }
    }
}
