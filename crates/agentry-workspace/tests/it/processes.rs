//! Several processes on one store: races and crashes. The worker is this test
//! binary itself, re-run with `AGENTRY_WS_WORKER` set so that only
//! `processes::worker_entry` runs.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_core::{ExecutionId, Timestamp};
use agentry_workspace::conformance::{assert_single_winners, race_contender};
use agentry_workspace::{
    EventAppend, EventQuery, PgStore, SqliteStore, Store, StoreRegistry, canonical_json, sha256_hex,
};
use serde_json::json;

use crate::common::{pg_store, pg_test_url, skip_pg};

async fn open(url: &str) -> Arc<dyn Store> {
    StoreRegistry::with_builtins()
        .open(url, None)
        .await
        .unwrap()
}

/// Runs only inside a worker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_entry() {
    let Ok(mode) = std::env::var("AGENTRY_WS_WORKER") else {
        return;
    };
    let url = std::env::var("AGENTRY_WS_URL").unwrap();
    let store = open(&url).await;
    match mode.as_str() {
        "race" => {
            let start: i64 = std::env::var("AGENTRY_WS_START_AT")
                .unwrap()
                .parse()
                .unwrap();
            let wait = start - Timestamp::now().as_millis();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            let me = format!("pid-{}", std::process::id());
            println!("{}", race_contender(store.as_ref(), &me).await);
        }
        "crash" => {
            let exe = ExecutionId::parse("exe_crash").unwrap();
            let big = "x".repeat(64 * 1024);
            let mut round = 0u64;
            loop {
                let batch: Vec<EventAppend> = (0..200)
                    .map(|i| {
                        EventAppend::new(
                            exe.clone(),
                            format!("r{round}-{i}"),
                            "crash.step",
                            json!({"r": round, "i": i}),
                        )
                    })
                    .collect();
                store.append_batch(batch).await.unwrap();
                store
                    .put_checkpoint("crash-run", None, json!({"round": round, "pad": big}))
                    .await
                    .unwrap();
                if round == 0 {
                    println!("READY");
                }
                round += 1;
            }
        }
        other => panic!("unknown worker mode {other}"),
    }
}

fn spawn_worker(mode: &str, url: &str, extra: &[(&str, String)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "processes::worker_entry",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("AGENTRY_WS_WORKER", mode)
    .env("AGENTRY_WS_URL", url)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

const PROCS: usize = 6;

fn race_processes(url: &str) {
    let start = Timestamp::now().as_millis() + 2_000;
    let children: Vec<_> = (0..PROCS)
        .map(|_| spawn_worker("race", url, &[("AGENTRY_WS_START_AT", start.to_string())]))
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "worker failed");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    assert_single_winners(&outputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_processes_race_cas_and_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ws.db");
    SqliteStore::open_path(&path).await.unwrap(); // create the schema once
    let url = format!("sqlite://{}", path.display());
    tokio::task::spawn_blocking(move || race_processes(&url))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_processes_race_cas_and_lease() {
    let Some(store) = pg_store().await else {
        return;
    };
    let url = format!("{}?schema={}", crate::common::pg_base_url(), store.schema());
    let r = tokio::task::spawn_blocking(move || race_processes(&url)).await;
    store.drop_schema().await.unwrap();
    r.unwrap();
}

/// Starts a writer, kills it with SIGKILL in the middle of its write loop, then
/// checks the store: batches are all-or-nothing, sequences gap-free, snapshot
/// history consistent with the head.
async fn crash_writer(url: &str) -> Arc<dyn Store> {
    let url2 = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = spawn_worker("crash", &url2, &[]);
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = lines.next().expect("worker output").unwrap();
            if line.contains("READY") {
                break;
            }
            assert!(Instant::now() < deadline, "worker never became ready");
        }
        std::thread::sleep(Duration::from_millis(400));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
    })
    .await
    .unwrap();
    let store = open(url).await;
    let events = store
        .query_events(EventQuery::new("exe_crash").limit(10_000))
        .await
        .unwrap();
    assert!(!events.is_empty());
    assert_eq!(
        events.len() % 200,
        0,
        "a batch was torn: {} events",
        events.len()
    );
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as u64 + 1),
        "sequence has gaps"
    );
    let hist = store
        .snapshot_history("crash-run", Some(10_000))
        .await
        .unwrap();
    let head = store
        .get_snapshot("crash-run", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.meta.state_version.0, hist.len() as u64);
    assert_eq!(
        head.meta.digest,
        sha256_hex(canonical_json(&head.state).as_bytes())
    );
    // And the store still takes writes after the crash.
    store
        .append(EventAppend::new(
            ExecutionId::parse("exe_crash").unwrap(),
            "after",
            "t",
            json!(1),
        ))
        .await
        .unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill_mid_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ws.db");
    crash_writer(&format!("sqlite://{}", path.display())).await;
    let s = SqliteStore::open_path(&path).await.unwrap();
    assert!(s.integrity_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_sigkill_mid_transaction() {
    if skip_pg() {
        eprintln!("AGENTRY_SKIP_PG=1: skipping");
        return;
    }
    let url = pg_test_url();
    let s = PgStore::connect(&url)
        .await
        .expect("PostgreSQL must be reachable (or set AGENTRY_SKIP_PG=1)");
    let r = tokio::spawn({
        let url = url.clone();
        async move { crash_writer(&url).await }
    })
    .await;
    s.drop_schema().await.unwrap();
    r.unwrap();
}
