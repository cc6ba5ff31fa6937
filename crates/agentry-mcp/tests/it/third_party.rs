//! A server written by others: `@modelcontextprotocol/server-everything` from npm,
//! installed by `tests/install-third-party.sh` (never by the tests: they stay off the
//! network). Missing → the test fails with the install command, unless
//! `AGENTRY_SKIP_THIRD_PARTY_MCP=1`.
use std::path::PathBuf;

use agentry_actions::{ActionPolicy, ActionStatus};
use agentry_mcp::{McpServerConfig, UseMcpOptions};
use serde_json::json;

use crate::common::*;

fn everything() -> Option<McpServerConfig> {
    let entry = everything_entry()?;
    Some(
        McpServerConfig::stdio(
            "node",
            [entry.to_string_lossy().into_owned(), "stdio".into()],
        )
        .connect_timeout(std::time::Duration::from_secs(60)),
    )
}

fn everything_entry() -> Option<PathBuf> {
    let entry = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "tests/third_party/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    );
    if entry.is_file() {
        return Some(entry);
    }
    if std::env::var("AGENTRY_SKIP_THIRD_PARTY_MCP").as_deref() == Ok("1") {
        eprintln!("skipping: server-everything not installed and AGENTRY_SKIP_THIRD_PARTY_MCP=1");
        return None;
    }
    panic!(
        "third-party MCP server missing: {} does not exist.\n\
         Run `crates/agentry-mcp/tests/install-third-party.sh` (needs node and npm), \
         or set AGENTRY_SKIP_THIRD_PARTY_MCP=1 to skip this test.",
        entry.display()
    );
}

#[tokio::test]
async fn server_everything_tools_work_as_actions() {
    let Some(config) = everything() else { return };
    let s = Setup::new(
        "everything",
        config,
        UseMcpOptions::default(),
        &ActionPolicy::new(),
    )
    .await;
    let ids: Vec<String> = s.set.tools().into_iter().map(|t| t.action_id).collect();
    for expected in ["echo", "get-sum", "get-tiny-image"] {
        assert!(
            ids.iter().any(|i| i == expected),
            "{expected} missing from {ids:?}"
        );
    }
    assert!(s.set.skipped().is_empty(), "{:?}", s.set.skipped());
    let spec = s
        .dispatcher
        .registry()
        .get("get-sum")
        .unwrap()
        .spec()
        .clone();
    assert_eq!(
        spec.side_effect,
        agentry_actions::SideEffect::Read,
        "readOnlyHint is honoured"
    );

    let r = s.call("echo", json!({"message": "hi there"})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert!(
        r.data
            .as_ref()
            .unwrap()
            .as_str()
            .unwrap()
            .contains("hi there"),
        "{r:?}"
    );

    let r = s.call("get-sum", json!({"a": 2, "b": 40})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert!(r.data.as_ref().unwrap().to_string().contains("42"), "{r:?}");

    let r = s.call("get-tiny-image", json!({})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    let parts = r.data.as_ref().unwrap()["content"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        parts
            .iter()
            .any(|p| p["type"] == "image" && p["mimeType"] == "image/png"),
        "{parts:?}"
    );

    // Wrong argument types are refused locally, by the tool's own schema.
    let r = s.call("get-sum", json!({"a": "two", "b": 40})).await;
    assert_eq!(r.error_code(), Some("action.input.schema_violation"));

    assert!(s.server.health().await.is_ok());
    s.server.release().await;
}

/// server-everything listens on every interface; this preload pins it to loopback so
/// the test never opens a port beyond 127.0.0.1.
const LOOPBACK_PRELOAD: &str = "const http = require('http'); \
const listen = http.Server.prototype.listen; \
http.Server.prototype.listen = function (port, ...rest) { \
  return listen.call(this, port, '127.0.0.1', ...rest.filter((x) => typeof x === 'function')); \
}; \
import(require('url').pathToFileURL(process.argv[1]).href);";

/// Starts server-everything's HTTP server in `mode` (`streamableHttp` or `sse`) on a
/// free loopback port and waits until it listens.
async fn start_everything_http(
    entry: &std::path::Path,
    mode: &str,
) -> (tokio::process::Child, u16) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new("node")
        .arg("-e")
        .arg(LOOPBACK_PRELOAD)
        .arg(entry)
        .arg(mode)
        .env("PORT", port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server-everything did not listen on {port}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "server-everything exited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (child, port)
}

#[tokio::test]
async fn server_everything_over_streamable_http() {
    let Some(entry) = everything_entry() else {
        return;
    };
    let (mut child, port) = start_everything_http(&entry, "streamableHttp").await;
    let config = McpServerConfig::http(format!("http://127.0.0.1:{port}/mcp"));
    let s = Setup::new(
        "everything",
        config,
        UseMcpOptions::default(),
        &ActionPolicy::new(),
    )
    .await;
    let r = s.call("get-sum", json!({"a": 40, "b": 2})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert!(r.data.as_ref().unwrap().to_string().contains("42"), "{r:?}");
    let r = s
        .call("get-structured-content", json!({"location": "New York"}))
        .await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert!(
        r.data.as_ref().unwrap().is_object(),
        "structured content comes back as JSON: {r:?}"
    );
    s.server.release().await;
    let _ = child.kill().await;
}

#[tokio::test]
async fn server_everything_over_legacy_sse() {
    let Some(entry) = everything_entry() else {
        return;
    };
    let (mut child, port) = start_everything_http(&entry, "sse").await;
    let config = McpServerConfig::sse(format!("http://127.0.0.1:{port}/sse"))
        .header("Authorization", "Bearer ignored-by-everything")
        .connect_timeout(std::time::Duration::from_secs(60));
    let s = Setup::new(
        "everything",
        config,
        UseMcpOptions::default(),
        &ActionPolicy::new(),
    )
    .await;
    let ids: Vec<String> = s.set.tools().into_iter().map(|t| t.action_id).collect();
    for expected in ["echo", "get-sum", "get-tiny-image"] {
        assert!(
            ids.iter().any(|i| i == expected),
            "{expected} missing from {ids:?}"
        );
    }
    let r = s.call("echo", json!({"message": "over legacy sse"})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert!(
        r.data
            .as_ref()
            .unwrap()
            .to_string()
            .contains("over legacy sse"),
        "{r:?}"
    );
    let r = s.call("get-sum", json!({"a": 40, "b": 2})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert!(r.data.as_ref().unwrap().to_string().contains("42"), "{r:?}");
    let r = s.call("get-tiny-image", json!({})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert!(s.server.health().await.is_ok());
    s.server.release().await;
    // A fresh session after the release (the endpoint carries a new session id).
    let r = s.call("get-sum", json!({"a": 1, "b": 2})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert_eq!(s.server.restarts(), 0, "a release is not a restart");
    s.server.release().await;
    let _ = child.kill().await;
}
