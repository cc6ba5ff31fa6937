//! `bench`: throughput, CPU per request and memory of Agentry executions.
//!
//! The mock OpenAI-compatible server runs in a child process (this binary started
//! with `--serve`), so the CPU time read from `/proc/self/stat` is this process's:
//! the facade, events, the model provider and its HTTP client. Each streamed phase runs
//! next to a floor — the same request sent with a bare `reqwest` client whose body is
//! read and dropped — and the difference is reported as the runtime's own CPU cost:
//! the best of `--rounds` interleaved rounds of each, minus the best floor round.
//!
//! ```text
//! cargo run --release -p agentry-bench --bin bench [-- --requests 1000 --in-flight 200]
//!     [--rounds 3] [--no-event-log] [--url URL-of-a-running-mock [--skip-floor | --only-floor]]
//!     [--only-test-model]
//! ```
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry::model::{OpenAiChat, OpenAiConfig};

use agentry::{Runtime, Settings};
use agentry_testkit::{MockServer, Reply, Rule, Scenario};
use futures::StreamExt;
use serde_json::json;

const ANSWER: &str = "Agentry streams this answer in twenty small chunks so that every request \
                      exercises the streaming path, the event center and the assembler end to end.";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    if args.iter().any(|a| a == "--serve") {
        rt.block_on(serve());
        return;
    }
    let requests = arg_value(&args, "--requests").unwrap_or(1000);
    let in_flight = arg_value(&args, "--in-flight").unwrap_or(200);
    if args.iter().any(|a| a == "--only-test-model") {
        if let Err(e) = rt.block_on(bench_test_model(requests)) {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let url = args
        .iter()
        .position(|a| a == "--url")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let rounds = arg_value(&args, "--rounds").unwrap_or(3);
    if let Err(e) = rt.block_on(bench(requests, in_flight, rounds, url)) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn arg_value(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// The same work with the in-process test model: the facade's own cost without HTTP.
async fn bench_test_model(requests: usize) -> Result<(), String> {
    let test_runtime = Runtime::builder()
        .test_model()
        .build()
        .map_err(|e| e.to_string())?;
    let agent = test_runtime.agent("bench");
    let (cpu0, sw0) = (cpu_seconds(), context_switches());
    let t0 = Instant::now();
    for _ in 0..requests {
        agent.input("hi").text().await.map_err(|e| e.to_string())?;
    }
    Phase {
        name: "test model, sequential (no HTTP)".into(),
        requests,
        wall: t0.elapsed(),
        cpu: cpu_seconds() - cpu0,
        switches: context_switches() - sw0,
    }
    .print();
    Ok(())
}

/// Child mode: serve the mock until stdin closes.
async fn serve() {
    let words: Vec<String> = ANSWER.split_inclusive(' ').map(str::to_owned).collect();
    let scenario = Scenario::new()
        .rule(Rule::when_user_contains("hold").reply(
            Reply::text_chunks(words.clone()).first_token_delay(Duration::from_millis(1500)),
        ))
        .fallback(Reply::text_chunks(words).with_usage(20, 20));
    let server = match MockServer::start(scenario).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench --serve: {e}");
            return;
        }
    };
    println!("{}", server.base_url());
    let _ = std::io::stdout().flush();
    // Block until the parent closes our stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await;
    server.shutdown().await;
}

/// A runtime whose default model streams from the mock server at `base_url`.
fn http_runtime(base_url: &str) -> Result<Runtime, String> {
    let provider =
        OpenAiChat::new(OpenAiConfig::new(base_url, "bench-model")).map_err(|e| e.to_string())?;
    let settings = Settings {
        // `--no-event-log`: no per-execution replay log (hosts that observe through
        // hooks rather than late `Execution::events()` subscribers).
        keep_event_log: !std::env::args().any(|a| a == "--no-event-log"),
        ..Settings::default()
    };
    Runtime::builder()
        .model("default", Arc::new(provider))
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())
}

/// CPU time (user + system) of this process, from /proc/self/stat, in seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 here.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Context switches (voluntary + involuntary) summed over this process's threads.
/// A thread hand-off costs a switch; on a VM each one is several microseconds.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn status_kib(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Phase {
    name: String,
    requests: usize,
    wall: Duration,
    cpu: f64,
    switches: u64,
}

impl Phase {
    fn print(&self) {
        let rps = self.requests as f64 / self.wall.as_secs_f64();
        let cpu_us = self.cpu * 1e6 / self.requests as f64;
        let switches = self.switches as f64 / self.requests as f64;
        println!(
            "{:<34} {:>6} req  {:>9.1} req/s  {:>8.1} µs CPU/req  {:>5.1} switches/req  {:>8.1} ms wall",
            self.name,
            self.requests,
            rps,
            cpu_us,
            switches,
            self.wall.as_secs_f64() * 1e3
        );
        println!(
            "{}",
            json!({"phase": self.name, "requests": self.requests, "requests_per_s": rps, "cpu_us_per_request": cpu_us, "context_switches_per_request": switches, "wall_ms": self.wall.as_secs_f64() * 1e3})
        );
    }
}

async fn run_phase(
    runtime: &Runtime,
    name: &str,
    n: usize,
    in_flight: usize,
    prompt: &str,
) -> Result<Phase, String> {
    let agent = runtime.agent("bench");
    let (cpu0, sw0) = (cpu_seconds(), context_switches());
    let t0 = Instant::now();
    let results: Vec<Result<String, agentry::AgentryError>> = futures::stream::iter(0..n)
        .map(|_| {
            let agent = agent.clone();
            let prompt = prompt.to_owned();
            async move { agent.input(prompt).text().await }
        })
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let wall = t0.elapsed();
    let cpu = cpu_seconds() - cpu0;
    let switches = context_switches() - sw0;
    let failures = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        return Err(format!(
            "{name}: {failures} of {n} requests failed, first: {e}"
        ));
    }
    if let Some(Ok(text)) = results.first()
        && text != ANSWER
    {
        return Err(format!("{name}: unexpected answer {text:?}"));
    }
    Ok(Phase {
        name: name.to_owned(),
        requests: n,
        wall,
        cpu,
        switches,
    })
}

/// The floor: the same streamed request sent with a bare `reqwest` client (configured
/// like the provider's) whose body is read to the end and thrown away. Subtracting it
/// from an Agentry phase leaves the runtime's own cost: SSE decoding, assembling, events,
/// the execution's lifecycle.
async fn run_floor(base_url: &str, n: usize, in_flight: usize) -> Result<Phase, String> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let body = json!({
        "model": "bench-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": true,
        "stream_options": {"include_usage": true},
    })
    .to_string();
    // Each request runs in a task of its own, awaited from the caller, as an
    // Agentry execution does: the floor pays the same task hand-offs.
    let one = |client: reqwest::Client| {
        let (url, body) = (url.clone(), body.clone());
        let task = tokio::spawn(async move {
            let mut response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let mut bytes = 0usize;
            while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
                bytes += chunk.len();
            }
            Ok::<usize, String>(bytes)
        });
        async move { task.await.map_err(|e| e.to_string())? }
    };
    // Warm the connection pool like the Agentry phases' warm-up does.
    for _ in 0..10 {
        one(client.clone()).await?;
    }
    let (cpu0, sw0) = (cpu_seconds(), context_switches());
    let t0 = Instant::now();
    let results: Vec<Result<usize, String>> = futures::stream::iter(0..n)
        .map(|_| one(client.clone()))
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let (wall, cpu) = (t0.elapsed(), cpu_seconds() - cpu0);
    let switches = context_switches() - sw0;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        return Err(format!("floor: {e}"));
    }
    if results.iter().any(|r| matches!(r, Ok(0))) {
        return Err("floor: an empty response body".into());
    }
    Ok(Phase {
        name: format!("floor: bare reqwest ({in_flight} in flight)"),
        requests: n,
        wall,
        cpu,
        switches,
    })
}

/// Runs an Agentry phase and its floor `rounds` times, interleaved so both see the
/// same machine, and prints the runtime's own cost: the best Agentry round minus the
/// best floor round. On a shared VM single runs swing by a quarter or more; the best
/// of several is the figure least disturbed by other tenants.
async fn compare_with_floor(
    runtime: &Runtime,
    base_url: &str,
    name: &str,
    requests: usize,
    in_flight: usize,
    rounds: usize,
) -> Result<(), String> {
    let per = |p: &Phase| p.cpu * 1e6 / p.requests as f64;
    let (mut best_floor, mut best) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..rounds.max(1) {
        let floor = run_floor(base_url, requests, in_flight).await?;
        floor.print();
        let phase = run_phase(runtime, name, requests, in_flight, "hi").await?;
        phase.print();
        best_floor = best_floor.min(per(&floor));
        best = best.min(per(&phase));
    }
    let own = best - best_floor;
    println!(
        "  runtime's own CPU per request (best Agentry − best floor of {rounds}): {own:.1} µs ({best:.1} vs {best_floor:.1})"
    );
    println!(
        "{}",
        json!({"phase": name, "rounds": rounds, "own_cpu_us_per_request": own, "cpu_us_per_request": best, "floor_cpu_us_per_request": best_floor})
    );
    Ok(())
}

async fn bench(
    requests: usize,
    in_flight: usize,
    rounds: usize,
    url: Option<String>,
) -> Result<(), String> {
    if let Some(url) = url {
        let runtime = http_runtime(&url)?;
        run_phase(&runtime, "warm-up", 50, 10, "hi").await?;
        if std::env::args().any(|a| a == "--only-floor") {
            // For profiling the floor alone (`strace -c`, `perf`).
            run_floor(&url, requests, in_flight).await?.print();
            return Ok(());
        }
        if std::env::args().any(|a| a == "--skip-floor") {
            // For profiling the runtime alone.
            run_phase(&runtime, "agentry", requests, in_flight, "hi")
                .await?
                .print();
            return Ok(());
        }
        let name = format!("concurrent ({in_flight} in flight)");
        return compare_with_floor(&runtime, &url, &name, requests, in_flight, rounds).await;
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the mock server process: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or("no stdout from the mock server")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let base_url = line.trim().to_owned();
    if !base_url.starts_with("http://127.0.0.1") {
        return Err(format!("mock server did not report its URL: {base_url:?}"));
    }

    let runtime = http_runtime(&base_url)?;

    println!("mock server: {base_url} (separate process)");
    println!("RSS at start: {} KiB", status_kib("VmRSS:"));
    run_phase(&runtime, "warm-up", 50, 10, "hi").await?;

    compare_with_floor(
        &runtime,
        &base_url,
        "sequential (1 in flight)",
        requests,
        1,
        rounds,
    )
    .await?;
    let concurrent = format!("concurrent ({in_flight} in flight)");
    compare_with_floor(
        &runtime,
        &base_url,
        &concurrent,
        requests,
        in_flight,
        rounds,
    )
    .await?;

    // All requests in flight at once: the server holds each first token for 1.5 s,
    // so every execution is alive at the same time while RSS is sampled.
    let rss_before = status_kib("VmRSS:");
    let sampler = tokio::spawn(async {
        let mut peak = 0;
        for _ in 0..40 {
            peak = peak.max(status_kib("VmRSS:"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    });
    let all = run_phase(
        &runtime,
        &format!("all {requests} in flight"),
        requests,
        requests,
        "hold",
    )
    .await?;
    let peak_during = sampler.await.unwrap_or(0);
    all.print();
    println!(
        "RSS: before {rss_before} KiB, peak while {requests} executions were in flight {peak_during} KiB, \
         process high-water mark {} KiB",
        status_kib("VmHWM:")
    );
    println!(
        "{}",
        json!({"rss_before_kib": rss_before, "rss_peak_in_flight_kib": peak_during, "vm_hwm_kib": status_kib("VmHWM:")})
    );

    // The same work with the in-process test model: the facade's own cost without HTTP.
    let test_runtime = Runtime::builder()
        .test_model()
        .build()
        .map_err(|e| e.to_string())?;
    let agent = test_runtime.agent("bench");
    let (cpu0, sw0) = (cpu_seconds(), context_switches());
    let t0 = Instant::now();
    for _ in 0..requests {
        agent.input("hi").text().await.map_err(|e| e.to_string())?;
    }
    Phase {
        name: "test model, sequential (no HTTP)".into(),
        requests,
        wall: t0.elapsed(),
        cpu: cpu_seconds() - cpu0,
        switches: context_switches() - sw0,
    }
    .print();

    runtime.shutdown().await;
    drop(child.stdin.take());
    let _ = child.wait();
    Ok(())
}
