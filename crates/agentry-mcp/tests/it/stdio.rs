//! Our own server over stdio, as a real child process.
use std::time::Duration;

use agentry_actions::{ActionPolicy, ActionStatus};
use agentry_core::ErrorCode;
use agentry_mcp::{
    CallLimits, McpError, McpServer, RestartPolicy, SharedRegistry, ToolNaming, UseMcpOptions,
    use_mcp,
};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn tools_register_as_actions_and_calls_pass_the_dispatcher() {
    let s = Setup::new(
        "own",
        own_stdio(),
        UseMcpOptions::default(),
        &ActionPolicy::new(),
    )
    .await;
    let ids: Vec<String> = s.set.tools().into_iter().map(|t| t.action_id).collect();
    assert_eq!(
        ids,
        [
            "echo",
            "add",
            "greet",
            "fail",
            "sleep",
            "delete_everything",
            "crash",
            "big",
            "env_probe"
        ],
        "registration order is the server's listing order; host-only actions are not offered"
    );
    let entry = s.dispatcher.registry().get("add").unwrap();
    assert_eq!(entry.spec().executor_kind, "mcp");
    assert_eq!(entry.spec().description, "Adds two integers.");
    assert!(entry.spec().tags.contains(&"mcp:own".to_owned()));
    assert_eq!(entry.spec().input_schema["required"], json!(["a", "b"]));

    let r = s.call("add", json!({"a": 2, "b": 3})).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert_eq!(r.data, Some(json!({"sum": 5})));

    let r = s.call("greet", json!({"name": "bob"})).await;
    assert_eq!(r.data, Some(json!("hello bob")));

    // Schema violations are caught locally, before the server sees the call.
    let r = s.call("add", json!({"a": "two", "b": 3})).await;
    assert_eq!(r.error_code(), Some("action.input.schema_violation"));

    // Tool errors are error records carrying the server's text.
    let r = s.call("fail", json!({})).await;
    assert_eq!(r.status, ActionStatus::Error);
    assert_eq!(r.error_code(), Some("mcp.tool_error"));
    let msg = &r.error.as_ref().unwrap().message;
    assert!(
        msg.contains("this action always fails") && msg.contains("test.failed"),
        "{msg}"
    );

    // The remote server's approval gate (fail-closed) answers with a tool error.
    let r = s.call("delete_everything", json!({})).await;
    assert_eq!(r.error_code(), Some("mcp.tool_error"));
    assert!(
        r.error.as_ref().unwrap().message.contains("approval"),
        "{r:?}"
    );

    assert!(s.server.health().await.is_ok());
    s.server.release().await;
}

#[tokio::test]
async fn local_policy_and_approval_apply_to_mcp_tools() {
    let options = UseMcpOptions {
        approval_required: true,
        naming: ToolNaming::Always,
        ..UseMcpOptions::default()
    };
    let s = Setup::new("own", own_stdio(), options, &ActionPolicy::new()).await;
    assert!(
        s.dispatcher.registry().get("own.add").is_some(),
        "always namespaced"
    );
    let r = s.call("own.add", json!({"a": 1, "b": 1})).await;
    assert_eq!(
        r.status,
        ActionStatus::ApprovalRequired,
        "fail-closed approval: {r:?}"
    );

    let denied = Setup::new(
        "own",
        own_stdio(),
        UseMcpOptions::default(),
        &ActionPolicy::new().deny_tag("mcp:own"),
    )
    .await;
    let r = denied.call("add", json!({"a": 1, "b": 1})).await;
    assert_eq!(r.status, ActionStatus::Blocked);
    s.server.release().await;
    denied.server.release().await;
}

#[tokio::test]
async fn names_collide_into_server_namespace() {
    let a = McpServer::new("a", own_stdio()).unwrap();
    let b = McpServer::new("b", own_stdio()).unwrap();
    let mut registry = agentry_actions::ActionRegistry::new();
    use_mcp(&mut registry, &a, UseMcpOptions::default())
        .await
        .unwrap();
    let set_b = use_mcp(&mut registry, &b, UseMcpOptions::default())
        .await
        .unwrap();
    assert_eq!(set_b.tools()[0].action_id, "b.echo");
    assert!(registry.contains("echo") && registry.contains("b.echo"));
    a.release().await;
    b.release().await;
}

#[tokio::test]
async fn release_closes_stdin_and_the_child_exits() {
    let server = McpServer::new("own", own_stdio()).unwrap();
    server.ensure().await.unwrap();
    let pid = server.pid().await.unwrap();
    assert!(process_alive(pid));
    let started = std::time::Instant::now();
    server.release().await;
    eprintln!("release took {:?}", started.elapsed());
    assert!(
        !process_alive(pid),
        "child {pid} still running after release"
    );
    // The handle reconnects on the next call (not a restart).
    assert_eq!(server.list_tools().await.unwrap().len(), 9);
    assert_eq!(server.restarts(), 0);
    let pid2 = server.pid().await.unwrap();
    drop(server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!process_alive(pid2), "child {pid2} survived the handle");
}

#[tokio::test]
async fn a_crashed_server_is_restarted_on_the_next_call() {
    let server = McpServer::new("own", own_stdio()).unwrap();
    let err = server
        .call_tool("crash", json!({}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.server_exited", "{err}");
    assert!(
        err.to_string().contains("crashing on request"),
        "stderr tail is quoted: {err}"
    );
    let v = server
        .call_tool("add", json!({"a": 1, "b": 2}), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(v, json!({"sum": 3}));
    assert_eq!(server.restarts(), 1);
    server.release().await;

    let never = McpServer::new("own", own_stdio().restart_policy(RestartPolicy::Never)).unwrap();
    let err = never
        .call_tool("crash", json!({}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.server_exited");
    let err = never
        .call_tool("add", json!({"a": 1, "b": 2}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.restart_refused");
}

#[tokio::test]
async fn call_timeout_fires_without_progress_and_the_server_stays_usable() {
    let server = McpServer::new("own", own_stdio()).unwrap();
    let limits = CallLimits {
        timeout: Some(Duration::from_millis(200)),
        max_total: None,
    };
    let err = server
        .call_tool("sleep", json!({"ms": 3000}), limits)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.call_timeout");
    assert!(matches!(
        err,
        McpError::CallTimeout {
            what: "saw no response or progress",
            ..
        }
    ));
    let v = server
        .call_tool("add", json!({"a": 1, "b": 2}), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(v["sum"], 3);
    assert_eq!(server.restarts(), 0);
    server.release().await;
}

#[tokio::test]
async fn progress_resets_the_call_timeout_but_not_the_maximum_total() {
    let server = McpServer::new("raw", raw_stdio()).unwrap();
    // 6 × 100 ms of work with a 250 ms inactivity timeout: progress keeps it alive.
    let limits = CallLimits {
        timeout: Some(Duration::from_millis(250)),
        max_total: Some(Duration::from_secs(10)),
    };
    let v = server
        .call_tool("progress", json!({"steps": 6, "interval_ms": 100}), limits)
        .await
        .unwrap();
    assert_eq!(v, json!({"steps": 6}));
    // The maximum total wins over progress.
    let limits = CallLimits {
        timeout: Some(Duration::from_millis(250)),
        max_total: Some(Duration::from_millis(400)),
    };
    let err = server
        .call_tool("progress", json!({"steps": 10, "interval_ms": 100}), limits)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            McpError::CallTimeout {
                what: "ran past its maximum total time",
                ..
            }
        ),
        "{err}"
    );
    server.release().await;
}

#[tokio::test]
async fn results_errors_images_and_structured_content() {
    let s = Setup::new(
        "raw",
        raw_stdio(),
        UseMcpOptions::default(),
        &ActionPolicy::new(),
    )
    .await;
    let r = s.call("structured", json!({})).await;
    assert_eq!(r.data, Some(json!({"answer": 42})));
    let r = s.call("image", json!({})).await;
    let parts = r.data.as_ref().unwrap()["content"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(parts[0], json!({"type": "text", "text": "a red dot"}));
    assert_eq!(parts[1]["type"], "image");
    assert_eq!(parts[1]["mimeType"], "image/png");
    assert_eq!(parts[1]["data"], "iVBORw0KGgo=");
    let r = s.call("tool_error", json!({})).await;
    assert_eq!(r.error_code(), Some("mcp.tool_error"));
    assert_eq!(r.error.as_ref().unwrap().message, "the disk is on fire");

    // A bad schema is refused with a code; an odd name is rewritten.
    let skipped = s.set.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].tool, "bad_schema");
    assert_eq!(skipped[0].code, "mcp.invalid_tool_schema");
    let r = s.call("weird_name_with_spaces", json!({})).await;
    assert_eq!(r.data, Some(json!("weird ok")));
    s.server.release().await;
}

#[tokio::test]
async fn list_changed_refreshes_the_registry() {
    let server = McpServer::new("raw", raw_stdio()).unwrap();
    let mut registry = agentry_actions::ActionRegistry::new();
    let set = use_mcp(&mut registry, &server, UseMcpOptions::default())
        .await
        .unwrap();
    assert!(!registry.contains("late"));
    let shared: SharedRegistry = std::sync::Arc::new(std::sync::RwLock::new(registry));
    let _guard = set.auto_refresh(shared.clone());
    let before = shared.read().unwrap().ids().len();
    server
        .call_tool("add_tool", json!({}), CallLimits::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !shared.read().unwrap().contains("late") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "registry never saw the new tool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shared.read().unwrap().ids().len(), before + 1);
    assert_eq!(shared.read().unwrap().ids().last().copied(), Some("late"));
    // A manual refresh with nothing new changes nothing.
    let mut reg = shared.read().unwrap().clone();
    let report = set.refresh(&mut reg).await.unwrap();
    assert!(
        report.added.is_empty() && report.removed.is_empty() && report.updated.is_empty(),
        "{report:?}"
    );
    let r = agentry_actions::Dispatcher::new(reg, &ActionPolicy::new())
        .call(&scope(), agentry_actions::HostCall::new("late", json!({})))
        .await;
    assert_eq!(r.data, Some(json!("late tool ran")));
    server.release().await;
}

#[tokio::test]
async fn garbage_on_stdout_is_a_protocol_error_and_the_next_call_restarts() {
    let server = McpServer::new("raw", raw_stdio()).unwrap();
    let err = server
        .call_tool("garbage", json!({}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.protocol", "{err}");
    assert!(err.to_string().contains("this is not JSON-RPC"), "{err}");
    let v = server
        .call_tool("structured", json!({}), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(v["answer"], 42);
    assert_eq!(server.restarts(), 1);
    server.release().await;
}

#[tokio::test]
async fn oversized_messages_close_the_connection_with_a_typed_error() {
    let server = McpServer::new("own", own_stdio())
        .unwrap()
        .with_limits(Duration::from_secs(1), 4096);
    let ok = server
        .call_tool("big", json!({"bytes": 100}), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(ok.as_str().map(str::len), Some(100));
    let err = server
        .call_tool("big", json!({"bytes": 10000}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.message_too_large", "{err}");
    server.release().await;
}

#[tokio::test]
async fn a_hung_server_is_killed_and_restarted_on_the_next_call() {
    let server = McpServer::new("raw", raw_stdio()).unwrap();
    server.ensure().await.unwrap();
    let pid = server.pid().await.unwrap();
    let limits = CallLimits {
        timeout: Some(Duration::from_millis(200)),
        max_total: None,
    };
    let err = server
        .call_tool("hang", json!({}), limits)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.call_timeout", "{err}");
    let v = server
        .call_tool("structured", json!({}), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(v["answer"], 42);
    assert_eq!(server.restarts(), 1);
    assert_ne!(server.pid().await, Some(pid));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "hung child {pid} was not killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.release().await;
}

#[tokio::test]
async fn the_child_gets_its_cwd_and_env_but_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = own_stdio().env_var("MY_SETTING", "on");
    config.cwd = Some(dir.path().to_path_buf());
    let names = json!({"names": ["MY_SETTING", "CARGO_PKG_NAME", "PATH"]});
    let server = McpServer::new("own", config.clone()).unwrap();
    let v = server
        .call_tool("env_probe", names.clone(), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(v["vars"]["MY_SETTING"], "on");
    assert!(
        v["vars"]["CARGO_PKG_NAME"].is_null(),
        "the parent's environment leaked: {v}"
    );
    assert!(v["vars"]["PATH"].is_string());
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(v["cwd"], cwd.display().to_string());
    server.release().await;

    let inherit = McpServer::new("own", config.inherit_env(true)).unwrap();
    let v = inherit
        .call_tool("env_probe", names, CallLimits::default())
        .await
        .unwrap();
    assert_eq!(v["vars"]["CARGO_PKG_NAME"], "agentry-mcp");
    inherit.release().await;
}

#[tokio::test]
async fn several_servers_register_all_or_nothing() {
    let mut config = agentry_mcp::McpServersConfig::default();
    config.servers.insert("one".into(), own_stdio());
    config.servers.insert("two".into(), own_stdio());
    let mut registry = agentry_actions::ActionRegistry::new();
    let sets = agentry_mcp::use_mcp_servers(&mut registry, &config, UseMcpOptions::default())
        .await
        .unwrap();
    assert_eq!(sets.len(), 2);
    assert!(registry.contains("add") && registry.contains("two.add"));
    for s in &sets {
        s.server().release().await;
    }

    config.servers.insert("zz_broken".into(), sh("exit 1"));
    let mut registry = agentry_actions::ActionRegistry::new();
    let err = agentry_mcp::use_mcp_servers(&mut registry, &config, UseMcpOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.server(), Some("zz_broken"));
    assert!(
        registry.is_empty(),
        "nothing registered when one server fails"
    );
}
