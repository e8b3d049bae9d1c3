//! `quietline-cli`: a terminal client for demos and manual testing of a relay.
//!
//! `survivor` opens contact with an organisation and chats; `advocate` logs in with password
//! and TOTP, registers a device, goes on duty, claims and chats; `enroll` accepts an
//! invitation. Every message is end-to-end encrypted by [`quietline_client::SecureClient`];
//! the device's state lives in a sealed file (docs/CLIENT.md).

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use quietline_client::{
    Api, Error as SdkError, ExitMode, Incoming, SecureClient, StateFile, Stream,
};
use quietline_proto::wire::{
    Conversation, ConversationState, Enroll, EventKind, Login, OpenConversation, ServerFrame,
};
use quietline_proto::{ErrorCode, Id};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;
use subtle::ConstantTimeEq;
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
    /// Supervisors: the organisation key and device certificates.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Check that the relay answers /healthz and /readyz.
    Health,
}

#[derive(Args, Debug)]
struct StateArgs {
    /// Sealed state file of this device (created on first run; `<state>.lock` beside it holds
    /// the lock while a client uses the state).
    #[arg(long)]
    state: PathBuf,
    /// File whose first line is the passphrase sealing the state. Without it the passphrase
    /// is asked on the terminal (twice when the state is new). Keep the file off the device
    /// that holds the state in real use: a passphrase beside the state protects nothing.
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

impl StateArgs {
    /// The passphrase from `--passphrase-file`, or typed on the terminal without echo.
    fn passphrase(&self, new: bool) -> Result<Zeroizing<String>> {
        if let Some(path) = &self.passphrase_file {
            return read_secret_line(path);
        }
        if !std::io::stdin().is_terminal() {
            bail!("give --passphrase-file: there is no terminal to ask for the state passphrase");
        }
        let prompt = if new {
            "passphrase for the new state: "
        } else {
            "state passphrase: "
        };
        let first = Zeroizing::new(rpassword::prompt_password(prompt)?);
        if first.is_empty() {
            bail!("the passphrase is empty");
        }
        if new {
            let again = Zeroizing::new(rpassword::prompt_password("the same passphrase again: ")?);
            if !bool::from(first.as_bytes().ct_eq(again.as_bytes())) {
                bail!("the two passphrases differ");
            }
        }
        Ok(first)
    }

    /// Open the existing state with its passphrase.
    fn open(&self) -> Result<StateFile> {
        let passphrase = self.passphrase(false)?;
        StateFile::open_with_passphrase(&self.state, passphrase.as_bytes())
            .map_err(state_error)
            .with_context(|| format!("opening the state file {}", self.state.display()))
    }

    /// Take the path for a new state (locked, key derived) before the device registers, so
    /// that a registration is never lost to a state that cannot be written.
    fn create(&self) -> Result<StateFile> {
        let passphrase = self.passphrase(true)?;
        StateFile::create_with_passphrase(&self.state, passphrase.as_bytes())
            .map_err(state_error)
            .with_context(|| format!("creating the state file {}", self.state.display()))
    }
}

/// The SDK's state errors, with what to do about them.
fn state_error(e: SdkError) -> anyhow::Error {
    match e {
        SdkError::StateLocked => {
            anyhow!("{e}: another quietline-cli is running with this --state; stop it first")
        }
        other => other.into(),
    }
}

#[derive(Args, Debug)]
struct SurvivorArgs {
    /// The organisation's code.
    #[arg(long)]
    org: String,
    /// The organisation's public key (base64url, as the organisation publishes it). Without
    /// it the key the relay serves is trusted on first use and its fingerprint is shown.
    #[arg(long)]
    org_key: Option<String>,
    #[command(flatten)]
    state: StateArgs,
    /// Ask to be seen first.
    #[arg(long)]
    urgent: bool,
    /// Preferred language tag, such as `en` or `es`.
    #[arg(long)]
    language: Option<String>,
}

/// How a member signs in.
#[derive(Args, Debug)]
struct Credentials {
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
}

#[derive(Subcommand, Debug)]
enum OrgCommand {
    /// Create the organisation key (sealed under a passphrase in --key-file; the private
    /// half never leaves this machine), register its public half, print its fingerprint.
    KeyInit(OrgKeyArgs),
    /// Print the fingerprint of the organisation key the relay serves.
    KeyShow {
        /// The organisation's code.
        #[arg(long)]
        org: String,
    },
    /// Certify member devices that are waiting for a certificate (all, or those given).
    Certify(CertifyArgs),
}

#[derive(Args, Debug)]
struct OrgKeyArgs {
    #[command(flatten)]
    who: Credentials,
    /// File holding the sealed organisation key.
    #[arg(long)]
    key_file: PathBuf,
    /// File holding the passphrase that seals it (first line, at least 12 characters).
    #[arg(long)]
    key_passphrase_file: PathBuf,
}

#[derive(Args, Debug)]
struct CertifyArgs {
    #[command(flatten)]
    key: OrgKeyArgs,
    /// Certify only this device (repeat for several); check with the member that it is theirs.
    #[arg(long = "device")]
    devices: Vec<Id>,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

#[derive(Args, Debug)]
struct AdvocateArgs {
    #[command(flatten)]
    who: Credentials,
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
        Command::Org(cmd) => org(&cli.server, cmd).await,
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

/// A refusal by the trust rules: someone may be impersonating a device. Loud, never silent.
fn warn(what: &dyn std::fmt::Display) {
    println!(
        "!! WARNING: {what}. Someone may be trying to listen in; compare safety numbers (/safety) before you go on."
    );
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

/// The conversation's safety number (the same on every device of the conversation), then
/// the per-device ones.
fn show_safety(client: &SecureClient, conversation: Id) {
    match client.conversation_safety_number(conversation) {
        Some(n) => println!("-- safety number of this conversation: {n}"),
        None => info("no safety number yet (no message exchanged)"),
    }
    for (d, n) in client.safety_numbers(conversation) {
        println!("-- safety number with device {}: {n}", short(d));
    }
}

// ---------------------------------------------------------------- org

async fn org(server: &str, cmd: OrgCommand) -> Result<()> {
    let relay = Api::new(server)?;
    match cmd {
        OrgCommand::KeyShow { org } => {
            let chain = relay.org_key(&org).await?;
            let key = quietline_proto::trust::chain_head(&org, &chain)
                .map_err(|e| anyhow!("the key chain does not verify: {e}"))?;
            println!(
                "organisation key: {}",
                quietline_proto::b64::encode(key.as_bytes())
            );
            println!("fingerprint: {}", key.fingerprint());
            Ok(())
        }
        OrgCommand::KeyInit(args) => {
            let passphrase = read_secret_line(&args.key_passphrase_file)?;
            if passphrase.chars().count() < 12 {
                bail!("the key passphrase must have at least 12 characters");
            }
            let supervisor = supervisor_api(&relay, &args.who).await?;
            let key =
                quietline_client::org::create_key_file(&args.key_file, passphrase.as_bytes())?;
            quietline_client::org::register_key(&supervisor, &key).await?;
            let public = key.public();
            info(format!(
                "organisation key sealed in {}",
                args.key_file.display()
            ));
            println!(
                "organisation key: {}",
                quietline_proto::b64::encode(public.as_bytes())
            );
            println!("fingerprint: {}", public.fingerprint());
            info(
                "publish the fingerprint (website, outreach cards) and build the key into your survivor client",
            );
            Ok(())
        }
        OrgCommand::Certify(args) => {
            let passphrase = read_secret_line(&args.key.key_passphrase_file)?;
            let key =
                quietline_client::org::open_key_file(&args.key.key_file, passphrase.as_bytes())
                    .context("opening the organisation key (wrong passphrase?)")?;
            let supervisor = supervisor_api(&relay, &args.key.who).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let only = (!args.devices.is_empty()).then_some(&args.devices[..]);
            let report = quietline_client::org::certify_pending(
                &supervisor,
                &args.key.who.org,
                &key,
                only,
                i64::try_from(now)?,
                args.days.clamp(1, 3650) * 86_400,
            )
            .await?;
            for d in &report.certified {
                println!("certified {d}");
            }
            for d in &report.refused {
                println!("!! refused {d}: its keys are not signed by itself");
            }
            info(format!("{} already certified", report.already.len()));
            Ok(())
        }
    }
}

/// Sign in as a supervisor (no device needed) for the organisation commands.
async fn supervisor_api(relay: &Api, who: &Credentials) -> Result<Api> {
    let logged = login(relay, who, None).await?;
    if logged.role != quietline_proto::wire::Role::Supervisor {
        bail!("only supervisors manage the organisation key");
    }
    Ok(relay.with_token(logged.tokens.access_token.as_str()))
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

// ---------------------------------------------------------------- survivor

async fn survivor(server: &str, args: SurvivorArgs) -> Result<()> {
    let relay = Api::new(server)?;
    let mut client = if args.state.state.exists() {
        let file = args.state.open()?;
        let c = SecureClient::load(&relay, file).context("opening the state file")?;
        info("device state loaded");
        c
    } else {
        let file = args.state.create()?;
        info("registering this device (solving the proof of work)...");
        let mut c = SecureClient::register_survivor(&relay).await?;
        c.persist_to(file)?;
        info("device registered");
        c
    };
    if let Some(text) = &args.org_key {
        let bytes = quietline_proto::b64::decode(text.trim())
            .map_err(|_| anyhow!("--org-key is not base64url"))?;
        let key = quietline_proto::trust::OrgPublicKey::from_slice(&bytes)
            .map_err(|_| anyhow!("--org-key is not an organisation key"))?;
        client.pin_org_key(&args.org, &key)?;
    }
    match client.verify_org_key(&args.org).await {
        Ok(key) => info(format!(
            "organisation key fingerprint: {} (compare it with the one your organisation publishes)",
            key.fingerprint()
        )),
        Err(e) => {
            warn(&e);
            return Err(e.into());
        }
    }
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
                        show_safety(&client, conversation);
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
            Err(e @ (SdkError::IdentityChanged { .. } | SdkError::Untrusted { .. })) => {
                warn(&e);
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
        Incoming::Refused { reason, .. } => warn(reason),
    }
}

// ---------------------------------------------------------------- advocate

struct Desk {
    member_id: Id,
    current: Option<Id>,
    queue: Vec<Conversation>,
    auto_claim: bool,
}

fn totp_code(args: &Credentials) -> Result<String> {
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
    args: &Credentials,
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
    let (mut client, member_id) = if args.state.state.exists() {
        let file = args.state.open()?;
        let mut c = SecureClient::load(&relay, file).context("opening the state file")?;
        let logged = login(&relay, &args.who, Some(c.device_id())).await?;
        c.adopt_tokens(&logged.tokens)?;
        info(format!(
            "logged in as {} ({})",
            args.who.handle,
            logged.role.as_str()
        ));
        (c, logged.member_id)
    } else {
        let file = args.state.create()?;
        let logged = login(&relay, &args.who, None).await?;
        let member = relay.with_token(logged.tokens.access_token.as_str());
        let mut c = SecureClient::register_member_device(&member).await?;
        c.persist_to(file)?;
        info(format!(
            "logged in as {} ({}); this device is registered",
            args.who.handle,
            logged.role.as_str()
        ));
        (c, logged.member_id)
    };
    let certified = client.join_org(&args.who.org).await?;
    if let Some(key) = client.org_key(&args.who.org) {
        info(format!(
            "organisation key fingerprint: {}",
            key.fingerprint()
        ));
    }
    if !certified {
        info(format!(
            "this device ({}) waits for a supervisor to certify it (quietline-cli org certify); until then nobody can write to it",
            client.device_id()
        ));
    }
    client.maintain_keys().await?;
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
            show_safety(client, conv);
        }
        c if c.starts_with('/') => bail!("unknown command {c}"),
        _ => {
            let conv = desk
                .current
                .ok_or_else(|| anyhow!("claim a conversation first (/claim)"))?;
            match client.send_text(conv, line).await {
                Ok(sent) => info(format!("sent to {} device(s)", sent.devices.len())),
                Err(SdkError::NoRecipients) => bail!("nobody to send to in this conversation"),
                Err(e @ (SdkError::IdentityChanged { .. } | SdkError::Untrusted { .. })) => {
                    warn(&e)
                }
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
        Incoming::Refused {
            conversation_id,
            reason,
            ..
        } => warn(&format!("[{}] {reason}", short(*conversation_id))),
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
            "--passphrase-file",
            "alice.pass",
        ])
        .unwrap();
        assert_eq!(cli.server, "http://127.0.0.1:8080/x7");
        match &cli.command {
            Command::Advocate(a) => {
                assert_eq!(a.state.state, PathBuf::from("alice.state"));
                assert_eq!(a.state.passphrase_file, Some(PathBuf::from("alice.pass")));
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "quietline-cli",
            "survivor",
            "--org",
            "safe-harbor",
            "--state",
            "me.state",
        ])
        .unwrap();
        match &cli.command {
            Command::Survivor(s) => assert_eq!(s.state.passphrase_file, None),
            other => panic!("unexpected {other:?}"),
        }
        // The key file beside the state is gone, and so is its flag.
        assert!(
            Cli::try_parse_from([
                "quietline-cli",
                "survivor",
                "--org",
                "o",
                "--state",
                "me.state",
                "--state-key",
                "me.state.key"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from([
            "quietline-cli",
            "org",
            "certify",
            "--org",
            "safe-harbor",
            "--handle",
            "sam",
            "--password-file",
            "pw",
            "--totp-uri-file",
            "totp",
            "--key-file",
            "org.key",
            "--key-passphrase-file",
            "org.pass",
            "--device",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "--days",
            "30",
        ])
        .unwrap();
        match cli.command {
            Command::Org(OrgCommand::Certify(args)) => {
                assert_eq!(args.devices, vec![Id([0; 16])]);
                assert_eq!(args.days, 30);
                assert_eq!(args.key.who.handle, "sam");
            }
            other => panic!("{other:?}"),
        }
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
    fn totp_codes_come_from_a_secret_or_a_uri() {
        let base = |secret: Option<&str>, uri: Option<&str>| Credentials {
            org: "o".into(),
            handle: "h".into(),
            password_file: "p".into(),
            totp_secret: secret.map(str::to_owned),
            totp_uri: uri.map(str::to_owned),
            totp_uri_file: None,
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

    #[test]
    fn the_state_opens_only_with_the_passphrase_it_was_created_with() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "blue kettle\nsecond line is not part of it\n").unwrap();
        let args = StateArgs {
            state: dir.path().join("me.state"),
            passphrase_file: Some(pass.clone()),
        };
        assert_eq!(args.passphrase(true).unwrap().as_str(), "blue kettle");

        let file = args.create().unwrap();
        let (secrets, _) = quietline_proto::crypto::keys::DeviceSecrets::generate().unwrap();
        let state = quietline_client::DeviceState::new(Id([7; 16]), secrets, None, None);
        file.save(&state).unwrap();
        let e = args.open().unwrap_err();
        assert!(format!("{e:#}").contains("another quietline-cli"), "{e:#}");
        assert!(args.create().is_err(), "a second create is refused");
        drop(file);

        assert_eq!(
            args.open().unwrap().load().unwrap().device_id(),
            Id([7; 16])
        );
        std::fs::write(&pass, "blue kettles\n").unwrap();
        let e = args.open().unwrap_err();
        assert!(
            format!("{e:#}").contains("passphrase does not open"),
            "{e:#}"
        );
        std::fs::write(&pass, "\n").unwrap();
        assert!(args.open().is_err(), "an empty passphrase file is refused");
    }
}
