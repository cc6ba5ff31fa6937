//! Spawn-to-result latency of the runner and the actions against a bare
//! `std::process::Command` doing the same work.
//!
//! `cargo bench -p agentry-exec --bench spawn` (200 rounds; `SPAWN_RUNS=N` to
//! change). Cases run interleaved (one of each per round) so load drift on a busy
//! machine hits every case alike. Prints median and p95 in microseconds and each
//! row's overhead over its bare baseline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_actions::{ActionPolicy, ActionRegistry, CallScope, Dispatcher, HostCall};
use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
use agentry_exec::Root;
use agentry_exec::enable::{EnableSet, ExecOptions, enable};
use agentry_exec::process::{ProcessSpec, run};
use agentry_exec::resource::PermissionProfile;
use agentry_exec::sandbox::{Sandbox, SandboxMode, resolve_interpreter};
use serde_json::{Value, json};

type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>, Option<usize>);

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (
        us(v[v.len() / 2]),
        us(v[(v.len() * 95 / 100).min(v.len() - 1)]),
    )
}

fn main() {
    let n: usize = std::env::var("SPAWN_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path()).unwrap();
    let cwd = root.dir(".").unwrap();
    let python = resolve_interpreter("python", "python3").unwrap();

    let dispatcher = |sandbox: SandboxMode| {
        let mut registry = ActionRegistry::new();
        let mut o = ExecOptions::new(dir.path());
        o.sandbox = sandbox;
        o.profile = PermissionProfile::Trusted;
        o.scratch_dir = Some(dir.path().join("scratch"));
        let set = "shell,python".parse::<EnableSet>().unwrap();
        let enabled = enable(&mut registry, &set, &o).unwrap();
        Dispatcher::new(registry, &ActionPolicy::new()).with_resources(Arc::new(enabled.resources))
    };
    let scope = CallScope::new(
        EventCenter::new().emitter("bench"),
        RunContext::root(RunKind::REQUEST),
        ExecutionId::new(),
    );
    let off = dispatcher(SandboxMode::Off);
    let boxed = Sandbox::detect()
        .available()
        .then(|| dispatcher(SandboxMode::Required));
    let call = |d: &Dispatcher, id: &str, input: &Value| {
        let r = rt.block_on(d.call(&scope, HostCall::new(id, input.clone())));
        assert!(r.is_ok(), "{id}: {:?}", r.error);
    };
    let echo = json!({"argv": ["echo", "hi"]});
    let print1 = json!({"code": "print(1)"});

    let mut cases: Vec<Case<'_>> = Vec::new();
    cases.push((
        "bare Command: echo hi",
        Box::new(|| {
            let o = Command::new("echo")
                .arg("hi")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(o.status.success());
        }),
        None,
    ));
    cases.push((
        "process::run: echo hi",
        Box::new(|| {
            let o = rt
                .block_on(run(ProcessSpec::new(
                    vec!["echo".into(), "hi".into()],
                    &cwd,
                )))
                .unwrap();
            assert_eq!(o.exit_code, 0);
        }),
        Some(0),
    ));
    cases.push((
        "run_command echo (dispatcher, sandbox off)",
        Box::new(|| call(&off, "run_command", &echo)),
        Some(0),
    ));
    if let Some(d) = &boxed {
        cases.push((
            "run_command echo (dispatcher, bubblewrap)",
            Box::new(|| call(d, "run_command", &echo)),
            Some(0),
        ));
    }
    let py_row = cases.len();
    cases.push((
        "bare Command: python3 -I -c print(1)",
        Box::new(|| {
            let o = Command::new(&python)
                .args(["-I", "-c", "print(1)"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(o.status.success());
        }),
        None,
    ));
    cases.push((
        "process::run: python3 -I -c print(1)",
        Box::new(|| {
            let argv = vec![
                python.clone().into_os_string(),
                "-I".into(),
                "-c".into(),
                "print(1)".into(),
            ];
            let o = rt.block_on(run(ProcessSpec::new(argv, &cwd))).unwrap();
            assert_eq!(o.exit_code, 0);
        }),
        Some(py_row),
    ));
    cases.push((
        "run_python print(1) (dispatcher, sandbox off)",
        Box::new(|| call(&off, "run_python", &print1)),
        Some(py_row),
    ));
    if let Some(d) = &boxed {
        cases.push((
            "run_python print(1) (dispatcher, bubblewrap)",
            Box::new(|| call(d, "run_python", &print1)),
            Some(py_row),
        ));
    }

    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); cases.len()];
    for (_, f, _) in cases.iter_mut() {
        f(); // warm-up: resources ensured, caches filled
    }
    for _ in 0..n {
        for (i, (_, f, _)) in cases.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            times[i].push(t.elapsed());
        }
    }
    let results: Vec<(f64, f64)> = times.into_iter().map(stats).collect();
    println!("spawn-to-result latency, {n} interleaved rounds (µs)");
    println!(
        "| {:<46} | {:>8} | {:>8} | {:>17} |",
        "case", "median", "p95", "overhead (median)"
    );
    println!("|{:-<48}|{:-<10}|{:-<10}|{:-<19}|", "", "", "", "");
    for (i, (name, _, baseline)) in cases.iter().enumerate() {
        let (med, p95) = results[i];
        let over = baseline
            .map(|b| format!("{:+.0}", med - results[b].0))
            .unwrap_or_else(|| "—".into());
        println!("| {name:<46} | {med:>8.0} | {p95:>8.0} | {over:>17} |");
    }
}
