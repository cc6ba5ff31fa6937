use agentry_actions::ActionRegistry;
use agentry_exec::enable::{EnableSet, ExecOptions, enable};
use agentry_exec::resource::PermissionProfile;
use agentry_exec::sandbox::SandboxMode;
use serde_json::json;

use crate::common::Harness;

fn ids(set: &str, profile: PermissionProfile) -> Result<Vec<String>, agentry_exec::ExecError> {
    let d = tempfile::tempdir().unwrap();
    let mut registry = ActionRegistry::new();
    let mut o = ExecOptions::new(d.path());
    o.profile = profile;
    enable(&mut registry, &set.parse::<EnableSet>()?, &o).map(|e| e.action_ids)
}

#[test]
fn packages_follow_the_profile() {
    let all = ids(
        "shell,python,node,sqlite,files,coding",
        PermissionProfile::LocalFiles,
    )
    .unwrap();
    assert_eq!(
        all,
        [
            "run_command",
            "run_python",
            "run_node",
            "sqlite_query",
            "list_files",
            "search_files",
            "read_file",
            "glob_files",
            "grep_files",
            "write_file",
            "edit_file",
            "apply_patch"
        ]
    );
    let ro = ids("shell,files,sqlite", PermissionProfile::ReadOnly).unwrap();
    assert_eq!(
        ro,
        [
            "run_command",
            "sqlite_query",
            "list_files",
            "search_files",
            "read_file"
        ]
    );
    let e = ids("python", PermissionProfile::ReadOnly).unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&e),
        "resource.permission_denied"
    );
    let e = ids("shell,search", PermissionProfile::LocalFiles).unwrap_err();
    assert_eq!(agentry_core::ErrorCode::code(&e), "exec.unknown_package");
}

#[test]
fn sandbox_off_needs_the_trusted_profile() {
    let d = tempfile::tempdir().unwrap();
    let mut registry = ActionRegistry::new();
    let mut o = ExecOptions::new(d.path());
    o.sandbox = SandboxMode::Off;
    let e = enable(&mut registry, &"python".parse().unwrap(), &o).unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&e),
        "resource.permission_denied"
    );
    o.profile = PermissionProfile::Trusted;
    let en = enable(&mut registry, &"python".parse().unwrap(), &o).unwrap();
    assert_eq!(en.isolation, agentry_exec::IsolationLevel::None);
    // Registering the same package twice is an error, never a silent replacement.
    let e = enable(&mut registry, &"python".parse().unwrap(), &o).unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&e),
        "exec.registration_failed"
    );
}

#[tokio::test]
async fn read_only_shell_runs_diagnostics_only() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.txt"), "x").unwrap();
    let mut registry = ActionRegistry::new();
    let mut o = ExecOptions::new(d.path());
    o.profile = PermissionProfile::ReadOnly;
    let en = enable(&mut registry, &"shell".parse().unwrap(), &o).unwrap();
    let h = Harness::new(registry, &en.resources);
    let v = h.run("run_command", json!({"argv": ["ls"]})).await.unwrap();
    assert_eq!(v["stdout"], "a.txt\n");
    let e = h
        .run("run_command", json!({"argv": ["make"]}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "shell.command_not_allowed");
}
