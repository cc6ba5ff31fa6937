use std::time::Duration;

use agentry_exec::process::Limits;
use agentry_exec::sandbox::SandboxMode;
use agentry_exec::{node, python};
use serde_json::json;

use crate::common::{bwrap_available, call};

fn py(mode: SandboxMode, dir: &std::path::Path) -> agentry_actions::FnAction {
    let mut o = python::default_options();
    o.sandbox = mode;
    o.scratch_base = dir.to_path_buf();
    o.limits = Limits {
        timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    python::python_action(o)
}

#[tokio::test]
async fn python_returns_stdout_and_result() {
    let d = tempfile::tempdir().unwrap();
    let a = py(SandboxMode::Off, d.path());
    let v = call(&a, json!({"code": "print('hi')\nresult = {'n': 6 * 7}"}))
        .await
        .unwrap();
    assert_eq!(v["stdout"], "hi\n");
    assert_eq!(v["result"], json!({"n": 42}));
    assert_eq!(v["isolation"], "none");
}

#[tokio::test]
async fn node_returns_stdout_and_result() {
    let d = tempfile::tempdir().unwrap();
    let mut o = node::default_options();
    o.sandbox = SandboxMode::Off;
    o.scratch_base = d.path().to_path_buf();
    let a = node::node_action(o);
    let v = call(
        &a,
        json!({"code": "console.log('hi'); let result = [1, 2, 3].map(x => x * 2);"}),
    )
    .await
    .unwrap();
    assert_eq!(v["stdout"], "hi\n");
    assert_eq!(v["result"], json!([2, 4, 6]));
}

#[tokio::test]
async fn python_under_bwrap_reports_bubblewrap() {
    if !bwrap_available() {
        eprintln!("skipped: bubblewrap unavailable");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let a = py(SandboxMode::Required, d.path());
    let v = call(&a, json!({"code": "result = 1"})).await.unwrap();
    assert_eq!(v["isolation"], "bubblewrap");
    assert_eq!(v["result"], 1);
}
