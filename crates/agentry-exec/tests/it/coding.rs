use agentry_actions::ActionRegistry;
use agentry_exec::Root;
use agentry_exec::coding::register_coding_agent_actions;
use agentry_exec::files::{FilesOptions, sha256_hex};
use agentry_exec::resource::{PermissionProfile, ResourceManager};
use serde_json::{Value, json};

use crate::common::{Harness, blocked};

struct Coding {
    dir: tempfile::TempDir,
    h: Harness,
}

impl Coding {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("src/lib.rs"),
            "fn a() {}\nfn b() {}\nfn a2() {}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("src/main.rs"),
            "fn main() {\n    println!(\"hi\");\n}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "# demo\n").unwrap();
        let mut registry = ActionRegistry::new();
        let opts = FilesOptions {
            write: true,
            ..FilesOptions::read_only(Root::new(dir.path()).unwrap())
        };
        register_coding_agent_actions(&mut registry, opts).unwrap();
        let h = Harness::new(
            registry,
            &ResourceManager::new(PermissionProfile::LocalFiles),
        );
        Self { dir, h }
    }
    async fn call(&self, id: &str, input: Value) -> Result<Value, agentry_actions::ActionFailure> {
        self.h.run(id, input).await
    }
    fn text(&self, p: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(p)).unwrap()
    }
}

#[tokio::test]
async fn edits_need_a_fresh_read() {
    let c = Coding::new();
    let edit =
        json!({"path": "src/lib.rs", "old_string": "fn b() {}", "new_string": "fn b() { 1; }"});
    let e = c.call("edit_file", edit.clone()).await.unwrap_err();
    assert_eq!(e.code, "coding.file_not_read");
    assert!(blocked(&e));
    let r = c
        .call("read_file", json!({"path": "src/lib.rs"}))
        .await
        .unwrap();
    assert_eq!(r["sha256"], sha256_hex(c.text("src/lib.rs").as_bytes()));
    let v = c.call("edit_file", edit).await.unwrap();
    assert_eq!(v["replacements"], 1);
    assert!(c.text("src/lib.rs").contains("fn b() { 1; }"));
    // Our own write refreshed the hash: a second edit needs no new read.
    c.call(
        "edit_file",
        json!({"path": "src/lib.rs", "old_string": "{ 1; }", "new_string": "{ 2; }"}),
    )
    .await
    .unwrap();
    // Someone else changes the file: refused until read again.
    std::fs::write(c.dir.path().join("src/lib.rs"), "fn a() {}\nchanged\n").unwrap();
    let e = c
        .call(
            "edit_file",
            json!({"path": "src/lib.rs", "old_string": "changed", "new_string": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "coding.file_changed");
    assert_eq!(c.text("src/lib.rs"), "fn a() {}\nchanged\n");
}

#[tokio::test]
async fn edit_uniqueness_and_expected_sha() {
    let c = Coding::new();
    let sha = sha256_hex(c.text("src/lib.rs").as_bytes());
    let e = c.call("edit_file", json!({"path": "src/lib.rs", "old_string": "fn a", "new_string": "fn z", "expected_sha256": sha})).await.unwrap_err();
    assert_eq!(e.code, "coding.edit_not_unique");
    let e = c.call("edit_file", json!({"path": "src/lib.rs", "old_string": "nope", "new_string": "x", "expected_sha256": sha})).await.unwrap_err();
    assert_eq!(e.code, "coding.edit_no_match");
    let v = c.call("edit_file", json!({"path": "src/lib.rs", "old_string": "fn a", "new_string": "fn z", "replace_all": true, "expected_sha256": sha})).await.unwrap();
    assert_eq!(v["replacements"], 2);
    let e = c.call("edit_file", json!({"path": "src/lib.rs", "old_string": "fn z", "new_string": "fn y", "expected_sha256": "00"})).await.unwrap_err();
    assert_eq!(e.code, "coding.file_changed");
}

#[tokio::test]
async fn guarded_write() {
    let c = Coding::new();
    c.call(
        "write_file",
        json!({"path": "new/file.txt", "content": "fresh"}),
    )
    .await
    .unwrap();
    let e = c
        .call(
            "write_file",
            json!({"path": "README.md", "content": "clobber"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "coding.file_not_read");
    assert_eq!(c.text("README.md"), "# demo\n");
    let e = c
        .call(
            "write_file",
            json!({"path": "missing.txt", "content": "x", "expected_sha256": "abc"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "coding.file_changed");
    // A partial read does not count as having read the file.
    c.call("read_file", json!({"path": "README.md", "max_bytes": 2}))
        .await
        .unwrap();
    assert!(
        c.call("write_file", json!({"path": "README.md", "content": "x"}))
            .await
            .is_err()
    );
    c.call("read_file", json!({"path": "README.md"}))
        .await
        .unwrap();
    c.call(
        "write_file",
        json!({"path": "README.md", "content": "# new\n"}),
    )
    .await
    .unwrap();
    assert_eq!(c.text("README.md"), "# new\n");
}

const GOOD_PATCH: &str = "diff --git a/src/main.rs b/src/main.rs\nindex 1..2 100644\n--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1,3 +1,3 @@\n fn main() {\n-    println!(\"hi\");\n+    println!(\"hello\");\n }\ndiff --git a/src/extra.rs b/src/extra.rs\nnew file mode 100644\n--- /dev/null\n+++ b/src/extra.rs\n@@ -0,0 +1 @@\n+pub fn extra() {}\n";

#[tokio::test]
async fn apply_patch_all_or_nothing() {
    let c = Coding::new();
    let e = c
        .call("apply_patch", json!({"patch": GOOD_PATCH}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "coding.file_not_read");
    c.call("read_file", json!({"path": "src/main.rs"}))
        .await
        .unwrap();
    let e = c
        .call(
            "apply_patch",
            json!({"patch": GOOD_PATCH, "expected_files": ["src/main.rs"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "coding.patch_files_mismatch");
    assert!(!c.dir.path().join("src/extra.rs").exists());
    let v = c
        .call(
            "apply_patch",
            json!({"patch": GOOD_PATCH, "expected_files": ["src/main.rs", "src/extra.rs"]}),
        )
        .await
        .unwrap();
    assert_eq!(v["paths"], json!(["src/extra.rs", "src/main.rs"]));
    assert!(c.text("src/main.rs").contains("hello"));
    assert_eq!(c.text("src/extra.rs"), "pub fn extra() {}\n");
}

#[tokio::test]
async fn bad_patches_change_nothing() {
    let c = Coding::new();
    c.call("read_file", json!({"path": "src/main.rs"}))
        .await
        .unwrap();
    c.call("read_file", json!({"path": "src/lib.rs"}))
        .await
        .unwrap();
    let before_main = c.text("src/main.rs");
    // The second file's hunk does not apply: the first file must stay untouched.
    let stale = "--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1,3 +1,3 @@\n fn main() {\n-    println!(\"hi\");\n+    println!(\"bye\");\n }\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,1 +1,1 @@\n-fn not_there() {}\n+fn x() {}\n";
    let e = c
        .call("apply_patch", json!({"patch": stale}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "coding.patch_does_not_apply");
    assert_eq!(c.text("src/main.rs"), before_main);
    let e = c
        .call("apply_patch", json!({"patch": "not a diff"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "coding.patch_invalid");
    let escape = "--- /dev/null\n+++ b/../escaped.txt\n@@ -0,0 +1 @@\n+x\n";
    let e = c
        .call("apply_patch", json!({"patch": escape}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "workspace.path_outside_root");
    assert!(!c.dir.path().parent().unwrap().join("escaped.txt").exists());
}

#[tokio::test]
async fn glob_and_grep() {
    let c = Coding::new();
    let v = c
        .call("glob_files", json!({"pattern": "**/*.rs"}))
        .await
        .unwrap();
    assert_eq!(v["matches"], json!(["src/lib.rs", "src/main.rs"]));
    let v = c
        .call(
            "grep_files",
            json!({"pattern": "fn a\\d?\\(", "context_lines": 1, "glob": "*.rs"}),
        )
        .await
        .unwrap();
    assert_eq!(v["count"], 2);
    assert_eq!(v["matches"][0]["line"], 1);
    assert_eq!(v["matches"][0]["after"], json!(["fn b() {}"]));
    assert_eq!(v["matches"][1]["before"], json!(["fn b() {}"]));
    let v = c
        .call(
            "grep_files",
            json!({"pattern": "PRINTLN", "case_insensitive": true, "regex": false}),
        )
        .await
        .unwrap();
    assert_eq!(v["matches"][0]["path"], "src/main.rs");
    let e = c
        .call("grep_files", json!({"pattern": "("}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "files.invalid_pattern");
}
