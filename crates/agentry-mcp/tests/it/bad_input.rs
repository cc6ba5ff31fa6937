//! Misbehaving servers and bad configuration: every case ends in a typed error with a
//! stable code, within its limit, without a panic.
use std::time::{Duration, Instant};

use agentry_core::ErrorCode;
use agentry_mcp::{
    CallLimits, McpError, McpServer, McpServerConfig, McpServersConfig, parse_mcp_arg,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::*;

async fn connect_err(config: McpServerConfig) -> McpError {
    let server = McpServer::new("bad", config).unwrap();
    let started = Instant::now();
    let err = server.ensure().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    err
}

/// A loopback HTTP server answering every request with `response`.
async fn canned_http(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}/mcp")
}

#[tokio::test]
async fn a_server_that_never_answers_initialize_hits_the_connect_timeout() {
    let cfg = sh("while :; do sleep 1; done").connect_timeout(Duration::from_millis(400));
    let err = connect_err(cfg).await;
    assert_eq!(err.code(), "mcp.connect_timeout", "{err}");

    // Same over HTTP: a socket that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut socks = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            socks.push(s);
        }
    });
    let cfg = McpServerConfig::http(format!("http://{addr}/mcp"))
        .connect_timeout(Duration::from_millis(400));
    assert_eq!(connect_err(cfg).await.code(), "mcp.connect_timeout");
}

#[tokio::test]
async fn invalid_json_rpc_is_a_protocol_error() {
    let err = connect_err(sh(r#"read line; echo '{"foo": 1}'; sleep 5"#)).await;
    assert_eq!(err.code(), "mcp.protocol", "{err}");
    let err = connect_err(sh("read line; echo 'Server starting...'; sleep 5")).await;
    assert_eq!(err.code(), "mcp.protocol", "{err}");
    assert!(err.to_string().contains("Server starting"), "{err}");
}

#[tokio::test]
async fn oversized_first_message_is_refused() {
    let server = McpServer::new(
        "big",
        sh("read line; head -c 100000 /dev/zero | tr '\\0' 'x'; echo; sleep 5"),
    )
    .unwrap()
    .with_limits(Duration::from_millis(200), 1024);
    let err = server.ensure().await.unwrap_err();
    assert_eq!(err.code(), "mcp.message_too_large", "{err}");
}

#[tokio::test]
async fn a_server_that_exits_at_once_reports_status_and_stderr() {
    let err = connect_err(sh("echo 'missing API key' >&2; exit 7")).await;
    assert_eq!(err.code(), "mcp.server_exited", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("missing API key") && text.contains('7'),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let err = connect_err(McpServerConfig::stdio(
        "/nonexistent/agentry-mcp-server",
        Vec::<String>::new(),
    ))
    .await;
    assert_eq!(err.code(), "mcp.spawn_failed", "{err}");
}

#[tokio::test]
async fn an_html_page_is_a_protocol_error() {
    let url = canned_http(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 27\r\nConnection: close\r\n\r\n<html><body>hi</body></html>",
    )
    .await;
    let err = connect_err(McpServerConfig::http(url).connect_timeout(Duration::from_secs(5))).await;
    assert_eq!(err.code(), "mcp.protocol", "{err}");
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error() {
    let url = canned_http(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"mcp\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let err =
        connect_err(McpServerConfig::http(&url).header("Authorization", "Bearer wrong")).await;
    assert_eq!(err.code(), "mcp.auth", "{err}");
    // Without a challenge header too.
    let url =
        canned_http("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
    let err = connect_err(McpServerConfig::http(&url)).await;
    assert_eq!(err.code(), "mcp.auth", "{err}");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = connect_err(McpServerConfig::http(format!("http://{addr}/mcp"))).await;
    assert_eq!(err.code(), "mcp.connect_failed", "{err}");
}

#[tokio::test]
async fn configuration_errors_are_typed() {
    let ws = McpServersConfig::from_json_str(
        r#"{"mcpServers": {"ws": {"type": "websocket", "url": "http://127.0.0.1:1/ws"}}}"#,
    )
    .unwrap();
    let err = McpServer::new("ws", ws.servers["ws"].clone()).unwrap_err();
    assert_eq!(err.code(), "mcp.unsupported_transport");
    let sse_without_url = McpServersConfig::from_json_str(
        r#"{"mcpServers": {"old": {"type": "sse", "command": "x"}}}"#,
    )
    .unwrap();
    let err = McpServer::new("old", sse_without_url.servers["old"].clone()).unwrap_err();
    assert_eq!(err.code(), "mcp.config_invalid");
    let bad_sse_header = McpServerConfig::sse("http://127.0.0.1:1/sse").header("bad header", "x");
    assert_eq!(
        connect_err(bad_sse_header).await.code(),
        "mcp.config_invalid"
    );
    assert_eq!(
        parse_mcp_arg("nothing").unwrap_err().code(),
        "mcp.config_invalid"
    );
    let bad_header = McpServerConfig::http("http://127.0.0.1:1/mcp").header("bad header", "x");
    assert_eq!(connect_err(bad_header).await.code(), "mcp.config_invalid");
    let args = McpServerConfig::stdio("x", ["y"]).header("a", "b");
    assert_eq!(
        McpServer::new("x", args).unwrap_err().code(),
        "mcp.config_invalid"
    );
}

#[tokio::test]
async fn arguments_must_be_an_object() {
    let server = McpServer::new("own", own_stdio()).unwrap();
    let err = server
        .call_tool("add", json!([1, 2]), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.config_invalid");
}
