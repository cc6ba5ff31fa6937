use std::time::Duration;

use agentry_actions::ActionRegistry;
use agentry_exec::Root;
use agentry_exec::process::Limits;
use agentry_exec::resource::{PermissionProfile, ResourceManager};
use agentry_exec::sandbox::{RuntimeProvider, SandboxMode};
use agentry_exec::shell::{CommandProfile, ShellOptions, command_action};
use serde_json::json;

use crate::common::{Harness, blocked, call};

fn shell(root: &Root, profile: CommandProfile) -> agentry_actions::FnAction {
    let mut o = ShellOptions::new(root.clone());
    o.profile = profile;
    o.sandbox = SandboxMode::Auto;
    o.limits = Limits {
        timeout: Duration::from_secs(10),
        ..o.limits
    };
    command_action(o)
}

fn setup() -> (tempfile::TempDir, Root) {
    let d = tempfile::tempdir().unwrap();
    let r = Root::new(d.path()).unwrap();
    (d, r)
}

#[tokio::test]
async fn injection_attempts_are_literal_arguments() {
    let (d, root) = setup();
    let a = shell(&root, CommandProfile::SafeDefault);
    for arg in [
        "; touch pwned",
        "&& touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "| tee pwned",
        "> pwned",
    ] {
        let v = call(&a, json!({"argv": ["echo", arg]})).await.unwrap();
        assert_eq!(v["stdout"], format!("{arg}\n"));
    }
    assert!(!d.path().join("pwned").exists());
    // A shell is not on the profile, so a string cannot be smuggled through one.
    for argv in [
        json!(["sh", "-c", "touch pwned"]),
        json!(["bash", "-c", "id"]),
        json!(["ls; rm -rf /"]),
    ] {
        let f = call(&a, json!({"argv": argv})).await.unwrap_err();
        assert_eq!(f.code, "shell.command_not_allowed", "{argv}");
        assert!(blocked(&f));
    }
}

#[tokio::test]
async fn allow_list_matches_argv_prefixes() {
    let (_d, root) = setup();
    let a = shell(
        &root,
        CommandProfile::allow_list(["git status", "echo"]).unwrap(),
    );
    let f = call(&a, json!({"argv": ["git", "push", "origin"]}))
        .await
        .unwrap_err();
    assert_eq!(f.code, "shell.command_not_allowed");
    // `git status -s` is allowed (it fails here only because the root is no repository).
    let r = call(&a, json!({"argv": ["git", "status", "-s"]})).await;
    if let Err(f) = &r {
        assert_eq!(f.code, "process.exit_nonzero");
    }
    assert!(call(&a, json!({"argv": ["echo", "ok"]})).await.is_ok());
}

#[tokio::test]
async fn workdir_escapes_are_blocked() {
    let (d, root) = setup();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), d.path().join("out")).unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    let a = shell(&root, CommandProfile::SafeDefault);
    for wd in ["..", "../..", "/etc", "out", "sub/../..", "a\u{0}b"] {
        let f = call(&a, json!({"argv": ["pwd"], "workdir": wd}))
            .await
            .unwrap_err();
        assert_eq!(f.code, "shell.workdir_outside_root", "{wd}");
        assert!(blocked(&f));
    }
    let v = call(&a, json!({"argv": ["pwd"], "workdir": "sub"}))
        .await
        .unwrap();
    assert_eq!(v["workdir"], "sub");
    assert!(v["stdout"].as_str().unwrap().trim_end().ends_with("/sub"));
}

#[tokio::test]
async fn timeouts_and_exit_codes_are_errors_with_output() {
    let (_d, root) = setup();
    let a = shell(&root, CommandProfile::allow_list(["sleep", "ls"]).unwrap());
    let f = call(&a, json!({"argv": ["sleep", "30"], "timeout_ms": 200}))
        .await
        .unwrap_err();
    assert_eq!(f.code, "process.timeout");
    assert_eq!(f.data.as_ref().unwrap()["exit_code"], 124);
    let f = call(&a, json!({"argv": ["ls", "does-not-exist"]}))
        .await
        .unwrap_err();
    assert_eq!(f.code, "process.exit_nonzero");
    assert!(!f.data.unwrap()["stderr"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn oversized_output_goes_to_the_execution_area() {
    let (d, root) = setup();
    let a = shell(&root, CommandProfile::allow_list(["head"]).unwrap());
    let v = call(&a, json!({"argv": ["head", "-c", "30000000", "/dev/zero"]}))
        .await
        .unwrap();
    assert_eq!(v["stdout_truncated"], true);
    assert_eq!(v["stdout_bytes"], 30_000_000);
    let rel = v["output_files"][0]["path"].as_str().unwrap();
    assert!(rel.starts_with(".agentry/files/"), "{rel}");
    assert_eq!(
        std::fs::metadata(d.path().join(rel)).unwrap().len(),
        30_000_000
    );
}

#[tokio::test]
async fn through_the_dispatcher_with_resources() {
    let (_d, root) = setup();
    let manager = ResourceManager::new(PermissionProfile::LocalFiles);
    manager.register_provider(RuntimeProvider::shell());
    let mut registry = ActionRegistry::new();
    registry
        .register_fn(shell(&root, CommandProfile::SafeDefault))
        .unwrap();
    let h = Harness::new(registry, &manager);
    let r = h.call("run_command", json!({"argv": ["echo", "hi"]})).await;
    assert!(r.is_ok(), "{r:?}");
    let r2 = h
        .call("run_command", json!({"argv": ["echo", "again"]}))
        .await;
    assert!(r2.is_ok());
    let types: Vec<String> = h
        .emitter
        .recorded()
        .iter()
        .map(|e| e.event_type.to_string())
        .collect();
    assert!(types.iter().any(|t| t == "action.completed"));
    // Agent-scoped shell runtime: made once, reused, still live.
    assert_eq!(manager.live_count(), 1);
    let r = h
        .call("run_command", json!({"argv": ["rm", "-rf", "."]}))
        .await;
    assert_eq!(r.error_code(), Some("shell.command_not_allowed"));
    assert_eq!(r.data.unwrap()["status"], "blocked");
    // A read-only profile refuses the exec-capable shell resource.
    let ro = ResourceManager::new(PermissionProfile::ReadOnly);
    ro.register_provider(RuntimeProvider::shell());
    let mut registry = ActionRegistry::new();
    registry
        .register_fn(shell(&root, CommandProfile::SafeDefault))
        .unwrap();
    let h = Harness::new(registry, &ro);
    let r = h.call("run_command", json!({"argv": ["echo", "hi"]})).await;
    assert_eq!(r.error_code(), Some("resource.unavailable"));
    assert!(
        r.error
            .unwrap()
            .message
            .contains("resource.permission_denied")
    );
}
