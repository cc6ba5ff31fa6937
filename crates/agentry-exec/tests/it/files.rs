use agentry_actions::ActionRegistry;
use agentry_exec::Root;
use agentry_exec::files::{FilesOptions, register_workspace_file_actions};
use agentry_exec::resource::{PermissionProfile, ResourceManager};
use serde_json::{Value, json};

use crate::common::{Harness, blocked};

struct Files {
    dir: tempfile::TempDir,
    h: Harness,
    ids: Vec<String>,
}

impl Files {
    fn new(write: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/deep")).unwrap();
        std::fs::write(dir.path().join("src/a.rs"), "fn main() {}\n// TODO: more\n").unwrap();
        std::fs::write(dir.path().join("src/deep/b.py"), "print('todo')\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), "secret todo").unwrap();
        std::fs::write(dir.path().join("big.txt"), "x".repeat(50_000)).unwrap();
        let mut registry = ActionRegistry::new();
        let opts = FilesOptions {
            write,
            export: write,
            ..FilesOptions::read_only(Root::new(dir.path()).unwrap())
        };
        let ids = register_workspace_file_actions(&mut registry, opts).unwrap();
        let h = Harness::new(
            registry,
            &ResourceManager::new(PermissionProfile::LocalFiles),
        );
        Self { dir, h, ids }
    }

    async fn call(&self, id: &str, input: Value) -> Result<Value, agentry_actions::ActionFailure> {
        self.h.run(id, input).await
    }
}

#[tokio::test]
async fn list_search_and_read_are_bounded() {
    let f = Files::new(false);
    let v = f.call("list_files", json!({})).await.unwrap();
    assert_eq!(v["files"], json!(["big.txt", "src/a.rs", "src/deep/b.py"]));
    let v = f
        .call("list_files", json!({"pattern": "*.py"}))
        .await
        .unwrap();
    assert_eq!(v["files"], json!(["src/deep/b.py"]));
    let v = f
        .call(
            "list_files",
            json!({"include_hidden": true, "max_results": 1}),
        )
        .await
        .unwrap();
    assert_eq!(v["truncated"], true);
    let v = f
        .call("search_files", json!({"query": "TODO"}))
        .await
        .unwrap();
    let paths: Vec<&str> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["src/a.rs", "src/deep/b.py"]);
    assert_eq!(v["matches"][0]["line"], 2);
    let v = f
        .call("read_file", json!({"path": "big.txt"}))
        .await
        .unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["bytes"], 50_000);
    assert_eq!(v["content"].as_str().unwrap().len(), 20_000);
    let v = f
        .call("read_file", json!({"path": "big.txt", "offset": 40_000}))
        .await
        .unwrap();
    assert_eq!(v["truncated"], false);
    assert_eq!(v["returned_bytes"], 10_000);
    // Without write, there is no write action at all.
    assert_eq!(f.ids, ["list_files", "search_files", "read_file"]);
    let r = f
        .call("write_file", json!({"path": "x", "content": "y"}))
        .await
        .unwrap_err();
    assert_eq!(r.code, "action.unknown");
}

#[tokio::test]
async fn traversal_is_refused_and_nothing_outside_changes() {
    let f = Files::new(true);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim.txt"), "original").unwrap();
    std::os::unix::fs::symlink(outside.path(), f.dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("victim.txt"),
        f.dir.path().join("victim-link"),
    )
    .unwrap();
    let abs = outside.path().join("victim.txt");
    let bad = [
        "../victim.txt",
        "src/../../victim.txt",
        abs.to_str().unwrap(),
        "link/victim.txt",
        "victim-link",
        "link/new.txt",
        "a\u{0}b.txt",
        ".agentry/workspace.db",
    ];
    for p in bad {
        let r = f
            .call("write_file", json!({"path": p, "content": "pwned"}))
            .await
            .unwrap_err();
        assert!(
            ["workspace.path_outside_root", "workspace.invalid_path"].contains(&r.code.as_str()),
            "{p}: {r:?}"
        );
        assert!(blocked(&r) || r.code == "workspace.invalid_path");
        let r = f.call("read_file", json!({"path": p})).await.unwrap_err();
        assert!(r.code.starts_with("workspace."), "{p}: {r:?}");
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("victim.txt")).unwrap(),
        "original"
    );
    assert!(!outside.path().join("new.txt").exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    let r = f
        .call("list_files", json!({"path": "../"}))
        .await
        .unwrap_err();
    assert_eq!(r.code, "workspace.path_outside_root");
}

#[tokio::test]
async fn write_and_export_when_granted() {
    let f = Files::new(true);
    let v = f
        .call(
            "write_file",
            json!({"path": "out/new.txt", "content": "hello"}),
        )
        .await
        .unwrap();
    assert_eq!(v["bytes"], 5);
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    f.call(
        "write_file",
        json!({"path": "out/new.txt", "content": "!", "append": true}),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(f.dir.path().join("out/new.txt")).unwrap(),
        "hello!"
    );
    let v = f
        .call(
            "export_file",
            json!({"source_path": "out/new.txt", "output_path": "exports/copy.txt"}),
        )
        .await
        .unwrap();
    assert_eq!(v["path"], "exports/copy.txt");
    let r = f
        .call(
            "export_file",
            json!({"source_path": "out/new.txt", "output_path": "exports/copy.txt"}),
        )
        .await
        .unwrap_err();
    assert_eq!(r.code, "files.already_exists");
    let r = f
        .call(
            "export_file",
            json!({"source_path": "out/new.txt", "output_path": "../copy.txt"}),
        )
        .await
        .unwrap_err();
    assert_eq!(r.code, "workspace.path_outside_root");
}
