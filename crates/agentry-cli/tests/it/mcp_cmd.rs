use std::path::Path;

use agentry_testkit::{MockServer, MockToolCall, Reply, Rule, Scenario};
use serde_json::{Value, json};

use crate::{agentry, output, stderr, stdout};

fn workspace_with_notes(dir: &Path) -> std::path::PathBuf {
    let ws = dir.join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "mcp says hello").unwrap();
    ws
}

/// `NAME=<agentry> mcp serve …`: our own binary as an MCP server over stdio.
fn self_server(ws: &Path) -> String {
    format!(
        "self={} mcp serve --enable files --workspace {}",
        env!("CARGO_BIN_EXE_agentry"),
        ws.display()
    )
}

#[tokio::test]
async fn serve_over_stdio_then_list_and_call_with_our_own_client() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace_with_notes(dir.path());
    let mut cmd = agentry(dir.path());
    cmd.args(["mcp", "list", "--json", "--server", &self_server(&ws)]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tools: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"read_file") && names.contains(&"list_files"),
        "{names:?}"
    );

    let mut cmd = agentry(dir.path());
    cmd.args([
        "mcp",
        "call",
        "--server",
        &self_server(&ws),
        "read_file",
        r#"{"path": "notes.txt"}"#,
    ]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("mcp says hello"), "{}", stdout(&o));

    // Containment holds through MCP too: the refusal is a tool error, exit 1.
    let mut cmd = agentry(dir.path());
    cmd.args([
        "mcp",
        "call",
        "--server",
        &self_server(&ws),
        "read_file",
        r#"{"path": "../x"}"#,
    ]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("mcp.tool_error"), "{}", stderr(&o));
}

#[tokio::test]
async fn run_uses_mcp_tools_as_actions() {
    let scenario = Scenario::new()
        .rule(
            Rule::when_no_tool_results().reply(Reply::tool_calls(vec![MockToolCall::new(
                "c1",
                "read_file",
                json!({"path": "notes.txt"}),
            )])),
        )
        .rule(Rule::when_tool_results().reply(Reply::text("read it")));
    let server = MockServer::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace_with_notes(dir.path());
    let mut cmd = agentry(dir.path());
    cmd.env("OPENAI_BASE_URL", server.base_url()).args([
        "run",
        "--model",
        "m",
        "--mcp",
        &self_server(&ws),
        "--json",
        "read my notes",
    ]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let log = &v["meta"]["actions"]["action_logs"][0];
    assert_eq!(log["action_id"], "read_file");
    assert_eq!(log["status"], "success");
    assert!(log["data"].to_string().contains("mcp says hello"));
    assert!(
        server.requests()[0]
            .tool_names()
            .contains(&"read_file".to_string())
    );
}

#[tokio::test]
async fn serve_over_streamable_http() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace_with_notes(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = agentry(dir.path());
    serve
        .args([
            "mcp",
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--enable",
            "files",
            "--workspace",
            ws.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null());
    let mut child = serve.spawn().unwrap();
    let url = format!("h=http://127.0.0.1:{port}/mcp");
    let mut listed = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut cmd = agentry(dir.path());
        cmd.args([
            "mcp",
            "call",
            "--server",
            &url,
            "read_file",
            r#"{"path": "notes.txt"}"#,
        ]);
        let o = output(cmd).await;
        if o.status.code() == Some(0) {
            listed = Some(stdout(&o));
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        listed
            .expect("the HTTP server answered")
            .contains("mcp says hello")
    );
}

#[tokio::test]
async fn unknown_or_broken_servers_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, code) in [
        ("nope", 2),
        ("x=/nonexistent/server-binary", 1),
        ("h=http://127.0.0.1:1/mcp", 1),
    ] {
        let mut cmd = agentry(dir.path());
        cmd.args(["mcp", "list", "--server", spec]);
        let o = output(cmd).await;
        assert_eq!(o.status.code(), Some(code), "{spec}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("agentry:"), "{spec}: {}", stderr(&o));
    }
}
