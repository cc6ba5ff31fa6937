use std::path::Path;

use serde_json::Value;

use crate::{agentry, output, stderr, stdout};

async fn json_of(dir: &Path, args: &[&str]) -> Value {
    let mut cmd = agentry(dir);
    cmd.args(args);
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

async fn run_and_inspect(dir: &Path, location: &[&str]) {
    let mut cmd = agentry(dir);
    cmd.args(["run", "--model", "test", "--record", "--json"])
        .args(location)
        .arg("persist me");
    let o = output(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let id = result["execution_id"].as_str().unwrap().to_owned();
    let emitted = result["meta"]["event_count"].as_u64().unwrap();

    let mut args = vec!["workspace"];
    args.extend_from_slice(location);
    let records = json_of(dir, &[&args[..], &["records", "--json"]].concat()).await;
    assert_eq!(records.as_array().unwrap().len(), 1);
    assert_eq!(records[0]["collection"], "observations");

    let events = json_of(
        dir,
        &[&args[..], &["events", "--execution", &id, "--json"]].concat(),
    )
    .await;
    let seqs: Vec<u64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.len() as u64 >= emitted,
        "{} stored, {emitted} emitted",
        seqs.len()
    );
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    let snapshots = json_of(dir, &[&args[..], &["snapshots", "--json"]].concat()).await;
    assert_eq!(snapshots[0]["run_id"], id.as_str());
    let leases = json_of(dir, &[&args[..], &["leases", "--json"]].concat()).await;
    assert!(leases.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_workspace_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    run_and_inspect(dir.path(), &["--workspace", ws.to_str().unwrap()]).await;
    assert!(ws.join(".agentry/workspace.db").is_file());
}

#[tokio::test]
async fn postgres_workspace_round_trip() {
    let schema = format!(
        "agentry_cli_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let url = format!("postgres://postgres@127.0.0.1:5432/test?schema={schema}");
    let dir = tempfile::tempdir().unwrap();
    run_and_inspect(dir.path(), &["--workspace-url", &url]).await;
    let dropped = std::process::Command::new("psql")
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .status()
        .unwrap();
    assert!(dropped.success());
}

#[tokio::test]
async fn unreachable_store_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agentry(dir.path());
    cmd.args([
        "workspace",
        "--workspace-url",
        "postgres://postgres@127.0.0.1:1/test",
        "records",
    ]);
    let o = output(cmd).await;
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("workspace"), "{}", stderr(&o));
}
