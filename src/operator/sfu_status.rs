//! Reads a running SFU's `/status` (participant count and uptime, nothing personal)
//! for the Meeting's `status.participants`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// How long the operator waits for an SFU's answer; a slow SFU only delays the count.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The largest `/status` body read.
const MAX_BODY: usize = 4096;

/// What the SFU's `/status` says.
#[derive(Debug, Deserialize)]
pub struct SfuStatus {
    /// People connected now.
    pub participants: u32,
}

/// A small HTTP client for SFU status endpoints.
#[derive(Clone)]
pub struct SfuStatusClient {
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for SfuStatusClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl SfuStatusClient {
    /// The participant count of the SFU at `addr`, or `None` when it does not answer
    /// in time or answers nonsense (the count then keeps its last value).
    pub async fn participants(&self, addr: std::net::SocketAddr) -> Option<u32> {
        let uri: hyper::Uri = format!("http://{addr}/status").parse().ok()?;
        let fetch = async {
            let resp = self.http.get(uri).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .ok()?
                .to_bytes();
            serde_json::from_slice::<SfuStatus>(&body).ok()
        };
        tokio::time::timeout(TIMEOUT, fetch)
            .await
            .ok()
            .flatten()
            .map(|s| s.participants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn serve_once(response: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(response.as_bytes()).await.unwrap();
        });
        port
    }

    #[tokio::test]
    async fn reads_the_count() {
        let body = r#"{"participants":3,"uptimeSeconds":12}"#;
        let resp: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let port = serve_once(resp).await;
        let c = SfuStatusClient::default();
        assert_eq!(c.participants(([127, 0, 0, 1], port).into()).await, Some(3));
    }

    #[tokio::test]
    async fn nonsense_or_silence_is_none() {
        let c = SfuStatusClient::default();
        let port =
            serve_once("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                .await;
        assert_eq!(c.participants(([127, 0, 0, 1], port).into()).await, None);
        let port =
            serve_once("HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        assert_eq!(c.participants(([127, 0, 0, 1], port).into()).await, None);
        // Nobody listens.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = l.local_addr().unwrap().port();
        drop(l);
        assert_eq!(c.participants(([127, 0, 0, 1], closed).into()).await, None);
    }
}
