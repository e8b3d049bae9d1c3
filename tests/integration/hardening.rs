//! Bad input is refused cleanly with one error shape and changes nothing; headers carry no
//! product name; the API description lists the routes.

use quietline_client::RawRequest;
use quietline_proto::wire::{OpenConversation, Role};
use quietline_proto::{ErrorBody, ErrorCode};
use quietline_tests::*;
use serde_json::json;

fn assert_error_shape(status: u16, body: &[u8], expected: ErrorCode) {
    let parsed: ErrorBody = serde_json::from_slice(body.trim_ascii_end()).unwrap_or_else(|_| {
        panic!(
            "status {status}: not the error shape: {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(parsed.error.code, expected, "status {status}");
    assert_eq!(status, expected.status());
    let text = String::from_utf8_lossy(body).to_lowercase();
    assert!(!text.contains("quietline") && !text.contains("panick") && !text.contains("sqlx"));
}

async fn malformed_oversize_and_wrong_bucket_bodies_are_refused_and_store_nothing(
    backend: Backend,
) {
    let s = TestServer::start_with(backend, |c| c.max_body_bytes = 256 * 1024).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await;
    a.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let conv = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap()
        .conversation
        .id;
    let path = format!("/v1/conversations/{conv}/messages");
    let b64 = |n: usize| quietline_proto::b64::encode(&vec![1u8; n]);
    let cases: Vec<(RawRequest, ErrorCode)> = vec![
        (RawRequest::post(&path).json_bytes(b"{not json".to_vec()), ErrorCode::BadRequest),
        (RawRequest::post(&path).json_bytes(b"[]".to_vec()), ErrorCode::BadRequest),
        (RawRequest::post(&path).body(b"{}".to_vec()), ErrorCode::UnsupportedMediaType),
        (RawRequest::post(&path).json(&json!({"message_id": "short", "envelopes": []})), ErrorCode::BadRequest),
        (
            RawRequest::post(&path).json(&json!({"message_id": random_id().to_string(), "envelopes": [], "sender_ip": "1.2.3.4"})),
            ErrorCode::BadRequest,
        ),
        (
            RawRequest::post(&path).json(&json!({"message_id": random_id().to_string(),
                "envelopes": [{"device_id": a.device_id.to_string(), "ciphertext": b64(1000)}]})),
            ErrorCode::BadEnvelopeSize,
        ),
        (
            RawRequest::post(&path).json(&json!({"message_id": random_id().to_string(),
                "envelopes": [{"device_id": a.device_id.to_string(), "ciphertext": b64(1025)}]})),
            ErrorCode::BadEnvelopeSize,
        ),
        (
            RawRequest::post(&path).json(&json!({"message_id": random_id().to_string(),
                "envelopes": [{"device_id": a.device_id.to_string(), "ciphertext": "not base64!"}]})),
            ErrorCode::BadRequest,
        ),
        (
            RawRequest::post(&path).json(&json!({"message_id": random_id().to_string(),
                "envelopes": [{"device_id": a.device_id.to_string(), "ciphertext": b64(300 * 1024)}]})),
            ErrorCode::PayloadTooLarge,
        ),
        (RawRequest::post("/v1/conversations/not-an-id/messages").json(&json!({})), ErrorCode::NotFound),
        (RawRequest::post("/v1/devices").json(&json!({"keys": {"identity_key": "AAAA"}})), ErrorCode::BadRequest),
    ];
    for (req, expected) in cases {
        let r = sur.api.raw(req).await.unwrap();
        assert_error_shape(r.status, &r.body, expected);
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
        if expected == ErrorCode::PayloadTooLarge {
            // The unread rest of the body makes the connection unusable: the client is told.
            assert_eq!(r.headers.get("connection").unwrap(), "close");
        }
    }
    assert_eq!(
        s.store().count_envelopes(&a.device_id.0).await.unwrap(),
        0,
        "nothing stored"
    );
    // Registration without, with a wrong, and with a reused proof of work.
    let keys = fake_keys(1);
    let anon = s.api();
    let no_pow = anon
        .register_device(&quietline_proto::wire::RegisterDevice {
            pow: None,
            keys: keys.clone(),
        })
        .await
        .unwrap_err();
    assert!(no_pow.is(ErrorCode::InvalidProofOfWork));
    let challenge = anon.challenge().await.unwrap();
    let bits = challenge.bits;
    let solution = quietline_client::solve_challenge(challenge).await.unwrap();
    // A nonce that does not meet the difficulty (the one after the solution may).
    let wrong_nonce = (solution.nonce.wrapping_add(1)..)
        .find(|n| !quietline_proto::pow::verify(&solution.challenge.0, bits, *n))
        .unwrap();
    let wrong = quietline_proto::wire::PowSolution {
        challenge: solution.challenge.clone(),
        nonce: wrong_nonce,
    };
    let wrong = anon
        .register_device(&quietline_proto::wire::RegisterDevice {
            pow: Some(wrong),
            keys: keys.clone(),
        })
        .await
        .unwrap_err();
    assert!(wrong.is(ErrorCode::InvalidProofOfWork), "{wrong:?}");
    let reused = anon
        .register_device(&quietline_proto::wire::RegisterDevice {
            pow: Some(solution),
            keys,
        })
        .await
        .unwrap_err();
    assert!(
        reused.is(ErrorCode::InvalidProofOfWork),
        "a challenge is spent by any attempt"
    );
    // The server still serves.
    sur.api.conversations().await.unwrap();
    s.stop().await;
}

async fn headers_carry_no_product_name_and_api_responses_are_not_cached(backend: Backend) {
    let s = TestServer::start(backend).await;
    for path in ["/healthz", "/readyz", "/v1/openapi.json", "/v1/nothing"] {
        let r = s.api().raw(RawRequest::get(path)).await.unwrap();
        assert!(r.headers.get("server").is_none());
        for (name, value) in r.headers.iter() {
            let text = format!("{name}: {}", value.to_str().unwrap_or_default()).to_lowercase();
            assert!(
                !text.contains("quietline") && !text.contains("axum") && !text.contains("hyper"),
                "{text}"
            );
        }
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(r.headers.get("x-content-type-options").unwrap(), "nosniff");
    }
    s.stop().await;
}

async fn openapi_lists_the_relay_routes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .api()
        .raw(RawRequest::get("/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/healthz",
        "/readyz",
        "/v1/devices/challenge",
        "/v1/devices",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/enroll",
        "/v1/devices/me/prekeys",
        "/v1/devices/{id}/bundle",
        "/v1/devices/{id}/certificate",
        "/v1/devices/me/certificate",
        "/v1/org/key",
        "/v1/orgs/{code}/key",
        "/v1/org/devices",
        "/v1/orgs/{code}/conversations",
        "/v1/conversations",
        "/v1/conversations/{id}",
        "/v1/conversations/{id}/claim",
        "/v1/conversations/{id}/transfer",
        "/v1/conversations/{id}/close",
        "/v1/conversations/{id}/recipients",
        "/v1/conversations/{id}/messages",
        "/v1/messages",
        "/v1/messages/ack",
        "/v1/stream",
        "/v1/stream/ticket",
        "/v1/members/me/duty",
        "/v1/org/settings",
        "/v1/org/invites",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} missing from the OpenAPI document"
        );
    }
    assert!(s.api().readyz().await.is_ok());
    s.stop().await;
}

async fn disguise_prefix_padding_and_static_404(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.route_prefix = "/static/x7k2".into()).await;
    s.create_org("hotline").await;
    let a = s.member("hotline", "ana", Role::Advocate).await; // works through the prefix
    a.api.set_duty(true).await.unwrap();
    let sur = s.survivor().await;
    let opened = sur
        .api
        .open_conversation("hotline", &OpenConversation::default())
        .await
        .unwrap();
    assert_eq!(opened.recipients.len(), 1);
    let bare = quietline_client::Api::new(&s.base).unwrap();
    let mut not_found = Vec::new();
    for path in [
        "/v1/devices/challenge",
        "/static/x7k2/v1/nothing",
        "/static/x7k2",
        "/",
        "/index.html",
        "/static/x7k2/v1/openapi.jsonx",
    ] {
        let r = bare.raw(RawRequest::post(path)).await.unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.headers
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        not_found.push(r.body);
    }
    assert!(
        not_found.windows(2).all(|w| w[0] == w[1]),
        "every unknown path gets the same page"
    );
    // Every JSON body is padded to a multiple of 512 bytes and names no product.
    let prefixed = s.api();
    for req in [
        RawRequest::get("/v1/openapi.json"),
        RawRequest::post("/v1/devices/challenge"),
        RawRequest::get("/v1/conversations"),
        RawRequest::get(format!("/v1/conversations/{}", opened.conversation.id)),
    ] {
        let r = sur.api.raw(req).await.unwrap();
        assert_eq!(r.body.len() % 512, 0, "padded");
        assert!(
            !String::from_utf8_lossy(&r.body)
                .to_lowercase()
                .contains("quietline")
        );
        let _: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    }
    let r = prefixed
        .raw(RawRequest::get("/v1/conversations"))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.body.len() % 512, 0, "errors are padded too");
    s.stop().await;
}

/// `/metrics` answers on the admin listener only; on the API listener (with or without a
/// route prefix) it is an unknown path with the static 404.
async fn metrics_answer_on_the_admin_listener_and_not_on_the_api(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.admin_listen = "127.0.0.1:0".into()).await;
    let admin = s.admin_base.clone().expect("an admin listener");
    assert_ne!(admin, s.base);
    // Something to count first.
    let sur = s.survivor().await;
    s.api()
        .exit(&sur.exit_token, quietline_client::ExitMode::Hide)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let r = http.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("quietline_"), "{text}");
    let unknown_api = s.api().raw(RawRequest::get("/no-such-page")).await.unwrap();
    assert_eq!(unknown_api.status, 404);
    for path in ["/metrics", "/v1/metrics"] {
        let r = s.api().raw(RawRequest::get(path)).await.unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.body, unknown_api.body,
            "{path} answers like an unknown path"
        );
    }
    // The admin listener serves nothing else.
    let r = http
        .get(format!("{admin}/v1/conversations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

/// A client that starts a request and never finishes its body gets `timeout` and the
/// server keeps serving others.
async fn a_stalled_request_times_out_with_the_uniform_error(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(backend, |c| c.request_timeout_secs = 1).await;
    let sur = s.survivor().await;
    let token = sur.api.token().unwrap().as_str().to_owned();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/messages/ack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ids\":["
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // Read the whole answer: the head, then as many body bytes as it announces (or until
    // the server closes). The generous guard only stops a hung test; it is no time bound.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let complete = |got: &[u8]| -> bool {
        let text = String::from_utf8_lossy(got);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            })
            .expect("a content-length");
        body.len() >= len
    };
    while !complete(&got) {
        let n = tokio::time::timeout(std::time::Duration::from_secs(60), conn.read(&mut buf))
            .await
            .expect("the server answers a stalled request")
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(complete(&got), "a complete answer: {text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let parsed: serde_json::Value = serde_json::from_str(body.trim_end()).unwrap();
    assert_eq!(parsed["error"]["code"], "timeout", "{text}");
    // Others are still served.
    sur.api.inbox().await.unwrap();
    s.stop().await;
}

/// The static "no such page" answer, to compare others with.
async fn not_found_page(api: &quietline_client::Api) -> quietline_client::RawResponse {
    api.raw(RawRequest::get("/no/such/page")).await.unwrap()
}

fn same_as_not_found(
    r: &quietline_client::RawResponse,
    page: &quietline_client::RawResponse,
    what: &str,
) {
    assert_eq!(r.status, 404, "{what}");
    assert_eq!(r.body, page.body, "{what}");
    assert_eq!(
        r.headers.get("content-type"),
        page.headers.get("content-type"),
        "{what}"
    );
    assert!(r.headers.get("allow").is_none(), "{what}: no Allow header");
}

async fn health_and_openapi_are_served_under_the_prefix_only(backend: Backend) {
    let s = TestServer::start_with(backend, |c| c.route_prefix = "/static/x7k2".into()).await;
    let bare = quietline_client::Api::new(&s.base).unwrap();
    let page = not_found_page(&bare).await;
    for path in ["/healthz", "/readyz", "/v1/openapi.json"] {
        let r = bare.raw(RawRequest::get(path)).await.unwrap();
        same_as_not_found(&r, &page, path);
        let r = s.api().raw(RawRequest::get(path)).await.unwrap();
        assert_eq!(r.status, 200, "{path} under the prefix");
    }
    s.api().healthz().await.unwrap();
    s.api().readyz().await.unwrap();
    s.stop().await;
}

async fn health_and_openapi_can_move_to_the_admin_listener(backend: Backend) {
    let s = TestServer::start_with(backend, |c| {
        c.admin_listen = "127.0.0.1:0".into();
        c.health_on_admin = true;
    })
    .await;
    let page = not_found_page(&s.api()).await;
    let admin = quietline_client::Api::new(s.admin_base.as_deref().unwrap()).unwrap();
    for path in ["/healthz", "/readyz", "/v1/openapi.json"] {
        let r = s.api().raw(RawRequest::get(path)).await.unwrap();
        same_as_not_found(&r, &page, path);
        let r = admin.raw(RawRequest::get(path)).await.unwrap();
        assert_eq!(r.status, 200, "{path} on the admin listener");
    }
    admin.readyz().await.unwrap();
    s.stop().await;
}

async fn a_wrong_method_on_a_known_path_answers_like_an_unknown_path(backend: Backend) {
    for prefix in ["", "/static/x7k2"] {
        let s = TestServer::start_with(backend, |c| c.route_prefix = prefix.into()).await;
        let sur = s.survivor().await;
        let page = not_found_page(&s.api()).await;
        use quietline_client::Method;
        for (method, path) in [
            (Method::GET, "/v1/exit".to_owned()),
            (Method::PUT, "/v1/exit/return".to_owned()),
            (Method::DELETE, "/v1/conversations".to_owned()),
            (Method::GET, "/v1/devices/challenge".to_owned()),
            (Method::POST, "/healthz".to_owned()),
            (Method::POST, "/v1/openapi.json".to_owned()),
            (
                Method::PUT,
                format!("/v1/conversations/{}/close", random_id()),
            ),
            (Method::PATCH, "/v1/messages".to_owned()),
        ] {
            let what = format!("{prefix} {method} {path}");
            let r = sur.api.raw(RawRequest::new(method, path)).await.unwrap();
            same_as_not_found(&r, &page, &what);
        }
        s.stop().await;
    }
}

async fn the_api_description_does_not_describe_the_product(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .api()
        .raw(RawRequest::get("/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["info"]["title"], "API");
    let info = doc["info"].to_string().to_lowercase();
    for word in [
        "quietline",
        "relay",
        "encrypt",
        "survivor",
        "advocate",
        "hotline",
    ] {
        assert!(!info.contains(word), "the document's info says {word}");
    }
    let text = String::from_utf8_lossy(&r.body).to_lowercase();
    assert!(!text.contains("quietline"), "the product's name");
    s.stop().await;
}

quietline_tests::on_both!(
    metrics_answer_on_the_admin_listener_and_not_on_the_api,
    a_stalled_request_times_out_with_the_uniform_error,
    disguise_prefix_padding_and_static_404,
    malformed_oversize_and_wrong_bucket_bodies_are_refused_and_store_nothing,
    headers_carry_no_product_name_and_api_responses_are_not_cached,
    openapi_lists_the_relay_routes,
    health_and_openapi_are_served_under_the_prefix_only,
    health_and_openapi_can_move_to_the_admin_listener,
    a_wrong_method_on_a_known_path_answers_like_an_unknown_path,
    the_api_description_does_not_describe_the_product,
);
