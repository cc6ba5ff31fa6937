//! Throughput of the Workspace stores, with raw `rusqlite` doing the same SQL work
//! as the floor for the SQLite figures.
//!
//! ```text
//! cargo run --release -p agentry-workspace --example bench
//! AGENTRY_PG_URL=postgres://postgres@127.0.0.1:5432/test   (default)
//! AGENTRY_SKIP_PG=1                                        (SQLite only)
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_core::{ExecutionId, Timestamp};
use agentry_workspace::{
    EventAppend, NewSnapshot, PgStore, SqliteStore, StateVersion, Store, canonical_json, sha256_hex,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

const SINGLE: usize = 5_000;
const BATCHES: usize = 40;
const BATCH: usize = 500;
const CONCURRENT: usize = 8;
const PER_TASK: usize = 1_000;
const LEASE_ROUNDS: usize = 2_000;

fn state_of(bytes: usize) -> Value {
    let item = json!({"id": 0, "status": "done", "note": "x".repeat(100)});
    let per = item.to_string().len() + 1;
    let n = bytes / per;
    json!({"schema": 1, "items": (0..n).map(|i| json!({"id": i, "status": "done", "note": "x".repeat(100)})).collect::<Vec<_>>()})
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:>10.0}/s", n as f64 / d.as_secs_f64())
}

fn per_op(n: usize, d: Duration) -> String {
    format!("{:>9.1} µs/op", d.as_secs_f64() * 1e6 / n as f64)
}

struct Figures {
    single: Duration,
    batch: Duration,
    concurrent: Duration,
    snap_small: Duration,
    snap_large: Duration,
    lease: Duration,
}

const SMALL_ROUNDS: usize = 500;
const LARGE_ROUNDS: usize = 30;

async fn bench_store(store: Arc<dyn Store>) -> Figures {
    let exe = ExecutionId::new();
    let t = Instant::now();
    for i in 0..SINGLE {
        store
            .append(EventAppend::new(
                exe.clone(),
                format!("k{i}"),
                "bench.step",
                json!({"i": i}),
            ))
            .await
            .unwrap();
    }
    let single = t.elapsed();

    let exe = ExecutionId::new();
    let t = Instant::now();
    for b in 0..BATCHES {
        let batch = (0..BATCH)
            .map(|i| {
                EventAppend::new(
                    exe.clone(),
                    format!("k{b}-{i}"),
                    "bench.step",
                    json!({"i": i}),
                )
            })
            .collect();
        store.append_batch(batch).await.unwrap();
    }
    let batch = t.elapsed();

    let t = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let exe = ExecutionId::new();
                for i in 0..PER_TASK {
                    store
                        .append(EventAppend::new(
                            exe.clone(),
                            format!("k{i}"),
                            "bench.step",
                            json!({"i": i}),
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = t.elapsed();

    let snap = |bytes: usize, rounds: usize, run: String| {
        let store = store.clone();
        async move {
            // The caller owns its state and hands it over; the copies the
            // benchmark's rounds need are made before the clock starts.
            let states: Vec<Value> = (0..rounds).map(|_| state_of(bytes)).collect();
            let t = Instant::now();
            for (v, state) in states.into_iter().enumerate() {
                let v = v as u64;
                store
                    .put_snapshot(
                        NewSnapshot::new(run.clone(), state, StateVersion(v)).keep_last(3),
                    )
                    .await
                    .unwrap();
                let got = store.get_snapshot(&run, None).await.unwrap().unwrap();
                assert_eq!(got.meta.state_version, StateVersion(v + 1));
            }
            t.elapsed()
        }
    };
    let snap_small = snap(
        10 * 1024,
        SMALL_ROUNDS,
        format!("small-{}", uuid::Uuid::new_v4()),
    )
    .await;
    let snap_large = snap(
        1024 * 1024,
        LARGE_ROUNDS,
        format!("large-{}", uuid::Uuid::new_v4()),
    )
    .await;

    let key = format!("lease-{}", uuid::Uuid::new_v4());
    let t = Instant::now();
    let mut lease = store.claim_lease(&key, "bench", 60_000).await.unwrap();
    for i in 0..LEASE_ROUNDS {
        if i % 2 == 0 {
            lease = store
                .heartbeat_lease(&lease.fence(), "bench")
                .await
                .unwrap();
        } else {
            lease = store.claim_lease(&key, "bench", 60_000).await.unwrap();
        }
    }
    let lease_d = t.elapsed();
    Figures {
        single,
        batch,
        concurrent,
        snap_small,
        snap_large,
        lease: lease_d,
    }
}

/// The same SQL work done directly on one connection: the floor.
fn bench_raw(path: &std::path::Path) -> Figures {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE event_heads(execution_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE events(execution_id TEXT NOT NULL, seq INTEGER NOT NULL, idem_key TEXT NOT NULL, event_type TEXT NOT NULL,
           at_ms INTEGER NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY(execution_id, seq)) WITHOUT ROWID;
         CREATE UNIQUE INDEX events_idem ON events(execution_id, idem_key);
         CREATE TABLE snapshot_heads(run_id TEXT PRIMARY KEY, state_version INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE snapshots(run_id TEXT NOT NULL, state_version INTEGER NOT NULL, schema_version INTEGER NOT NULL, step_id TEXT,
           digest TEXT NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL, state BLOB NOT NULL,
           PRIMARY KEY(run_id, state_version)) WITHOUT ROWID;
         CREATE TABLE leases(key TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, ttl_ms INTEGER NOT NULL,
           expires_at INTEGER NOT NULL, released INTEGER NOT NULL) WITHOUT ROWID;",
    )
    .unwrap();
    // The floor does the same work the store must do for its guarantees: a
    // canonical body and its digest (to tell a retried append from a conflicting
    // one), the time stamps, the gap-free counter.
    let append = |exe: &str, key: &str, body: &Value| {
        let body = canonical_json(body);
        let digest = sha256_hex(body.as_bytes());
        let found: Option<i64> = c
            .prepare_cached("SELECT seq FROM events WHERE execution_id = ?1 AND idem_key = ?2")
            .unwrap()
            .query_row(params![exe, key], |r| r.get(0))
            .optional()
            .unwrap();
        assert!(found.is_none());
        let seq: i64 = c
            .prepare_cached(
                "INSERT INTO event_heads VALUES (?1, 1, ?2) ON CONFLICT(execution_id) DO UPDATE SET last_seq = last_seq + 1, updated_at = excluded.updated_at RETURNING last_seq",
            )
            .unwrap()
            .query_row(params![exe, Timestamp::now().as_millis()], |r| r.get(0))
            .unwrap();
        c.prepare_cached("INSERT INTO events VALUES (?1, ?2, ?3, 'bench.step', ?4, ?5, ?6)")
            .unwrap()
            .execute(params![
                exe,
                seq,
                key,
                Timestamp::now().as_millis(),
                digest,
                body
            ])
            .unwrap();
    };
    let tx = |f: &mut dyn FnMut()| {
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        f();
        c.execute_batch("COMMIT").unwrap();
    };
    let exe = ExecutionId::new().to_string();
    let t = Instant::now();
    for i in 0..SINGLE {
        tx(&mut || append(&exe, &format!("k{i}"), &json!({"i": i})));
    }
    let single = t.elapsed();
    let exe = ExecutionId::new().to_string();
    let t = Instant::now();
    for b in 0..BATCHES {
        tx(&mut || {
            for i in 0..BATCH {
                append(&exe, &format!("k{b}-{i}"), &json!({"i": i}));
            }
        });
    }
    let batch = t.elapsed();
    // One connection cannot do better for 8 executions than one transaction per append.
    let t = Instant::now();
    for _ in 0..CONCURRENT {
        let exe = ExecutionId::new().to_string();
        for i in 0..PER_TASK {
            tx(&mut || append(&exe, &format!("k{i}"), &json!({"i": i})));
        }
    }
    let concurrent = t.elapsed();
    let snap = |bytes: usize, rounds: usize| {
        let state = state_of(bytes);
        let run = uuid::Uuid::new_v4().to_string();
        let t = Instant::now();
        for v in 0..rounds as i64 {
            let s = canonical_json(&state).into_bytes();
            let digest = sha256_hex(&s);
            tx(&mut || {
                let cur: i64 = c
                    .prepare_cached("SELECT state_version FROM snapshot_heads WHERE run_id = ?1")
                    .unwrap()
                    .query_row([&run], |r| r.get(0))
                    .optional()
                    .unwrap()
                    .unwrap_or(0);
                assert_eq!(cur, v);
                c.prepare_cached("INSERT INTO snapshot_heads VALUES (?1, ?2) ON CONFLICT(run_id) DO UPDATE SET state_version = excluded.state_version")
                    .unwrap()
                    .execute(params![run, v + 1])
                    .unwrap();
                c.prepare_cached("INSERT INTO snapshots VALUES (?1, ?2, 1, NULL, ?3, ?4, ?5, ?6)")
                    .unwrap()
                    .execute(params![
                        run,
                        v + 1,
                        digest,
                        s.len() as i64,
                        Timestamp::now().as_millis(),
                        s
                    ])
                    .unwrap();
                c.prepare_cached(
                    "DELETE FROM snapshots WHERE run_id = ?1 AND state_version NOT IN \
                     (SELECT state_version FROM snapshots WHERE run_id = ?1 ORDER BY state_version DESC LIMIT 3)",
                )
                .unwrap()
                .execute([&run])
                .unwrap();
            });
            let bytes: Vec<u8> = c
                .prepare_cached("SELECT state FROM snapshots WHERE run_id = ?1 ORDER BY state_version DESC LIMIT 1")
                .unwrap()
                .query_row([&run], |r| r.get(0))
                .unwrap();
            let back: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(back.is_object());
        }
        t.elapsed()
    };
    let snap_small = snap(10 * 1024, SMALL_ROUNDS);
    let snap_large = snap(1024 * 1024, LARGE_ROUNDS);
    let t = Instant::now();
    tx(&mut || {
        c.execute(
            "INSERT INTO leases VALUES ('k', 'bench', 1, 60000, 0, 0)",
            [],
        )
        .unwrap();
    });
    for _ in 0..LEASE_ROUNDS {
        tx(&mut || {
            let (owner, token): (String, i64) = c
                .prepare_cached("SELECT owner, token FROM leases WHERE key = 'k'")
                .unwrap()
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            assert_eq!(owner, "bench");
            c.prepare_cached("UPDATE leases SET token = ?1, expires_at = ?2 WHERE key = 'k'")
                .unwrap()
                .execute(params![token + 1, 1])
                .unwrap();
        });
    }
    let lease = t.elapsed();
    Figures {
        single,
        batch,
        concurrent,
        snap_small,
        snap_large,
        lease,
    }
}

fn print(name: &str, f: &Figures, floor: Option<&Figures>) {
    let ratio = |a: Duration, b: Option<Duration>| match b {
        Some(b) => format!("  ({:.2}× floor)", a.as_secs_f64() / b.as_secs_f64()),
        None => String::new(),
    };
    println!("== {name}");
    println!(
        "  event append, single writer       {}{}",
        rate(SINGLE, f.single),
        ratio(f.single, floor.map(|x| x.single))
    );
    println!(
        "  event append_batch ({BATCH}/batch)     {}{}",
        rate(BATCHES * BATCH, f.batch),
        ratio(f.batch, floor.map(|x| x.batch))
    );
    println!(
        "  event append, {CONCURRENT} executions     {}{}",
        rate(CONCURRENT * PER_TASK, f.concurrent),
        ratio(f.concurrent, floor.map(|x| x.concurrent))
    );
    println!(
        "  snapshot put+get 10 KiB           {}{}",
        per_op(SMALL_ROUNDS, f.snap_small),
        ratio(f.snap_small, floor.map(|x| x.snap_small))
    );
    println!(
        "  snapshot put+get 1 MiB            {}{}",
        per_op(LARGE_ROUNDS, f.snap_large),
        ratio(f.snap_large, floor.map(|x| x.snap_large))
    );
    println!(
        "  lease claim/heartbeat round trip  {}{}",
        per_op(LEASE_ROUNDS, f.lease),
        ratio(f.lease, floor.map(|x| x.lease))
    );
}

impl Figures {
    /// The better of two runs, figure by figure: other builds share this machine,
    /// so the fastest of several interleaved runs is the least disturbed one.
    fn best(self, o: Figures) -> Figures {
        Figures {
            single: self.single.min(o.single),
            batch: self.batch.min(o.batch),
            concurrent: self.concurrent.min(o.concurrent),
            snap_small: self.snap_small.min(o.snap_small),
            snap_large: self.snap_large.min(o.snap_large),
            lease: self.lease.min(o.lease),
        }
    }
}

const REPEAT: usize = 3;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    if std::env::var("AGENTRY_BENCH_FOCUS").as_deref() == Ok("append") {
        // For profiling the single-append path alone.
        let store = SqliteStore::open_path(dir.path().join("focus.db"))
            .await
            .unwrap();
        let exe = ExecutionId::new();
        let t = Instant::now();
        for i in 0..50_000 {
            store
                .append(EventAppend::new(
                    exe.clone(),
                    format!("k{i}"),
                    "bench.step",
                    json!({"i": i}),
                ))
                .await
                .unwrap();
        }
        println!("focus: single append {}", rate(50_000, t.elapsed()));
        let key = "focus-lease";
        let mut lease = store.claim_lease(key, "bench", 60_000).await.unwrap();
        let t = Instant::now();
        for _ in 0..50_000 {
            lease = store
                .heartbeat_lease(&lease.fence(), "bench")
                .await
                .unwrap();
        }
        println!("focus: heartbeat {}", per_op(50_000, t.elapsed()));
        let t = Instant::now();
        for i in 0..50_000 {
            let _ = EventAppend::new(exe.clone(), format!("k{i}"), "bench.step", json!({"i": i}))
                .prepare()
                .unwrap();
        }
        println!("focus: prepare only {}", per_op(50_000, t.elapsed()));
        return;
    }
    if std::env::var("AGENTRY_BENCH_FOCUS").as_deref() == Ok("snapshot") {
        let store = SqliteStore::open_path(dir.path().join("focus.db"))
            .await
            .unwrap();
        let n = 2_000;
        let states: Vec<Value> = (0..n).map(|_| state_of(10 * 1024)).collect();
        let t = Instant::now();
        for (v, state) in states.into_iter().enumerate() {
            store
                .put_snapshot(NewSnapshot::new("focus", state, StateVersion(v as u64)).keep_last(3))
                .await
                .unwrap();
        }
        println!("focus: snapshot put 10 KiB {}", per_op(n, t.elapsed()));
        let t = Instant::now();
        for _ in 0..n {
            store.get_snapshot("focus", None).await.unwrap().unwrap();
        }
        println!("focus: snapshot get 10 KiB {}", per_op(n, t.elapsed()));
        let state = state_of(10 * 1024);
        let t = Instant::now();
        for _ in 0..n {
            let c = canonical_json(&state);
            let _ = sha256_hex(c.as_bytes());
            let _: Value = serde_json::from_str(&c).unwrap();
        }
        println!(
            "focus: canonical+sha+parse 10 KiB {}",
            per_op(n, t.elapsed())
        );
        return;
    }
    let mut raw: Option<Figures> = None;
    let mut figures: Option<Figures> = None;
    for rep in 0..REPEAT {
        let raw_path = dir.path().join(format!("raw-{rep}.db"));
        let r = tokio::task::spawn_blocking(move || bench_raw(&raw_path))
            .await
            .unwrap();
        raw = Some(match raw {
            Some(prev) => prev.best(r),
            None => r,
        });
        let sqlite = SqliteStore::open_path(dir.path().join(format!("ws-{rep}.db")))
            .await
            .unwrap();
        let f = bench_store(Arc::new(sqlite)).await;
        figures = Some(match figures {
            Some(prev) => prev.best(f),
            None => f,
        });
    }
    let (raw, figures) = (raw.unwrap(), figures.unwrap());
    println!("(best of {REPEAT} interleaved runs)");
    print("raw rusqlite (floor)", &raw, None);
    print("SqliteStore", &figures, Some(&raw));
    let digest_cost = {
        let s = state_of(1024 * 1024);
        let t = Instant::now();
        let c = canonical_json(&s);
        let _ = sha256_hex(c.as_bytes());
        t.elapsed()
    };
    println!(
        "  (of which canonical JSON + sha256 of 1 MiB: {:.1} µs)",
        digest_cost.as_secs_f64() * 1e6
    );

    if std::env::var("AGENTRY_SKIP_PG").as_deref() == Ok("1") {
        println!("== PgStore skipped (AGENTRY_SKIP_PG=1)");
        return;
    }
    let base = std::env::var("AGENTRY_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let url = format!(
        "{base}?schema=agentry_bench_{}",
        uuid::Uuid::new_v4().simple()
    );
    let pg = PgStore::connect(&url).await.unwrap();
    let figures = bench_store(Arc::new(pg.clone())).await;
    print("PgStore", &figures, None);
    pg.drop_schema().await.unwrap();
}
