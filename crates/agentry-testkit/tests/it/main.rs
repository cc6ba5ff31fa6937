//! Integration tests: drive the mock server over real HTTP with reqwest and raw sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chat;
mod faults;
mod responses;
mod server;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use agentry_testkit::MockServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client with a short overall timeout, so a broken server fails a test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn post(server: &MockServer, endpoint: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{endpoint}", server.base_url()))
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub fn chat_body(user: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-test",
        "stream": stream,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": user}]
    })
}

pub fn responses_body(user: &str, stream: bool) -> Value {
    json!({"model": "gpt-test", "stream": stream, "input": user})
}

/// SSE frames of a body (blank-line separated, empty ones dropped).
pub fn frames(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The `data:` payload of a frame.
pub fn data(frame: &str) -> Option<&str> {
    frame.lines().find_map(|l| l.strip_prefix("data: "))
}

/// The `event:` name of a frame.
pub fn event(frame: &str) -> Option<&str> {
    frame.lines().find_map(|l| l.strip_prefix("event: "))
}

/// Parsed JSON payloads of all data frames except `[DONE]`.
pub fn json_frames(text: &str) -> Vec<Value> {
    frames(text)
        .iter()
        .filter_map(|f| data(f))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Sends a raw HTTP request on a fresh socket and reads until end of stream, an error, or `limit`.
/// Returns the bytes read, and the error (if the read ended with one) or `None` at a clean EOF.
/// Panics if `limit` elapses.
pub async fn raw_exchange(
    addr: SocketAddr,
    request: &str,
    limit: Duration,
) -> (String, Option<io::Error>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let outcome = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Some(e),
            }
        }
    })
    .await
    .expect("raw exchange did not finish in time");
    (String::from_utf8_lossy(&got).into_owned(), outcome)
}

/// A raw HTTP/1.1 POST with a JSON body that asks the server to close afterwards.
pub fn raw_post(path: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}
