use agentry_testkit::{Fault, MockServer, Reply, Scenario};
use serde_json::{Value, json};

use crate::{agentry, output, stderr, stdout};

#[tokio::test]
async fn main_job_with_the_test_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agentry(dir.path());
    cmd.args(["run", "--model", "test", "Summarize what Agentry does"]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).contains("Summarize what Agentry does"),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("done in"), "{}", stderr(&o));
}

#[tokio::test]
async fn json_result_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agentry(dir.path());
    cmd.args(["run", "--model", "test", "--json", "hello"]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["status"], "success");
    assert!(v["text"].as_str().unwrap().contains("hello"));
    assert_eq!(v["meta"]["status"], "success");
    assert_eq!(v["meta"]["diagnostics"]["budget"]["model_requests_used"], 1);
}

#[tokio::test]
async fn events_jsonl_are_gap_free_runtime_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agentry(dir.path());
    cmd.args(["run", "--model", "test", "--events", "jsonl", "hello"]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0));
    let events: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() >= 8);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
    }
    assert_eq!(events[0]["type"], "agent_execution.started");
    assert_eq!(events.last().unwrap()["type"], "agent_execution.completed");
}

#[tokio::test]
async fn output_schema_prints_validated_json() {
    let dir = tempfile::tempdir().unwrap();
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}, "score": {"type": "integer", "minimum": 1, "maximum": 5}}, "required": ["title", "score"]});
    std::fs::write(dir.path().join("schema.json"), schema.to_string()).unwrap();
    let mut cmd = agentry(dir.path());
    cmd.args([
        "run",
        "--model",
        "test",
        "--output",
        "schema.json",
        "rate Rust",
    ]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["title"].is_string());
    let score = v["score"].as_i64().unwrap();
    assert!((1..=5).contains(&score));
}

#[tokio::test]
async fn openai_compatible_server_from_the_environment() {
    let server = MockServer::start(Scenario::new().fallback(Reply::text("served by the mock")))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agentry(dir.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("AGENTRY_MODEL", "mock-model")
        .env("OPENAI_API_KEY", "sk-cli-test-secret-777")
        .args(["run", "--events", "jsonl", "hello there"]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("served"), "{out}");
    assert!(
        !out.contains("sk-cli-test-secret-777"),
        "the key leaked into events"
    );
    let req = &server.requests()[0];
    assert_eq!(req.body["model"], "mock-model");
    assert_eq!(
        req.header("authorization"),
        Some("Bearer sk-cli-test-secret-777")
    );
}

#[tokio::test]
async fn failed_execution_exits_1_with_the_code() {
    let server = MockServer::start(Scenario::new().fallback(Reply::text("x").fault(
        Fault::HttpStatus {
            status: 401,
            body: "{\"error\":{\"message\":\"invalid key\"}}".into(),
        },
    )))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agentry(dir.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .args(["run", "--model", "m", "--json", "hello"]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["code"], "model.http_status");
    assert!(stderr(&o).contains("model.http_status"));
}

#[tokio::test]
async fn usage_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "hello"],                                      // no model configured
        vec!["run", "--model", "test"],                            // no prompt
        vec!["run", "--model", "test", "--max-seconds", "0", "x"], // invalid limit
        // A negative number is a value to validate, not an unknown flag.
        vec!["run", "--model", "test", "--max-seconds", "-1", "x"],
        vec![
            "run",
            "--model",
            "test",
            "--max-no-progress-seconds",
            "-2",
            "x",
        ],
        vec!["run", "--model", "test", "--output", "missing.json", "x"],
        vec!["run", "--bogus-flag"],
    ];
    for args in cases {
        let mut cmd = agentry(dir.path());
        cmd.args(&args);
        let o = output(cmd).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}");
        if args
            .iter()
            .any(|a| a.starts_with('-') && a.len() > 1 && a[1..].parse::<f64>().is_ok())
        {
            assert!(
                stderr(&o).contains("invalid limit"),
                "{args:?}: {}",
                stderr(&o)
            );
        }
        if args[1] != "--bogus-flag" {
            assert_eq!(
                stderr(&o).trim().lines().count(),
                1,
                "{args:?}: {}",
                stderr(&o)
            );
        }
    }
}

#[tokio::test]
async fn prompt_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agentry(dir.path());
    cmd.args(["run", "--model", "test", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let o = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"from stdin")
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("from stdin"));
}

#[tokio::test]
async fn enabled_file_actions_are_confined_to_the_workspace() {
    use agentry_testkit::{MockToolCall, Rule};
    let scenario = Scenario::new()
        .rule(Rule::when_no_tool_results().reply(Reply::tool_calls(vec![
            MockToolCall::new("c1", "read_file", json!({"path": "notes.txt"})),
            MockToolCall::new("c2", "read_file", json!({"path": "../outside.txt"})),
        ])))
        .rule(Rule::when_tool_results().reply(Reply::text("done reading")));
    let server = MockServer::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "the secret of tea").unwrap();
    std::fs::write(dir.path().join("outside.txt"), "not for the model").unwrap();
    let mut cmd = agentry(dir.path());
    cmd.env("OPENAI_BASE_URL", server.base_url()).args([
        "run",
        "--model",
        "m",
        "--enable",
        "files",
        "--workspace",
        ws.to_str().unwrap(),
        "--json",
        "read",
    ]);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["text"], "done reading");
    let logs = v["meta"]["actions"]["action_logs"].as_array().unwrap();
    assert_eq!(logs[0]["status"], "success");
    assert!(logs[0]["data"].to_string().contains("the secret of tea"));
    assert_eq!(logs[1]["status"], "blocked");
    assert!(
        !v.to_string().contains("not for the model"),
        "content outside the root leaked"
    );
    // The model was told about the refusal through the tool message.
    let sent = server
        .requests()
        .into_iter()
        .find(|r| r.has_tool_results())
        .unwrap();
    assert!(sent.raw_body.contains("blocked"), "{}", sent.raw_body);
}
