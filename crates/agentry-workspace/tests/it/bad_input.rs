//! Each kind of bad input yields a typed error with a stable code, and nothing
//! already stored is lost.
use std::path::Path;
use std::process::Command;

use agentry_core::ErrorCode;
use agentry_workspace::{
    Content, NewRecord, PgStore, RecordQuery, SqliteOptions, SqliteStore, Store, Workspace,
    WorkspaceError,
};

use crate::common::pg_store;

fn code<T: std::fmt::Debug>(r: Result<T, WorkspaceError>) -> &'static str {
    r.map(|v| panic!("expected an error, got {v:?}"))
        .unwrap_err()
        .code()
}

#[tokio::test]
async fn corrupt_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(".agentry/workspace.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let ws = Workspace::open(dir.path()).build().unwrap();
    let err = ws
        .put(NewRecord::new("c", Content::Text("x".into())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "workspace.corrupt_database", "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
}

#[tokio::test]
async fn foreign_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada');")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    assert_eq!(
        code(SqliteStore::open_path(&db).await),
        "workspace.foreign_database"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[tokio::test]
async fn sqlite_schema_too_new_is_refused_and_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ws.db");
    let s = SqliteStore::open_path(&db).await.unwrap();
    let r = s
        .put(NewRecord::new("keep", Content::Text("precious".into())))
        .await
        .unwrap();
    drop(s);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = SqliteStore::open_path(&db).await.unwrap_err();
    assert_eq!(err.code(), "workspace.schema_too_new");
    assert!(matches!(
        err,
        WorkspaceError::SchemaTooNew {
            found: 99,
            supported: 1
        }
    ));
    // Nothing was changed: an older copy of the code still finds the data.
    let c = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM records WHERE id = ?1",
            [r.id.as_str()],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    let v: i64 = c
        .pragma_query_value(None, "user_version", |x| x.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[tokio::test]
async fn postgres_schema_too_new_is_refused() {
    let Some(s) = pg_store().await else { return };
    let url = format!("{}?schema={}", crate::common::pg_base_url(), s.schema());
    s.put(NewRecord::new("keep", Content::Text("precious".into())))
        .await
        .unwrap();
    let (client, conn) =
        tokio_postgres::connect(&crate::common::pg_base_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "INSERT INTO \"{}\".agentry_schema_migrations(version) VALUES (42)",
            s.schema()
        ))
        .await
        .unwrap();
    let err = PgStore::connect(&url).await.unwrap_err();
    assert_eq!(err.code(), "workspace.schema_too_new");
    assert_eq!(
        s.search(RecordQuery::new().collection("keep"))
            .await
            .unwrap()
            .len(),
        1
    );
    s.drop_schema().await.unwrap();
}

#[tokio::test]
async fn postgres_unreachable_is_a_connection_error() {
    let err = PgStore::connect("postgres://nobody@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "workspace.connection");
    assert_eq!(
        code(PgStore::connect("postgres://x@h/db?schema=Bad-Name").await),
        "workspace.invalid_input"
    );
}

/// Makes `dir` unwritable even for root (immutable attribute), else by mode bits.
fn make_read_only(dir: &Path) -> bool {
    let chattr = Command::new("chattr")
        .arg("+i")
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !chattr {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let probe = dir.join(".probe");
    let writable = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    assert!(
        !writable,
        "could not make {} read-only on this machine",
        dir.display()
    );
    chattr
}

fn make_writable(dir: &Path, chattr: bool) {
    if chattr {
        Command::new("chattr").arg("-i").arg(dir).status().unwrap();
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[tokio::test]
async fn read_only_directory_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("existing.txt"), b"keep me").unwrap();
    let chattr = make_read_only(dir.path());
    let ws = Workspace::open(dir.path()).build().unwrap();
    let put = ws.put(NewRecord::new("c", Content::Text("x".into()))).await;
    let file = ws
        .write_file("new.txt", b"x", &agentry_core::ExecutionId::new())
        .await;
    let read = ws.read_file("existing.txt", None).await;
    make_writable(dir.path(), chattr);
    assert_eq!(code(put), "workspace.read_only_location");
    assert_eq!(code(file), "workspace.read_only_location");
    assert_eq!(read.unwrap().bytes, b"keep me");
}

#[tokio::test]
async fn read_only_store_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ws.db");
    let rw = SqliteStore::open_path(&db).await.unwrap();
    let r = rw
        .put(NewRecord::new("c", Content::Text("x".into())))
        .await
        .unwrap();
    let mut o = SqliteOptions::new(&db);
    o.read_only = true;
    let ro = SqliteStore::open(o).await.unwrap();
    assert!(ro.capabilities().read_only);
    assert_eq!(ro.get(&r.id).await.unwrap().bytes, b"x");
    assert_eq!(
        code(ro.put(NewRecord::new("c", Content::Text("y".into()))).await),
        "workspace.store_read_only"
    );
}

#[tokio::test]
async fn disk_full_is_mapped_and_earlier_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ws.db");
    let mut o = SqliteOptions::new(&db);
    o.max_page_count = Some(64); // a 256 KiB quota stands in for a full disk
    let s = SqliteStore::open(o).await.unwrap();
    let mut kept = Vec::new();
    let mut full = None;
    for i in 0..200 {
        match s
            .put(NewRecord::new(
                "fill",
                Content::Text(format!("{i} {}", "y".repeat(8 * 1024))),
            ))
            .await
        {
            Ok(r) => kept.push(r),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let err = full.expect("the quota was never hit");
    assert_eq!(err.code(), "workspace.disk_full", "{err}");
    assert!(!kept.is_empty());
    for r in &kept {
        assert_eq!(s.get(&r.id).await.unwrap().reference.id, r.id);
    }
    assert!(s.integrity_check().await.unwrap().is_empty());
    // A small write that fits still succeeds after the failure.
    drop(s);
    let s = SqliteStore::open_path(&db).await.unwrap();
    s.put(NewRecord::new("after", Content::Text("ok".into())))
        .await
        .unwrap();
}

/// Many writes queued on one store run as one group transaction with a savepoint
/// each: the losers of a CAS and a conflicting append fail alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_writes_fail_individually() {
    use agentry_workspace::{EventAppend, EventQuery, NewSnapshot, StateVersion};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(
        SqliteStore::open_path(dir.path().join("ws.db"))
            .await
            .unwrap(),
    );
    let exe = agentry_core::ExecutionId::new();
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let s = s.clone();
        let exe = exe.clone();
        tasks.push(tokio::spawn(async move {
            let snap = s
                .put_snapshot(NewSnapshot::new(
                    "grouped",
                    json!({ "i": i }),
                    StateVersion(0),
                ))
                .await;
            // Every task sends key "same"; only identical payloads are accepted.
            let ev = s
                .append(EventAppend::new(exe, "same", "t", json!({ "i": i % 2 })))
                .await;
            (snap.is_ok(), ev.map(|a| a.seq).map_err(|e| e.code()))
        }));
    }
    let mut wins = 0;
    let mut accepted = 0;
    for t in tasks {
        let (won, ev) = t.await.unwrap();
        wins += usize::from(won);
        match ev {
            Ok(seq) => {
                assert_eq!(seq, 1);
                accepted += 1;
            }
            Err(code) => assert_eq!(code, "workspace.idempotency_conflict"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(
        accepted, 16,
        "exactly the tasks whose payload matched the first"
    );
    assert_eq!(
        s.query_events(EventQuery::new(exe.as_str()))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.get_snapshot("grouped", None)
            .await
            .unwrap()
            .unwrap()
            .meta
            .state_version,
        StateVersion(1)
    );
}

/// Small snapshots are read on the calling task, large ones on a reader thread;
/// both come back whole, by newest and by version.
#[tokio::test]
async fn small_and_large_snapshots_read_back_whole() {
    use agentry_workspace::{INLINE_READ_MAX, NewSnapshot, StateVersion};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open_path(dir.path().join("ws.db"))
        .await
        .unwrap();
    let small = json!({"text": "x".repeat(1024)});
    let large = json!({"text": "y".repeat(INLINE_READ_MAX as usize * 2)});
    s.put_snapshot(NewSnapshot::new("r", small.clone(), StateVersion(0)))
        .await
        .unwrap();
    s.put_snapshot(NewSnapshot::new("r", large.clone(), StateVersion(1)))
        .await
        .unwrap();
    let newest = s.get_snapshot("r", None).await.unwrap().unwrap();
    assert_eq!(newest.state, large);
    assert_eq!(newest.meta.state_version, StateVersion(2));
    let first = s
        .get_snapshot("r", Some(StateVersion(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.state, small);
    assert!(s.get_snapshot("absent", None).await.unwrap().is_none());
}
