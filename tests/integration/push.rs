//! Safe hours and wake signals: a local HTTP receiver stands in for the push gateway and
//! records every request, so the tests see exactly what a gateway would learn.

use quietline_client::{Method, RawRequest, Stream};
use quietline_proto::wire::{
    OpenConversation, OutgoingEnvelope, PushRegistration, Role, SafeWindow, SendMessage,
    ServerFrame,
};
use quietline_proto::{ErrorBody, ErrorCode, Id};
use quietline_server::service::push::tick_once;
use quietline_tests::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Monday 2030-01-07 10:00:00 UTC: 12:00 for a device at UTC+2.
const MONDAY_10_UTC: i64 = 1_893_974_400 + 10 * 3600;
const OFFSET: i32 = 120;
/// Monday 11:00-14:00 and 16:00-17:00, local time.
fn windows() -> Vec<SafeWindow> {
    vec![
        SafeWindow {
            day: 0,
            start_minute: 11 * 60,
            end_minute: 14 * 60,
        },
        SafeWindow {
            day: 0,
            start_minute: 16 * 60,
            end_minute: 17 * 60,
        },
    ]
}

#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A stand-in push gateway on 127.0.0.1 answering every request with 201.
struct Receiver {
    url: String,
    path: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let shared = got.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_connection(socket, shared.clone()));
            }
        });
        let path = format!("/up/endpoint-{}", hex(&rand_bytes::<12>()));
        Receiver {
            url: format!("http://{addr}{path}"),
            path,
            got,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Wait until every wake signal the server started has been answered, then check that
    /// exactly `n` arrived. Wakes after a send run in `AppState::wake_tasks`; waiting on that
    /// tracker (not on time) makes "no more follow" certain.
    async fn expect(&self, s: &TestServer, n: usize) {
        wake_tasks_done(s).await;
        assert_eq!(self.count(), n, "exactly {n} wake signals");
        for r in self.received() {
            self.assert_content_free(&r);
        }
    }

    fn assert_content_free(&self, r: &Received) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, self.path);
        assert!(r.body.is_empty(), "a wake signal has no body");
        for (name, value) in &r.headers {
            assert!(
                ["host", "accept", "content-length", "ttl"].contains(&name.as_str()),
                "unexpected header {name}"
            );
            let text = format!("{name}: {value}").to_lowercase();
            assert!(
                !text.contains("quietline") && !text.contains("relay"),
                "{text}"
            );
        }
    }
}

/// Wait until every background wake task of `s` has finished.
async fn wake_tasks_done(s: &TestServer) {
    tokio::time::timeout(Duration::from_secs(30), s.state.wake_tasks.idle())
        .await
        .expect("wake tasks finish");
}

/// One HTTP/1.1 connection: read requests (Content-Length bodies only), record, answer 201.
async fn serve_connection(socket: TcpStream, got: Arc<Mutex<Vec<Received>>>) {
    let mut reader = BufReader::new(socket);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let chunked = headers.iter().any(|(k, _)| k == "transfer-encoding");
        got.lock().unwrap().push(Received {
            method,
            path,
            headers,
            body,
        });
        if chunked {
            return; // recorded (and refused by the assertions); cannot parse further
        }
        let reply = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        if reader.get_mut().write_all(reply).await.is_err() {
            return;
        }
    }
}

struct Setup {
    s: TestServer,
    adv: Member,
    sur: Survivor,
    conv: Id,
    rx: Receiver,
}

/// A server with insecure endpoints allowed and the clock at `start`; an advocate who has
/// claimed a survivor's conversation; a receiver. Nothing is registered yet.
async fn setup(backend: Backend, start: i64) -> Setup {
    let s = TestServer::start_with(backend, |c| {
        c.push_allow_insecure = true;
        // The clock jumps hours ahead; the access tokens must outlive that.
        c.access_token_ttl_secs = 24 * 3600;
    })
    .await;
    s.clock.set(start);
    s.create_org("hotline").await;
    let adv = s.member("hotline", "ana", Role::Advocate).await;
    adv.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    adv.api.claim(conv).await.unwrap();
    let rx = Receiver::start().await;
    Setup {
        s,
        adv,
        sur,
        conv,
        rx,
    }
}

fn registration(endpoint: &str) -> PushRegistration {
    PushRegistration {
        endpoint: endpoint.into(),
        utc_offset_minutes: OFFSET,
        safe_hours: windows(),
    }
}

async fn advocate_writes(adv: &Member, conv: Id) {
    let recipients = adv.api.recipients(conv).await.unwrap();
    adv.api
        .send(
            conv,
            &SendMessage {
                message_id: random_id(),
                envelopes: recipients
                    .devices
                    .iter()
                    .map(|d| OutgoingEnvelope {
                        device_id: *d,
                        ciphertext: opaque(1024),
                    })
                    .collect(),
            },
        )
        .await
        .unwrap();
}

async fn push_rows(s: &TestServer) -> Vec<String> {
    s.store()
        .dump_all_tables()
        .await
        .unwrap()
        .into_iter()
        .filter(|(t, _)| t == "push_registrations")
        .map(|(_, row)| row)
        .collect()
}

async fn wake_is_sent_inside_safe_hours_only_and_at_most_once_per_interval(backend: Backend) {
    let Setup {
        s,
        adv,
        sur,
        conv,
        rx,
    } = setup(backend, MONDAY_10_UTC).await;
    sur.api.register_push(&registration(&rx.url)).await.unwrap();
    rx.expect(&s, 0).await;

    // 12:00 local, inside the first window: two quick messages, one wake.
    advocate_writes(&adv, conv).await;
    advocate_writes(&adv, conv).await;
    rx.expect(&s, 1).await;
    assert_eq!(tick_once(&s.state).await.unwrap(), 0, "the interval holds");

    // The stored limit is an expiry, rounded up to the hour like every stored expiry: one
    // interval later the device is still held (the row must not give the wake's time back).
    s.clock.advance(900);
    advocate_writes(&adv, conv).await;
    rx.expect(&s, 1).await;
    for (_, row) in s.store().dump_all_tables().await.unwrap() {
        if let Some(v) = row
            .split_whitespace()
            .find_map(|f| f.strip_prefix("next_wake_at="))
        {
            assert_eq!(v.parse::<i64>().unwrap() % 3600, 0, "{row}");
        }
    }
    // Past the next full hour, still inside the window: the next message wakes again.
    s.clock.advance(3600 - 900);
    advocate_writes(&adv, conv).await;
    rx.expect(&s, 2).await;

    // 15:00 local, between the windows: the message waits, and so does the tick.
    s.clock.set(MONDAY_10_UTC + 3 * 3600);
    advocate_writes(&adv, conv).await;
    assert_eq!(tick_once(&s.state).await.unwrap(), 0);
    rx.expect(&s, 2).await;

    // 16:05 local: the second window has opened; the tick wakes the device once.
    s.clock.set(MONDAY_10_UTC + 4 * 3600 + 300);
    assert_eq!(tick_once(&s.state).await.unwrap(), 1);
    assert_eq!(tick_once(&s.state).await.unwrap(), 0);
    rx.expect(&s, 3).await;
    // The gateway is told to drop the signal when the window closes (55 minutes left).
    let last = rx.received().pop().unwrap();
    let ttl: i64 = last
        .headers
        .iter()
        .find(|(k, _)| k == "ttl")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a TTL header");
    assert_eq!(ttl, 55 * 60);

    // Within the limit (until the next full hour) the tick wakes nobody.
    s.clock.advance(900);
    assert_eq!(tick_once(&s.state).await.unwrap(), 0);
    // Once the limit has passed, the stored value is reset: no time of the last wake is kept.
    s.clock.set(MONDAY_10_UTC + 5 * 3600);
    assert_eq!(
        tick_once(&s.state).await.unwrap(),
        0,
        "the window has closed"
    );
    let rows = push_rows(&s).await;
    assert!(rows[0].contains("next_wake_at=0 "), "{}", rows[0]);

    // Acknowledged and read: nothing pending, no more wakes.
    let inbox = sur.api.inbox().await.unwrap();
    let ids: Vec<Id> = inbox
        .envelopes
        .iter()
        .map(|e| e.id)
        .chain(inbox.events.iter().map(|e| e.id))
        .collect();
    sur.api.ack(&ids).await.unwrap();
    s.clock.advance(900);
    assert_eq!(tick_once(&s.state).await.unwrap(), 0);
    let rows = push_rows(&s).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].contains("next_wake_at=0 "), "{}", rows[0]);
    rx.expect(&s, 3).await;
    s.stop().await;
}

async fn next_envelope(stream: &mut Stream) {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .expect("stream open");
        if let ServerFrame::Envelope(_) = frame {
            return;
        }
    }
}

async fn wait_for_listeners(s: &TestServer, device: Id, live: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while s.state.hub.has_listeners(&device) != live {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream live = {live}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn no_wake_while_the_device_has_a_live_stream(backend: Backend) {
    let Setup {
        s,
        adv,
        sur,
        conv,
        rx,
    } = setup(backend, MONDAY_10_UTC).await;
    sur.api.register_push(&registration(&rx.url)).await.unwrap();
    let mut stream = sur.api.stream().await.unwrap();
    wait_for_listeners(&s, sur.device_id, true).await;

    advocate_writes(&adv, conv).await;
    next_envelope(&mut stream).await;
    assert_eq!(tick_once(&s.state).await.unwrap(), 0);
    rx.expect(&s, 0).await;

    // The stream goes away: the next message wakes the device.
    drop(stream);
    wait_for_listeners(&s, sur.device_id, false).await;
    advocate_writes(&adv, conv).await;
    rx.expect(&s, 1).await;
    s.stop().await;
}

fn assert_bad_request(status: u16, body: &[u8]) {
    let parsed: ErrorBody = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not the error shape: {}", String::from_utf8_lossy(body)));
    assert_eq!(parsed.error.code, ErrorCode::BadRequest);
    assert_eq!(status, 400);
}

async fn push_registration_is_validated(backend: Backend) {
    // Insecure endpoints are not allowed here: the production default.
    let s = TestServer::start(backend).await;
    let sur = s.survivor().await;
    let path = "/v1/devices/me/push";
    let window = json!([{"day": 0, "start_minute": 0, "end_minute": 1440}]);
    let reg = |endpoint: &str, offset: i64, windows: serde_json::Value| {
        RawRequest::put(path).json(&json!({
            "endpoint": endpoint, "utc_offset_minutes": offset, "safe_hours": windows
        }))
    };
    let good = "https://push.example.org/up/abc";
    let long = format!("https://push.example.org/{}", "a".repeat(600));
    let too_many: Vec<_> = (0..29)
        .map(|i| json!({"day": i % 7, "start_minute": 0, "end_minute": 60}))
        .collect();
    let cases = vec![
        reg("http://push.example.org/up/abc", 0, window.clone()),
        reg("http://127.0.0.1:9/up", 0, window.clone()),
        reg("https://127.0.0.1/up", 0, window.clone()),
        reg("https://192.168.0.10/up", 0, window.clone()),
        reg("https://[::1]/up", 0, window.clone()),
        reg("https://169.254.169.254/up", 0, window.clone()),
        reg("https://user:secret@push.example.org/up", 0, window.clone()),
        reg("push.example.org/up", 0, window.clone()),
        reg(&long, 0, window.clone()),
        reg(good, 841, window.clone()),
        reg(good, -841, window.clone()),
        reg(
            good,
            0,
            json!([{"day": 7, "start_minute": 0, "end_minute": 60}]),
        ),
        reg(
            good,
            0,
            json!([{"day": 0, "start_minute": 60, "end_minute": 60}]),
        ),
        reg(
            good,
            0,
            json!([{"day": 0, "start_minute": 0, "end_minute": 1441}]),
        ),
        reg(good, 0, json!(too_many)),
        RawRequest::put(path).json(&json!({"endpoint": good, "utc_offset_minutes": 0})),
        RawRequest::put(path).json(&json!({
            "endpoint": good, "utc_offset_minutes": 0, "safe_hours": [], "device_name": "x"
        })),
    ];
    for req in cases {
        let r = sur.api.raw(req).await.unwrap();
        assert_bad_request(r.status, &r.body);
    }
    assert!(push_rows(&s).await.is_empty(), "nothing stored");

    let r = sur
        .api
        .raw(reg(good, 0, window.clone()).no_auth())
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(push_rows(&s).await.is_empty(), "nothing stored");

    let r = sur.api.raw(reg(good, -840, window)).await.unwrap();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(push_rows(&s).await.len(), 1);
    s.stop().await;
}

async fn push_endpoint_is_deleted_with_the_device(backend: Backend) {
    let Setup {
        s, adv, sur, rx, ..
    } = setup(backend, MONDAY_10_UTC).await;
    let token = rx.path.rsplit('-').next().unwrap().to_owned();
    let trace = |dump: &[(String, String)]| {
        dump.iter()
            .any(|(_, row)| row.contains(&rx.url) || row.contains(&token))
    };

    sur.api.register_push(&registration(&rx.url)).await.unwrap();
    assert!(trace(&s.store().dump_all_tables().await.unwrap()));
    sur.api.unregister_push().await.unwrap();
    assert!(!trace(&s.store().dump_all_tables().await.unwrap()));
    // Unregistering again answers the same.
    let r = sur
        .api
        .raw(RawRequest::new(Method::DELETE, "/v1/devices/me/push"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);

    // A member's device may register too; it stays when the survivor's device goes.
    let other = Receiver::start().await;
    adv.api
        .register_push(&registration(&other.url))
        .await
        .unwrap();
    sur.api.register_push(&registration(&rx.url)).await.unwrap();
    assert!(trace(&s.store().dump_all_tables().await.unwrap()));
    // The survivor wipes (quick exit): the endpoint goes with the device.
    s.api()
        .exit(&sur.exit_token, quietline_client::ExitMode::Wipe)
        .await
        .unwrap();
    let dump = s.store().dump_all_tables().await.unwrap();
    assert!(!trace(&dump), "the endpoint went with the device");
    assert!(dump.iter().any(|(_, row)| row.contains(&other.url)));
    s.stop().await;
}

on_both!(
    wake_is_sent_inside_safe_hours_only_and_at_most_once_per_interval,
    no_wake_while_the_device_has_a_live_stream,
    push_registration_is_validated,
    push_endpoint_is_deleted_with_the_device,
);
