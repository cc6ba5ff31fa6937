use agentry_actions::ActionRegistry;
use agentry_exec::Root;
use agentry_exec::resource::{PermissionProfile, ResourceManager};
use agentry_exec::sqlite::{SqliteOptions, SqliteProvider, sqlite_action};
use serde_json::json;

use crate::common::{Harness, blocked};

fn harness(
    dir: &std::path::Path,
    write: bool,
    profile: PermissionProfile,
) -> (Harness, ResourceManager) {
    let root = Root::new(dir).unwrap();
    let manager = ResourceManager::new(profile);
    manager.register_provider(SqliteProvider::new(root.clone()));
    let mut o = SqliteOptions::new(root);
    o.database = Some("data.db".into());
    o.write = write;
    o.max_rows = 5;
    o.timeout = std::time::Duration::from_millis(300);
    let mut registry = ActionRegistry::new();
    registry.register_fn(sqlite_action(o)).unwrap();
    (Harness::new(registry, &manager), manager)
}

fn seed(dir: &std::path::Path) {
    let c = rusqlite::Connection::open(dir.join("data.db")).unwrap();
    c.execute_batch("create table t(id integer primary key, name text); insert into t(name) values ('a'),('b'),('c'),('d'),('e'),('f'),('g');").unwrap();
}

#[tokio::test]
async fn read_only_by_default() {
    let d = tempfile::tempdir().unwrap();
    seed(d.path());
    let (h, _m) = harness(d.path(), false, PermissionProfile::LocalFiles);
    let v = h
        .run(
            "sqlite_query",
            json!({"query": "select id, name from t where id > ?", "params": [1]}),
        )
        .await
        .unwrap();
    assert_eq!(v["columns"], json!(["id", "name"]));
    assert_eq!(v["rows"][0], json!([2, "b"]));
    assert_eq!(v["row_count"], 5);
    assert_eq!(v["truncated"], true);
    for q in [
        "insert into t(name) values ('x')",
        "delete from t",
        "drop table t",
        "create table u(x)",
        "update t set name = 'z'",
        "vacuum into 'copy.db'",
    ] {
        let e = h
            .run("sqlite_query", json!({"query": q}))
            .await
            .unwrap_err();
        assert_eq!(e.code, "sqlite.write_blocked", "{q}");
        assert!(blocked(&e));
    }
    let e = h
        .run(
            "sqlite_query",
            json!({"query": "attach database '/etc/passwd' as x"}),
        )
        .await
        .unwrap_err();
    assert!(e.code.starts_with("sqlite."), "{e:?}");
    assert!(!d.path().join("copy.db").exists());
    let v = h
        .run("sqlite_query", json!({"query": "select count(*) from t"}))
        .await
        .unwrap();
    assert_eq!(v["rows"][0][0], 7);
}

#[tokio::test]
async fn runaway_statements_are_interrupted() {
    let d = tempfile::tempdir().unwrap();
    seed(d.path());
    let (h, _m) = harness(d.path(), false, PermissionProfile::LocalFiles);
    let e = h
        .run("sqlite_query", json!({"query": "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "sqlite.timeout");
    // The connection is still usable afterwards.
    assert!(
        h.run("sqlite_query", json!({"query": "select 1"}))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn writes_with_the_write_profile_and_one_connection_per_execution() {
    let d = tempfile::tempdir().unwrap();
    let (h, manager) = harness(d.path(), true, PermissionProfile::LocalFiles);
    h.run("sqlite_query", json!({"query": "create table k(v text)"}))
        .await
        .unwrap();
    let v = h
        .run(
            "sqlite_query",
            json!({"query": "insert into k values (?), (?)", "params": ["x", "y"]}),
        )
        .await
        .unwrap();
    assert_eq!(v["rows_affected"], 2);
    let v = h
        .run(
            "sqlite_query",
            json!({"query": "select v from k order by v"}),
        )
        .await
        .unwrap();
    assert_eq!(v["rows"], json!([["x"], ["y"]]));
    assert_eq!(manager.live_count(), 1);
    // Even with writes allowed, a statement cannot create files elsewhere.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("copy.db");
    let q = format!("vacuum into '{}'", target.display());
    let e = h
        .run("sqlite_query", json!({"query": q}))
        .await
        .unwrap_err();
    assert!(e.code.starts_with("sqlite."), "{e:?}");
    assert!(!target.exists());
    let exec = h.scope.execution_id.to_string();
    assert_eq!(
        manager
            .release_scope(agentry_exec::ResourceScope::Execution, &exec)
            .await
            .unwrap(),
        1
    );
    assert_eq!(manager.live_count(), 0);
    // A profile without `write` refuses the writable database resource.
    let (h, _m) = harness(d.path(), true, PermissionProfile::ReadOnly);
    let r = h.call("sqlite_query", json!({"query": "select 1"})).await;
    assert_eq!(r.error_code(), Some("resource.unavailable"));
}
