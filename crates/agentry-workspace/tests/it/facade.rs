//! The Workspace facade: laziness, containment, write policy, sharing.
use agentry_core::{ErrorCode, ExecutionId};
use agentry_workspace::{
    Content, FileLocation, NewRecord, RecordQuery, Workspace, WorkspaceError, WorkspaceMode,
    sha256_hex,
};

fn code<T: std::fmt::Debug>(r: Result<T, WorkspaceError>) -> &'static str {
    r.map(|v| panic!("expected an error, got {v:?}"))
        .unwrap_err()
        .code()
}

#[tokio::test]
async fn binding_and_reading_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
    let ws = Workspace::open(dir.path()).build().unwrap();
    assert_eq!(ws.mode(), WorkspaceMode::ReadOnly);
    let f = ws.read_file("a.txt", None).await.unwrap();
    assert_eq!(
        (f.bytes.as_slice(), f.file_ref.sha256.as_str()),
        (&b"hello"[..], sha256_hex(b"hello").as_str())
    );
    assert!(
        ws.search(RecordQuery::new().text("x"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(ws.list_leases(None).await.unwrap().is_empty());
    assert!(ws.list_snapshots(None).await.unwrap().is_empty());
    assert!(!ws.is_materialized());
    assert!(!dir.path().join(".agentry").exists());
    assert!(!ws.info().materialized);
}

#[tokio::test]
async fn read_only_mode_redirects_new_files_and_never_shadows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("existing.txt"), b"original").unwrap();
    let ws = Workspace::open(dir.path()).build().unwrap();
    let exe = ExecutionId::parse("exe_one").unwrap();
    // A new file goes to the execution's fallback area.
    let r = ws
        .write_file("out/report.md", b"# report", &exe)
        .await
        .unwrap();
    assert_eq!(
        r.location,
        FileLocation::Fallback {
            execution_id: "exe_one".into()
        }
    );
    assert_eq!(r.stored_path, ".agentry/files/exe_one/out/report.md");
    assert_eq!(r.sha256, sha256_hex(b"# report"));
    assert!(!dir.path().join("out/report.md").exists());
    // Readable by its logical path for that execution only.
    assert_eq!(
        ws.read_file("out/report.md", Some(&exe))
            .await
            .unwrap()
            .bytes,
        b"# report"
    );
    assert_eq!(
        code(ws.read_file("out/report.md", None).await),
        "workspace.not_found"
    );
    let other = ExecutionId::parse("exe_two").unwrap();
    assert_eq!(
        code(ws.read_file("out/report.md", Some(&other)).await),
        "workspace.not_found"
    );
    // An existing external file is refused, never shadowed.
    assert_eq!(
        code(ws.write_file("existing.txt", b"changed", &exe).await),
        "workspace.write_denied"
    );
    assert_eq!(
        std::fs::read(dir.path().join("existing.txt")).unwrap(),
        b"original"
    );
    assert!(
        !dir.path()
            .join(".agentry/files/exe_one/existing.txt")
            .exists()
    );
    // A scoped grant writes in place, on a view that shares the Workspace.
    let granted = ws.with_write_grant("out").unwrap();
    assert!(granted.same_as(&ws));
    let g = granted
        .write_file("out/final.md", b"done", &exe)
        .await
        .unwrap();
    assert_eq!(g.location, FileLocation::External);
    assert_eq!(
        std::fs::read(dir.path().join("out/final.md")).unwrap(),
        b"done"
    );
    assert_eq!(
        code(granted.write_file("existing.txt", b"x", &exe).await),
        "workspace.write_denied"
    );
    // read_write mode writes anywhere under the root.
    let rw = Workspace::open(dir.path())
        .mode(WorkspaceMode::ReadWrite)
        .build()
        .unwrap();
    let w = rw
        .write_file("existing.txt", b"changed", &exe)
        .await
        .unwrap();
    assert_eq!((w.location, w.size), (FileLocation::External, 7));
    assert_eq!(
        std::fs::read(dir.path().join("existing.txt")).unwrap(),
        b"changed"
    );
    // Execution ids that would name other directories are refused.
    let bad = ExecutionId::parse("../x").unwrap();
    assert_eq!(
        code(ws.write_file("n.txt", b"x", &bad).await),
        "workspace.invalid_input"
    );
}

#[tokio::test]
async fn hostile_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("nothing"), dir.path().join("dangling"))
        .unwrap();
    std::fs::create_dir(dir.path().join("inner")).unwrap();
    std::fs::write(dir.path().join("inner/ok.txt"), b"ok").unwrap();
    std::os::unix::fs::symlink(dir.path().join("inner"), dir.path().join("alias")).unwrap();
    std::fs::create_dir(dir.path().join(".agentry")).unwrap();
    std::os::unix::fs::symlink(dir.path().join(".agentry"), dir.path().join("private")).unwrap();
    let ws = Workspace::open(dir.path())
        .mode(WorkspaceMode::ReadWrite)
        .build()
        .unwrap();
    let exe = ExecutionId::new();
    assert_eq!(
        code(ws.read_file("../etc/passwd", None).await),
        "workspace.path_outside_root"
    );
    assert_eq!(
        code(ws.read_file("a/../../x", None).await),
        "workspace.path_outside_root"
    );
    assert_eq!(
        code(ws.read_file("/etc/passwd", None).await),
        "workspace.path_outside_root"
    );
    assert_eq!(
        code(ws.read_file("escape/secret", None).await),
        "workspace.path_outside_root"
    );
    assert_eq!(
        code(ws.write_file("escape/new", b"x", &exe).await),
        "workspace.path_outside_root"
    );
    assert_eq!(
        code(ws.write_file("dangling", b"x", &exe).await),
        "workspace.path_outside_root"
    );
    assert_eq!(
        code(ws.read_file("a\0b", None).await),
        "workspace.invalid_path"
    );
    assert_eq!(code(ws.read_file("", None).await), "workspace.invalid_path");
    assert_eq!(
        code(ws.write_file(".agentry/workspace.db", b"x", &exe).await),
        "workspace.reserved_path"
    );
    assert_eq!(
        code(ws.write_file("private/workspace.db", b"x", &exe).await),
        "workspace.reserved_path"
    );
    assert!(!outside.path().join("new").exists());
    // A symlink that stays inside the root is fine.
    assert_eq!(
        ws.read_file("alias/ok.txt", None).await.unwrap().bytes,
        b"ok"
    );
    assert!(
        ws.resolve("inner/./ok.txt")
            .unwrap()
            .ends_with("inner/ok.txt")
    );
}

#[tokio::test]
async fn clones_share_and_separate_workspaces_do_not() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Workspace::open(a_dir.path()).build().unwrap();
    let a2 = a.clone();
    let b = Workspace::open(b_dir.path()).build().unwrap();
    let r = a
        .put(NewRecord::new("notes", Content::Text("shared note".into())))
        .await
        .unwrap();
    assert!(a.same_as(&a2) && !a.same_as(&b));
    // Another agent holding the clone sees it through the same store.
    assert!(std::sync::Arc::ptr_eq(
        &a.store().await.unwrap(),
        &a2.store().await.unwrap()
    ));
    assert_eq!(
        a2.get_data(&r.id).await.unwrap(),
        serde_json::json!("shared note")
    );
    assert!(b.search(RecordQuery::new()).await.unwrap().is_empty());
    assert_eq!(code(b.get(&r.id).await), "workspace.not_found");
    // A second Workspace on the same root is a separate instance but opens the same file.
    let a3 = Workspace::open(a_dir.path()).build().unwrap();
    assert!(!a3.same_as(&a));
    assert_eq!(a3.search(RecordQuery::new()).await.unwrap().len(), 1);
    let got = a
        .retrieve(RecordQuery::new().text("shared"), 6)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].excerpt.text(), got[0].excerpt.eof),
        (Some("shared"), false)
    );
    let info = a.info();
    assert!(info.materialized);
    assert_eq!(info.store.unwrap().backend, "sqlite");
}

#[tokio::test]
async fn root_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        code(Workspace::open(dir.path().join("missing")).build()),
        "workspace.io"
    );
    assert_eq!(
        code(Workspace::open(dir.path()).grant_write("../x").build()),
        "workspace.path_outside_root"
    );
}
