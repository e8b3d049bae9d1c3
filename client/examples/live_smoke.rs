//! A scripted conversation against a running relay, exercising the SDK end to end: two
//! advocates, a survivor whose cached recipient list goes stale (409 and retry), the
//! stream, acks, and a malformed request.
//!
//! ```sh
//! quietline admin member invite --org ORG --handle carol   # token A
//! quietline admin member invite --org ORG --handle dave    # token B
//! cargo run -p quietline-client --example live_smoke -- http://127.0.0.1:8080 ORG carol:TOKEN_A dave:TOKEN_B
//! ```
//!
//! Nobody else of the organisation may be on duty while it runs.

use anyhow::{Context, Result, bail, ensure};
use quietline_client::{Api, Incoming, RawRequest, SecureClient};
use quietline_proto::ErrorCode;
use quietline_proto::wire::{Enroll, Login, OpenConversation};
use std::time::Duration;

async fn advocate(relay: &Api, org: &str, handle: &str, token: &str) -> Result<SecureClient> {
    let password = format!("{handle}-long-password-for-the-smoke-test");
    let enrolled = relay
        .enroll(&Enroll {
            token: token.to_owned(),
            password: password.clone(),
        })
        .await
        .context("enroll")?;
    let totp = totp_rs::TOTP::from_url_unchecked(&enrolled.totp_uri)?.generate_current()?;
    let logged = relay
        .login(&Login {
            org: org.to_owned(),
            handle: handle.to_owned(),
            password,
            totp,
            device_id: None,
        })
        .await
        .context("login")?;
    let member = relay.with_token(logged.tokens.access_token.as_str());
    let mut client = SecureClient::register_member_device(&member).await?;
    client.api().await?.set_duty(true).await?;
    Ok(client)
}

fn texts(incoming: &[Incoming]) -> Vec<String> {
    incoming
        .iter()
        .filter_map(|i| match i {
            Incoming::Message(m) => m.text().map(str::to_owned),
            _ => None,
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, server, org, a, b] = args.as_slice() else {
        bail!("usage: live_smoke SERVER ORG HANDLE_A:TOKEN_A HANDLE_B:TOKEN_B");
    };
    let (handle_a, token_a) = a.split_once(':').context("HANDLE_A:TOKEN_A")?;
    let (handle_b, token_b) = b.split_once(':').context("HANDLE_B:TOKEN_B")?;
    let relay = Api::new(server)?;

    let mut carol = advocate(&relay, org, handle_a, token_a).await?;
    let mut survivor = SecureClient::register_survivor(&relay).await?;
    let opened = survivor
        .open_conversation(org, &OpenConversation::default())
        .await?;
    let conv = opened.conversation.id;
    ensure!(opened.recipients.len() == 1, "expected carol's device only");
    println!("opened; recipients: {}", opened.recipients.len());

    // Dave comes on duty: the survivor's cached list (carol only) is now stale.
    let mut dave = advocate(&relay, org, handle_b, token_b).await?;
    let sent = survivor.send_text(conv, "hello from the survivor").await?;
    ensure!(
        sent.devices.len() == 2,
        "expected a retry after 409 to reach both devices"
    );
    println!("sent after 409 retry to {} devices", sent.devices.len());

    // Carol reads over the stream, Dave over HTTP.
    let mut stream = carol.connect().await?;
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match carol.next(&mut stream).await? {
                Some(Incoming::Message(m)) => return Ok::<_, anyhow::Error>(m),
                Some(_) => continue,
                None => bail!("stream closed"),
            }
        }
    })
    .await??;
    ensure!(first.text() == Some("hello from the survivor"));
    ensure!(first.from == survivor.device_id());
    println!("first advocate (stream): {:?}", first.text());
    let got = texts(&dave.poll().await?);
    ensure!(got == ["hello from the survivor"], "dave got {got:?}");
    println!("second advocate (http): {got:?}");
    ensure!(
        dave.poll().await?.is_empty(),
        "acked envelopes must not come back"
    );

    // Carol claims (Dave's claim then fails: conflict, or not found once it is hers); the survivor's list changes again (409 or event), the reply flows back.
    carol.api().await?.claim(conv).await?;
    let claim_again = dave.api().await?.claim(conv).await;
    ensure!(
        claim_again
            .as_ref()
            .err()
            .is_some_and(|e| e.is(ErrorCode::Conflict) || e.is(ErrorCode::NotFound)),
        "a second claim must fail: {claim_again:?}"
    );
    carol.send_text(conv, "hi, this is carol").await?;
    let got = texts(&survivor.poll().await?);
    ensure!(got == ["hi, this is carol"], "survivor got {got:?}");
    let sent = survivor.send_text(conv, "thank you").await?;
    ensure!(
        sent.devices.len() == 1,
        "after the claim only carol's device"
    );
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match carol.next(&mut stream).await? {
                Some(Incoming::Message(m)) => return Ok::<_, anyhow::Error>(m),
                Some(_) => continue,
                None => bail!("stream closed"),
            }
        }
    })
    .await??;
    ensure!(reply.text() == Some("thank you"));
    println!("first advocate (stream): {:?}", reply.text());

    // Bad input is refused with the uniform error body.
    let bad = relay
        .raw(RawRequest::post("/v1/devices").json_bytes(b"{not json".to_vec()))
        .await?;
    ensure!((400..500).contains(&bad.status), "status {}", bad.status);
    ensure!(bad.error_body().is_some(), "body {}", bad.text());
    println!(
        "malformed body: {} {:?}",
        bad.status,
        bad.error_body().map(|b| b.error.code)
    );
    let forged = relay
        .raw(RawRequest::get("/v1/messages").authorization("Bearer forged")?)
        .await?;
    ensure!(forged.status == 401, "forged token: {}", forged.status);

    carol.close(conv).await?;
    for c in [&mut carol, &mut dave] {
        c.api().await?.set_duty(false).await?;
    }
    println!("ok");
    Ok(())
}
