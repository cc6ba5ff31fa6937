use std::time::{Duration, Instant};

use agentry_exec::files::Root;
use agentry_exec::process::{Limits, ProcessSpec, TIMEOUT_EXIT_CODE, run};

fn root() -> (tempfile::TempDir, Root) {
    let d = tempfile::tempdir().unwrap();
    let r = Root::new(d.path()).unwrap();
    (d, r)
}

#[tokio::test]
async fn argv_metacharacters_are_literal() {
    let (_d, r) = root();
    for arg in [
        "a; touch pwned",
        "x && touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "| cat",
    ] {
        let out = run(ProcessSpec::new(
            vec!["echo".into(), arg.into()],
            &r.dir(".").unwrap(),
        ))
        .await
        .unwrap();
        assert_eq!(out.stdout.text(), format!("{arg}\n"));
    }
    assert!(!r.path().join("pwned").exists());
}

#[tokio::test]
async fn environment_is_cleared() {
    let (_d, r) = root();
    // SAFETY-free: set_var is unsafe in edition 2024, so read a variable the test
    // process surely has instead.
    assert!(std::env::var_os("PATH").is_some());
    let out = run(ProcessSpec::new(vec!["env".into()], &r.dir(".").unwrap()))
        .await
        .unwrap();
    let text = out.stdout.text();
    let keys: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(
        keys.iter().all(|k| ["PATH", "LANG"].contains(k)),
        "{keys:?}"
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let (_d, r) = root();
    let marker = r.path().join("pids");
    // A parent that starts background children, then hangs.
    let script = format!(
        "for i in 1 2 3 4 5; do sleep 300 & echo $! >> {m}; done; sleep 300",
        m = marker.display()
    );
    let started = Instant::now();
    let out = run(ProcessSpec::new(
        vec!["sh".into(), "-c".into(), script.into()],
        &r.dir(".").unwrap(),
    )
    .limits(Limits {
        timeout: Duration::from_millis(400),
        grace: Duration::from_millis(200),
        ..Limits::default()
    }))
    .await
    .unwrap();
    assert!(out.timed_out);
    assert_eq!(out.exit_code, TIMEOUT_EXIT_CODE);
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(100)).await;
    for pid in std::fs::read_to_string(&marker).unwrap().lines() {
        assert!(!alive(pid.trim()), "child {pid} survived");
    }
}

fn alive(pid: &str) -> bool {
    // A zombie is dead for our purposes (nothing runs); only count running states.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn dropping_the_future_kills_the_group() {
    let (_d, r) = root();
    let marker = r.path().join("pid");
    let script = format!("sleep 300 & echo $! > {m}; sleep 300", m = marker.display());
    let spec = ProcessSpec::new(
        vec!["sh".into(), "-c".into(), script.into()],
        &r.dir(".").unwrap(),
    );
    let fut = run(spec);
    let _ = tokio::time::timeout(Duration::from_millis(300), fut).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = std::fs::read_to_string(&marker).unwrap();
    assert!(!alive(pid.trim()), "background child survived cancellation");
}

#[tokio::test]
async fn huge_output_is_capped_and_spilled_whole() {
    let (_d, r) = root();
    let spill = r.path().join("spill");
    // 200 MB through a 4 KiB preview: memory stays at the cap, the file has it all.
    let out = run(ProcessSpec::new(
        vec![
            "head".into(),
            "-c".into(),
            "200000000".into(),
            "/dev/zero".into(),
        ],
        &r.dir(".").unwrap(),
    )
    .limits(Limits {
        stdout_cap: 4096,
        ..Limits::default()
    })
    .spill_dir(&spill))
    .await
    .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout.preview.len(), 4096);
    assert_eq!(out.stdout.total_bytes, 200_000_000);
    assert!(out.stdout.truncated);
    let path = out.stdout.spill_path.clone().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 200_000_000);
}

#[tokio::test]
async fn endless_output_with_timeout_never_blocks() {
    let (_d, r) = root();
    let out = run(ProcessSpec::new(vec!["yes".into()], &r.dir(".").unwrap())
        .limits(Limits {
            timeout: Duration::from_millis(300),
            stdout_cap: 1024,
            spill_cap: 1 << 20,
            ..Limits::default()
        })
        .spill_dir(r.path().join("spill")))
    .await
    .unwrap();
    assert!(out.timed_out);
    assert_eq!(out.stdout.preview.len(), 1024);
    assert!(out.stdout.total_bytes > 1 << 20);
    assert!(out.stdout.spill_truncated);
}

#[tokio::test]
async fn empty_argv_and_missing_program_are_errors() {
    let (_d, r) = root();
    let e = run(ProcessSpec::new(vec![], &r.dir(".").unwrap()))
        .await
        .unwrap_err();
    assert_eq!(agentry_core::ErrorCode::code(&e), "shell.empty_command");
    let e = run(ProcessSpec::new(
        vec!["no-such-program-xyz".into()],
        &r.dir(".").unwrap(),
    ))
    .await
    .unwrap_err();
    assert_eq!(agentry_core::ErrorCode::code(&e), "process.spawn_failed");
}
