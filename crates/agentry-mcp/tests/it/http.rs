//! Our own server over Streamable HTTP (the library's server, in process, on
//! 127.0.0.1) and our client against it.
use std::net::SocketAddr;

use agentry_actions::{
    ActionPolicy, ActionRegistry, ActionStatus, Dispatcher, FnAction, SideEffect,
};
use agentry_mcp::{McpHttpServer, McpServerConfig, ServeOptions, UseMcpOptions};
use serde_json::json;
use tokio::sync::oneshot;

use crate::common::*;

pub fn test_registry() -> ActionRegistry {
    let mut reg = ActionRegistry::new();
    reg.register_fn(FnAction::new(
        "add",
        "Adds two integers.",
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
        |_, v| async move { Ok(json!({"sum": v["a"].as_i64().unwrap_or(0) + v["b"].as_i64().unwrap_or(0)})) },
    ))
    .unwrap();
    reg.register_fn(
        FnAction::new(
            "wipe",
            "Needs approval.",
            json!({"type": "object"}),
            |_, _| async { Ok(json!("wiped")) },
        )
        .side_effect(SideEffect::Write)
        .approval_required(true),
    )
    .unwrap();
    reg.register_fn(FnAction::new(
        "big",
        "Returns `bytes` bytes.",
        json!({"type": "object", "properties": {"bytes": {"type": "integer"}}}),
        |_, v| async move { Ok(json!("x".repeat(v["bytes"].as_u64().unwrap_or(0) as usize))) },
    ))
    .unwrap();
    reg.register_fn(
        FnAction::new(
            "secret",
            "Has a host-only key.",
            json!({"type": "object", "properties": {"q": {"type": "string"}, "admin": {"type": "boolean"}}}),
            |_, v| async move { Ok(json!({"admin": v.get("admin").cloned().unwrap_or(json!(false))})) },
        )
        .host_only_input_key("admin"),
    )
    .unwrap();
    reg
}

pub struct Running {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), agentry_mcp::McpError>>,
}

impl Running {
    pub async fn start(dispatcher: Dispatcher) -> Self {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = McpHttpServer::bind(addr, dispatcher, ServeOptions::default())
            .await
            .unwrap();
        let url = server.url();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            url,
            stop: Some(tx),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn http_round_trip_with_policy_and_approval() {
    let running = Running::start(Dispatcher::new(test_registry(), &ActionPolicy::new())).await;
    let config = McpServerConfig::http(&running.url).header("Authorization", "Bearer test-token");
    let s = Setup::new(
        "web",
        config,
        UseMcpOptions::default(),
        &ActionPolicy::new(),
    )
    .await;
    let ids: Vec<String> = s.set.tools().into_iter().map(|t| t.action_id).collect();
    assert_eq!(ids, ["add", "wipe", "big", "secret"]);
    // Host-only keys are hidden from the exposed schema.
    let schema = &s
        .dispatcher
        .registry()
        .get("secret")
        .unwrap()
        .spec()
        .input_schema;
    assert!(schema["properties"].get("admin").is_none(), "{schema}");

    let r = s.call("add", json!({"a": 20, "b": 22})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert_eq!(r.data, Some(json!({"sum": 42})));

    let r = s.call("wipe", json!({})).await;
    assert_eq!(r.error_code(), Some("mcp.tool_error"));
    let msg = &r.error.as_ref().unwrap().message;
    assert!(
        msg.contains("approval_required") && msg.contains("approval.pending"),
        "{msg}"
    );

    // An MCP client is untrusted: it cannot set host-only keys.
    let v = s
        .server
        .call_tool(
            "secret",
            json!({"q": "x", "admin": true}),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(v, json!({"admin": false}));

    // Unknown tools are a JSON-RPC error.
    let err = s
        .server
        .call_tool("nope", json!({}), Default::default())
        .await
        .unwrap_err();
    assert_eq!(agentry_core::ErrorCode::code(&err), "mcp.rpc_error");

    assert!(s.server.health().await.is_ok());
    s.server.release().await;
    running.stop().await;
}

#[tokio::test]
async fn list_and_call_helpers_for_the_cli() {
    let running = Running::start(Dispatcher::new(test_registry(), &ActionPolicy::new())).await;
    let config = McpServerConfig::http(&running.url);
    let tools = agentry_mcp::list_server_tools("web", &config)
        .await
        .unwrap();
    let listed = serde_json::to_value(&tools).unwrap();
    assert_eq!(listed[0]["name"], "add");
    assert_eq!(listed[0]["input_schema"]["required"], json!(["a", "b"]));
    let v = agentry_mcp::call_server_tool("web", &config, "add", json!({"a": 1, "b": 1}))
        .await
        .unwrap();
    assert_eq!(v, json!({"sum": 2}));
    running.stop().await;
}

#[tokio::test]
async fn oversized_http_responses_end_the_connection_and_the_next_call_reconnects() {
    let running = Running::start(Dispatcher::new(test_registry(), &ActionPolicy::new())).await;
    let server = agentry_mcp::McpServer::new("web", McpServerConfig::http(&running.url))
        .unwrap()
        .with_limits(std::time::Duration::from_secs(1), 8192);
    let v = server
        .call_tool("big", json!({"bytes": 10}), Default::default())
        .await
        .unwrap();
    assert_eq!(v, json!("xxxxxxxxxx"));
    let err = server
        .call_tool("big", json!({"bytes": 100_000}), Default::default())
        .await
        .unwrap_err();
    // rmcp's HTTP worker stops on an oversized body and only logs why.
    assert_eq!(
        agentry_core::ErrorCode::code(&err),
        "mcp.server_exited",
        "{err}"
    );
    // The connection is re-opened for the next call.
    let v = server
        .call_tool("add", json!({"a": 1, "b": 2}), Default::default())
        .await
        .unwrap();
    assert_eq!(v["sum"], 3);
    assert_eq!(server.restarts(), 1);
    server.release().await;
    running.stop().await;
}

#[tokio::test]
async fn the_server_refuses_invalid_json_rpc_and_keeps_serving() {
    let running = Running::start(Dispatcher::new(test_registry(), &ActionPolicy::new())).await;
    let http = reqwest::Client::new();
    for body in [
        "this is not json",
        r#"{"jsonrpc": "2.0", "method": 42}"#,
        "[]",
    ] {
        let resp = http
            .post(&running.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{body}: {}", resp.status());
    }
    let v = agentry_mcp::call_server_tool(
        "web",
        &McpServerConfig::http(&running.url),
        "add",
        json!({"a": 2, "b": 2}),
    )
    .await
    .unwrap();
    assert_eq!(v["sum"], 4);
    running.stop().await;
}

#[tokio::test]
async fn serve_io_works_over_any_byte_stream() {
    let dispatcher = Dispatcher::new(test_registry(), &ActionPolicy::new());
    let (client_side, server_side) = tokio::io::duplex(64 * 1024);
    let (sr, sw) = tokio::io::split(server_side);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(agentry_mcp::serve_io(
        dispatcher,
        ServeOptions::default(),
        sr,
        sw,
        async move {
            let _ = stop_rx.await;
        },
    ));
    // A bare rmcp client on the other end (this crate may use rmcp in its tests).
    use rmcp::ServiceExt;
    let client = ().serve(client_side).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 4);
    let mut p = rmcp::model::CallToolRequestParams::new("wipe");
    p.arguments = Some(serde_json::Map::new());
    let r = client.call_tool(p).await.unwrap();
    assert_eq!(
        r.is_error,
        Some(true),
        "approval-required actions answer a tool error"
    );
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}
