//! What a browser needs from the server: stream tickets (a WebSocket upgrade cannot carry
//! `Authorization`) and the dashboard's static files with their caching and
//! Content-Security-Policy.

use quietline_client::{ExitMode, RawRequest, Stream};
use quietline_proto::ErrorCode;
use quietline_proto::wire::{OpenConversation, Role};
use quietline_server::http::routes::web::CONTENT_SECURITY_POLICY;
use quietline_server::service::stream_tickets::TICKET_TTL_SECS;
use quietline_tests::*;

/// `GET /v1/stream` without upgrade headers: enough to see how a ticket is judged, since
/// the ticket is checked before the upgrade.
async fn stream_refusal(s: &TestServer, query: &str) -> (u16, Vec<u8>) {
    let r = s
        .api()
        .raw(RawRequest::get(format!("/v1/stream{query}")).no_auth())
        .await
        .unwrap();
    (r.status, r.body)
}

fn assert_unauthorized(e: quietline_client::Error) {
    assert!(e.is(ErrorCode::Unauthorized), "{e}");
}

async fn a_stream_ticket_opens_the_stream_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    let ticket = adv.api.stream_ticket().await.unwrap();
    assert_eq!(ticket.expires_in, TICKET_TTL_SECS as u64);
    assert_eq!(ticket.ticket.len(), 43, "256 bits, base64url");
    let mut stream = Stream::connect_with_ticket(s.api().base_url(), &ticket.ticket)
        .await
        .unwrap();
    // It is the advocate's own stream: a survivor's first message arrives on it.
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    let sent = one_envelope(adv.device_id);
    sur.api.send(conv, &sent).await.unwrap();
    loop {
        match stream.next().await.unwrap().expect("stream open") {
            quietline_proto::wire::ServerFrame::Envelope(e) => {
                assert_eq!(e.id, sent.message_id);
                break;
            }
            _ => continue,
        }
    }
    // A second use is refused, although the first stream is still open.
    let again = Stream::connect_with_ticket(s.api().base_url(), &ticket.ticket)
        .await
        .unwrap_err();
    assert_unauthorized(again);
    // Only its hash was ever stored, and using it deleted it.
    let dump = s.store().dump_all_tables().await.unwrap();
    assert!(dump.iter().all(|(_, row)| !row.contains(&ticket.ticket)));
    assert!(dump.iter().all(|(table, _)| table != "stream_tickets"));
    s.stop().await;
}

async fn an_expired_stream_ticket_is_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let sur = s.survivor().await;
    let base = s.api().base_url().to_owned();
    let just_in_time = sur.api.stream_ticket().await.unwrap().ticket;
    s.clock.advance(TICKET_TTL_SECS - 1);
    Stream::connect_with_ticket(&base, &just_in_time)
        .await
        .unwrap();
    let late = sur.api.stream_ticket().await.unwrap().ticket;
    s.clock.advance(TICKET_TTL_SECS);
    assert_unauthorized(Stream::connect_with_ticket(&base, &late).await.unwrap_err());
    // The sweeper removes tickets that expired unused.
    let unused = sur.api.stream_ticket().await.unwrap().ticket;
    s.clock.advance(TICKET_TTL_SECS);
    quietline_server::sweeper::sweep_once(&s.state)
        .await
        .unwrap();
    let dump = s.store().dump_all_tables().await.unwrap();
    assert!(dump.iter().all(|(table, _)| table != "stream_tickets"));
    assert_unauthorized(
        Stream::connect_with_ticket(&base, &unused)
            .await
            .unwrap_err(),
    );
    s.stop().await;
}

async fn garbage_and_missing_tickets_get_the_uniform_401(backend: Backend) {
    let s = TestServer::start(backend).await;
    let sur = s.survivor().await;
    let spent = sur.api.stream_ticket().await.unwrap().ticket;
    Stream::connect_with_ticket(s.api().base_url(), &spent)
        .await
        .unwrap();
    let long = "A".repeat(5000);
    let mut bodies = Vec::new();
    for query in [
        String::new(),
        "?ticket=".into(),
        "?ticket=garbage".into(),
        format!("?ticket={}", "A".repeat(43)),
        format!("?ticket={long}"),
        format!("?ticket={spent}"),
        "?ticket=a&ticket=b".into(),
        "?other=1".into(),
    ] {
        let (status, body) = stream_refusal(&s, &query).await;
        assert_eq!(status, 401, "{query:.40}");
        let parsed: quietline_proto::ErrorBody =
            serde_json::from_slice(body.trim_ascii_end()).unwrap();
        assert_eq!(parsed.error.code, ErrorCode::Unauthorized);
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all"
    );
    // A ticket is no access token, and an access token is no ticket.
    let ticket = sur.api.stream_ticket().await.unwrap().ticket;
    let as_bearer = s.api().with_token(ticket.as_str());
    assert_unauthorized(as_bearer.conversations().await.unwrap_err());
    let token = sur.api.token().unwrap().as_str().to_owned();
    let (status, _) = stream_refusal(&s, &format!("?ticket={token}")).await;
    assert_eq!(status, 401);
    // Without a token there is no ticket.
    let r = s
        .api()
        .raw(RawRequest::post("/v1/stream/ticket").no_auth())
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    s.stop().await;
}

async fn tickets_of_wiped_hidden_or_revoked_devices_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_org("hotline").await;
    let base = s.api().base_url().to_owned();

    let wiped = s.survivor().await;
    let ticket = wiped.api.stream_ticket().await.unwrap().ticket;
    s.api()
        .exit(&wiped.exit_token, ExitMode::Wipe)
        .await
        .unwrap();
    assert_unauthorized(
        Stream::connect_with_ticket(&base, &ticket)
            .await
            .unwrap_err(),
    );

    let hidden = s.survivor().await;
    let ticket = hidden.api.stream_ticket().await.unwrap().ticket;
    s.api()
        .exit(&hidden.exit_token, ExitMode::Hide)
        .await
        .unwrap();
    assert_unauthorized(
        Stream::connect_with_ticket(&base, &ticket)
            .await
            .unwrap_err(),
    );

    let revoked = s.member("hotline", "bo", Role::Advocate).await;
    let ticket = revoked.api.stream_ticket().await.unwrap().ticket;
    assert!(s.store().revoke_member(&revoked.member_id.0).await.unwrap());
    assert_unauthorized(
        Stream::connect_with_ticket(&base, &ticket)
            .await
            .unwrap_err(),
    );

    // A member signed in without a device has no stream, so gets no ticket.
    let (deviceless, _) = s.enrolled_member("hotline", "cy", Role::Advocate).await;
    assert!(
        deviceless
            .stream_ticket()
            .await
            .unwrap_err()
            .is(ErrorCode::Forbidden)
    );
    s.stop().await;
}

/// Send `GET <path>` exactly as written (no client-side normalisation of `..` or `%2e`).
async fn raw_get(base: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

async fn the_dashboard_is_served_with_its_policy_and_caching(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.route_prefix = "/static/x7k2".into();
        c.web_path = "desk".into();
    })
    .await;
    let api = s.api();
    let shell = api.raw(RawRequest::get("/desk/")).await.unwrap();
    assert_eq!(shell.status, 200);
    let header = |r: &quietline_client::RawResponse, name: &str| {
        r.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(header(&shell, "content-type").starts_with("text/html"));
    assert_eq!(header(&shell, "cache-control"), "no-store");
    assert_eq!(
        header(&shell, "content-security-policy"),
        CONTENT_SECURITY_POLICY
    );
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    let html = String::from_utf8(shell.body.clone()).unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert!(
        script.starts_with("assets/app-") && script.ends_with(".js"),
        "hashed name: {script}"
    );
    let js = api
        .raw(RawRequest::get(format!("/desk/{script}")))
        .await
        .unwrap();
    assert_eq!(js.status, 200);
    assert!(header(&js, "content-type").contains("javascript"));
    assert_eq!(
        header(&js, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        header(&js, "content-security-policy"),
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(header(&js, "x-content-type-options"), "nosniff");
    // Without the trailing slash: sent to the folder, relative to where the browser is.
    let bare = api.raw(RawRequest::get("/desk")).await.unwrap();
    assert_eq!(bare.status, 308);
    assert_eq!(header(&bare, "location"), "desk/");
    // API answers keep their own policy.
    let doc = api.raw(RawRequest::get("/v1/openapi.json")).await.unwrap();
    assert_eq!(
        header(&doc, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(header(&doc, "cache-control"), "no-store");
    s.stop().await;
}

async fn unknown_files_traversal_and_writes_get_the_static_404(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.route_prefix = "/static/x7k2".into();
        c.web_path = "desk".into();
    })
    .await;
    let (status, reference) = raw_get(&s.base, "/static/x7k2/no-such-page").await;
    assert_eq!(status, 404);
    assert!(reference.contains("Not Found"));
    for path in [
        "/static/x7k2/desk/assets/app-NOSUCHHASH.js",
        "/static/x7k2/desk/nothing.html",
        "/static/x7k2/desk/../../Cargo.toml",
        "/static/x7k2/desk/%2e%2e/%2e%2e/Cargo.toml",
        "/static/x7k2/desk/assets/..%2f..%2f..%2fCargo.toml",
        "/static/x7k2/desk/..%5c..%5cCargo.toml",
        "/static/x7k2/desk//etc/passwd",
        "/static/x7k2/desk/%2fetc%2fpasswd",
        "/desk/",
        "/static/x7k2/app/",
    ] {
        let (status, body) = raw_get(&s.base, path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body, reference, "{path}: the same page as any unknown path");
    }
    for req in [
        RawRequest::post("/desk/"),
        RawRequest::new(quietline_client::Method::PUT, "/desk/index.html"),
        RawRequest::new(quietline_client::Method::DELETE, "/desk"),
    ] {
        let r = s.api().raw(req).await.unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(String::from_utf8(r.body).unwrap(), reference);
    }
    s.stop().await;
}

async fn an_empty_web_path_serves_no_dashboard(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.web_path = String::new()).await;
    for path in ["/app/", "/app", "/index.html", "/"] {
        let (status, body) = raw_get(&s.base, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("Not Found"));
    }
    s.stop().await;
}

quietline_tests::on_both!(
    a_stream_ticket_opens_the_stream_once,
    an_expired_stream_ticket_is_refused,
    garbage_and_missing_tickets_get_the_uniform_401,
    tickets_of_wiped_hidden_or_revoked_devices_are_refused,
    the_dashboard_is_served_with_its_policy_and_caching,
    unknown_files_traversal_and_writes_get_the_static_404,
    an_empty_web_path_serves_no_dashboard,
);

/// What the dashboard's own source may not do, whatever the CSP would stop at run time:
/// write HTML from strings (the road to script injection) or name another origin.
#[test]
fn the_dashboard_source_assigns_no_html_and_names_no_other_origin() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "ts" || e == "html" || e == "css")
                && !path.to_string_lossy().ends_with(".d.ts")
            {
                out.push(path);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    assert!(
        files.len() > 3,
        "the dashboard sources are where they should be"
    );
    let forbidden = [
        ".innerHTML",
        ".outerHTML",
        ".insertAdjacentHTML(",
        "document.write(",
        "eval(",
        "new Function(",
        "http://",
        "https://",
    ];
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for word in forbidden {
            if text.contains(word) {
                found.push(format!("{}: {word}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
