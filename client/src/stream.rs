//! The live delivery stream, `GET /v1/stream` (ARCHITECTURE.md, delivery).
//!
//! The relay pushes JSON text frames ([`ServerFrame`]); the client answers with
//! [`ClientFrame::Ack`] once it has processed an envelope or event, which deletes it on the
//! relay (docs/THREAT_MODEL.md, invariant 3). Delivery is at least once: the same envelope may arrive
//! again after a reconnect, so consumers dedupe by envelope id ([`crate::secure`] does).

use crate::api::normalise_base;
use crate::error::{Error, Result};
use futures_util::{SinkExt, StreamExt};
use quietline_proto::Id;
use quietline_proto::wire::{ClientFrame, ServerFrame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open `GET /v1/stream` WebSocket.
pub struct Stream {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

/// The `ws://` or `wss://` URL of the stream under an `http(s)://` base URL.
pub fn stream_url(base: &str) -> Result<String> {
    let base = normalise_base(base)?;
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(Error::Url("scheme is not http or https".into()));
    };
    Ok(format!("{ws}/v1/stream"))
}

impl Stream {
    /// Open the stream of the relay at `base` (an `http(s)://` base URL, route prefix
    /// included) with a device's access token, sent in the `Authorization` header of the
    /// upgrade request (never in the URL, where proxies would log it). A refused upgrade is
    /// [`Error::Api`] with the relay's status and error body.
    pub async fn connect(base: &str, token: &str) -> Result<Stream> {
        let mut req = stream_url(base)?.into_client_request()?;
        let auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| Error::Header(e.to_string()))?;
        req.headers_mut().insert(AUTHORIZATION, auth);
        Self::open(req).await
    }

    /// Open the stream with a ticket from [`crate::Api::stream_ticket`] in the query
    /// instead of a header, as a browser does. A ticket opens one stream; a spent, expired
    /// or unknown one is refused with `unauthorized`.
    pub async fn connect_with_ticket(base: &str, ticket: &str) -> Result<Stream> {
        let url = format!("{}?ticket={ticket}", stream_url(base)?);
        Self::open(url.into_client_request()?).await
    }

    async fn open(req: tungstenite::handshake::client::Request) -> Result<Stream> {
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Stream { ws }),
            Err(tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp.body().as_deref().unwrap_or(&[]);
                Err(Error::from_response(status, body))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The next frame from the relay; `Ok(None)` when the relay closed the stream.
    /// Control frames are handled here (pings are answered by the WebSocket layer).
    pub async fn next(&mut self) -> Result<Option<ServerFrame>> {
        while let Some(msg) = self.ws.next().await {
            match msg {
                Ok(Message::Text(text)) => {
                    return Ok(Some(serde_json::from_str(text.as_str())?));
                }
                Ok(Message::Binary(bytes)) => {
                    return Ok(Some(serde_json::from_slice(&bytes)?));
                }
                Ok(Message::Close(_)) => return Ok(None),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Acknowledge envelopes and events by id; the relay deletes them and answers with an
    /// `acked` frame.
    pub async fn ack(&mut self, ids: &[Id]) -> Result<()> {
        self.send(&ClientFrame::Ack { ids: ids.to_vec() }).await
    }

    /// Send any client frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        let text = serde_json::to_string(frame)?;
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Send a raw text frame (for tests of malformed input).
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<()> {
        self.ws.send(Message::text(text.into())).await?;
        Ok(())
    }

    /// Close the stream politely.
    pub async fn close(mut self) -> Result<()> {
        match self.ws.close(None).await {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_follow_the_base_url() {
        assert_eq!(
            stream_url("http://127.0.0.1:8080/x7/").unwrap(),
            "ws://127.0.0.1:8080/x7/v1/stream"
        );
        assert_eq!(
            stream_url("https://help.example.org").unwrap(),
            "wss://help.example.org/v1/stream"
        );
        assert!(stream_url("ws://example.org").is_err());
    }

    #[tokio::test]
    async fn refused_upgrades_keep_status_and_error_body() {
        // A one-shot HTTP server on loopback that refuses the upgrade as the relay would.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = r#"{"error":{"code":"unauthorized","message":"missing, invalid or expired credentials"}}"#;
            let resp = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await.unwrap();
            head
        });
        let err = Stream::connect(&format!("http://{addr}/p"), "tok")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(401));
        assert!(err.is(quietline_proto::ErrorCode::Unauthorized));
        let head = server.await.unwrap();
        assert!(head.starts_with("GET /p/v1/stream "), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer tok")
        );
    }
}
