//! Isolation is proven: the same code that writes outside its scratch dir, or
//! connects to a listening socket, succeeds without the sandbox and fails under
//! bubblewrap.
use std::net::TcpListener;
use std::time::Duration;

use agentry_actions::ActionRegistry;
use agentry_exec::process::Limits;
use agentry_exec::resource::{PermissionProfile, ResourceManager};
use agentry_exec::sandbox::{RuntimeProvider, Sandbox, SandboxMode};
use agentry_exec::{node, python};
use serde_json::json;

use crate::common::{Harness, blocked, bwrap_available, call, marker, processes_with};

fn py(mode: SandboxMode, scratch: &std::path::Path) -> agentry_actions::FnAction {
    let mut o = python::default_options();
    o.sandbox = mode;
    o.scratch_base = scratch.to_path_buf();
    o.limits = Limits {
        timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    python::python_action(o)
}

/// A directory outside /tmp (bubblewrap gives the child a fresh /tmp), so the
/// sandboxed write hits the read-only host filesystem.
fn outside_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[tokio::test]
async fn python_write_outside_scratch_fails_only_under_bwrap() {
    let scratch = tempfile::tempdir().unwrap();
    let outside = outside_dir();
    let target = outside.path().join("escaped.txt");
    let code = format!(
        "try:\n    open({t:?}, 'w').write('x')\n    result = 'written'\nexcept OSError as e:\n    result = 'refused: ' + type(e).__name__\n",
        t = target.to_str().unwrap()
    );
    let plain = call(&py(SandboxMode::Off, scratch.path()), json!({"code": code}))
        .await
        .unwrap();
    assert_eq!(plain["result"], "written");
    assert_eq!(plain["isolation"], "none");
    std::fs::remove_file(&target).unwrap();
    if !bwrap_available() {
        return;
    }
    let boxed = call(
        &py(SandboxMode::Required, scratch.path()),
        json!({"code": code}),
    )
    .await
    .unwrap();
    assert_eq!(boxed["isolation"], "bubblewrap");
    assert!(
        boxed["result"].as_str().unwrap().starts_with("refused"),
        "{boxed}"
    );
    assert!(!target.exists());
    // The scratch dir itself stays writable inside the sandbox.
    let ok = call(
        &py(SandboxMode::Required, scratch.path()),
        json!({"code": "open('f.txt','w').write('ok'); result = open('f.txt').read()"}),
    )
    .await
    .unwrap();
    assert_eq!(ok["result"], "ok");
}

#[tokio::test]
async fn python_network_fails_only_under_bwrap() {
    let scratch = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        "import socket\ntry:\n    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    s.close()\n    result = 'connected'\nexcept OSError as e:\n    result = 'refused: ' + type(e).__name__\n"
    );
    let plain = call(&py(SandboxMode::Off, scratch.path()), json!({"code": code}))
        .await
        .unwrap();
    assert_eq!(plain["result"], "connected");
    if !bwrap_available() {
        return;
    }
    let boxed = call(
        &py(SandboxMode::Required, scratch.path()),
        json!({"code": code}),
    )
    .await
    .unwrap();
    assert!(
        boxed["result"].as_str().unwrap().starts_with("refused"),
        "{boxed}"
    );
    drop(listener);
}

#[tokio::test]
async fn node_write_and_network_fail_only_under_bwrap() {
    let scratch = tempfile::tempdir().unwrap();
    let outside = outside_dir();
    let target = outside.path().join("node.txt");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        "const fs = require('fs'), net = require('net');\nlet wrote;\ntry {{ fs.writeFileSync({t:?}, 'x'); wrote = true; }} catch (e) {{ wrote = false; }}\nvar result = {{ wrote }};\nconst s = net.connect({port}, '127.0.0.1');\ns.on('connect', () => {{ result.net = true; s.destroy(); }});\ns.on('error', () => {{ result.net = false; }});\n",
        t = target.to_str().unwrap()
    );
    let run = |mode| {
        let mut o = node::default_options();
        o.sandbox = mode;
        o.scratch_base = scratch.path().to_path_buf();
        node::node_action(o)
    };
    let plain = call(&run(SandboxMode::Off), json!({"code": code}))
        .await
        .unwrap();
    assert_eq!(
        plain["result"],
        json!({"wrote": true, "net": true}),
        "{plain}"
    );
    std::fs::remove_file(&target).unwrap();
    if !bwrap_available() {
        return;
    }
    let boxed = call(&run(SandboxMode::Required), json!({"code": code}))
        .await
        .unwrap();
    assert_eq!(
        boxed["result"],
        json!({"wrote": false, "net": false}),
        "{boxed}"
    );
    assert!(!target.exists());
}

#[tokio::test]
async fn shell_under_bwrap_cannot_write_a_read_only_root() {
    // Under /tmp on purpose: the sandbox's fresh /tmp must not hide the root.
    let root_dir = tempfile::tempdir().unwrap();
    let root = agentry_exec::Root::new(root_dir.path()).unwrap();
    let run = |mode, writable| {
        let mut o = agentry_exec::shell::ShellOptions::new(root.clone());
        o.profile = agentry_exec::shell::CommandProfile::allow_list(["touch"]).unwrap();
        o.sandbox = mode;
        o.writable_root = writable;
        agentry_exec::shell::command_action(o)
    };
    let plain = call(
        &run(SandboxMode::Off, false),
        json!({"argv": ["touch", "a.txt"]}),
    )
    .await;
    assert!(plain.is_ok(), "{plain:?}");
    assert!(root_dir.path().join("a.txt").exists());
    if !bwrap_available() {
        return;
    }
    let boxed = call(
        &run(SandboxMode::Required, false),
        json!({"argv": ["touch", "b.txt"]}),
    )
    .await
    .unwrap_err();
    assert_eq!(boxed.code, "process.exit_nonzero");
    assert_eq!(boxed.data.as_ref().unwrap()["isolation"], "bubblewrap");
    assert!(!root_dir.path().join("b.txt").exists());
    let rw = call(
        &run(SandboxMode::Required, true),
        json!({"argv": ["touch", "c.txt"]}),
    )
    .await;
    assert!(rw.is_ok(), "{rw:?}");
    assert!(root_dir.path().join("c.txt").exists());
}

#[tokio::test]
async fn sandbox_required_fails_closed_when_unavailable() {
    let scratch = tempfile::tempdir().unwrap();
    let manager = ResourceManager::new(PermissionProfile::LocalFiles);
    manager.register_provider(
        RuntimeProvider::python("python3").with_sandbox(Sandbox::unavailable("test: no bwrap")),
    );
    let mut registry = ActionRegistry::new();
    let mut o = python::default_options();
    o.sandbox = SandboxMode::Required;
    o.scratch_base = scratch.path().to_path_buf();
    registry.register_fn(python::python_action(o)).unwrap();
    let h = Harness::new(registry, &manager);
    let r = h.call("run_python", json!({"code": "result = 1"})).await;
    assert_eq!(r.error_code(), Some("sandbox.unavailable"));
    assert_eq!(r.data.unwrap()["status"], "blocked");
    // `auto` runs, and says it is not isolated.
    let mut registry = ActionRegistry::new();
    let mut o = python::default_options();
    o.scratch_base = scratch.path().to_path_buf();
    registry.register_fn(python::python_action(o)).unwrap();
    let h = Harness::new(registry, &manager);
    let r = h.call("run_python", json!({"code": "result = 1"})).await;
    assert_eq!(r.data.unwrap()["isolation"], "none");
}

async fn storm_dies(mode: SandboxMode) {
    let scratch = tempfile::tempdir().unwrap();
    let m = marker();
    // Thirty children that exec a long sleep carrying a marker, then an endless loop.
    let code = format!(
        "import os, sys\nfor i in range(30):\n    if os.fork() == 0:\n        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(1000)', '{m}'])\nprint('spawned', flush=True)\nwhile True:\n    pass\n"
    );
    let mut o = python::default_options();
    o.sandbox = mode;
    o.scratch_base = scratch.path().to_path_buf();
    o.limits = Limits {
        timeout: Duration::from_millis(1500),
        grace: Duration::from_millis(200),
        ..Limits::default()
    };
    let f = call(&python::python_action(o), json!({"code": code}))
        .await
        .unwrap_err();
    assert_eq!(f.code, "process.timeout");
    assert_eq!(f.data.as_ref().unwrap()["exit_code"], 124);
    assert!(!blocked(&f));
    assert_eq!(f.data.as_ref().unwrap()["stdout"], "spawned\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processes_with(&m), 0, "children survived the timeout");
}

#[tokio::test]
async fn python_fork_storm_and_endless_loop_die_with_the_group() {
    storm_dies(SandboxMode::Off).await;
}

#[tokio::test]
async fn python_fork_storm_dies_with_the_sandbox() {
    if bwrap_available() {
        storm_dies(SandboxMode::Required).await;
    }
}

#[tokio::test]
async fn node_endless_loop_times_out() {
    let scratch = tempfile::tempdir().unwrap();
    let mut o = node::default_options();
    o.sandbox = SandboxMode::Auto;
    o.scratch_base = scratch.path().to_path_buf();
    o.limits = Limits {
        timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    let f = call(&node::node_action(o), json!({"code": "while (true) {}"}))
        .await
        .unwrap_err();
    assert_eq!(f.code, "process.timeout");
}

#[tokio::test]
async fn python_memory_limit_stops_a_huge_allocation() {
    let scratch = tempfile::tempdir().unwrap();
    let mut o = python::default_options();
    o.sandbox = SandboxMode::Off;
    o.scratch_base = scratch.path().to_path_buf();
    o.memory_bytes = 256 << 20;
    let f = call(
        &python::python_action(o),
        json!({"code": "x = bytearray(2 * 1024 ** 3)"}),
    )
    .await
    .unwrap_err();
    assert_eq!(f.code, "process.exit_nonzero");
    assert!(
        f.data.unwrap()["stderr"]
            .as_str()
            .unwrap()
            .contains("MemoryError")
    );
}

#[tokio::test]
async fn python_printing_200_mb_is_capped_and_spilled() {
    let scratch = tempfile::tempdir().unwrap();
    let out_dir = scratch.path().join("out");
    let mut o = python::default_options();
    o.sandbox = SandboxMode::Off;
    o.scratch_base = scratch.path().to_path_buf();
    o.output_dir = Some(out_dir.clone());
    o.limits = Limits {
        stdout_cap: 1000,
        timeout: Duration::from_secs(20),
        ..Limits::default()
    };
    let v = call(
        &python::python_action(o),
        json!({"code": "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(200):\n    sys.stdout.write(chunk)\nresult = 'done'"}),
    )
    .await
    .unwrap();
    assert_eq!(v["result"], "done");
    assert_eq!(v["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(v["stdout_truncated"], true);
    assert_eq!(v["stdout_bytes"], 200u64 << 20);
    let spill = v["output_files"][0]["path"].as_str().unwrap();
    assert_eq!(std::fs::metadata(spill).unwrap().len(), 200 << 20);
}
