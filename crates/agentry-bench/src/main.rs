//! `bench`: throughput, CPU per request and memory of Agentry executions.
//!
//! The mock OpenAI-compatible server runs in a child process (this binary started
//! with `--serve`), so the CPU time `getrusage` reports is this process's: the
//! facade, events, the model provider and its HTTP client. Each streamed phase runs
//! next to a floor — the same request sent with a bare `reqwest` client whose body is
//! read and dropped — and the difference is reported as the runtime's own CPU cost:
//! the best of `--rounds` interleaved rounds of each, minus the best floor round.
//!
//! ```text
//! cargo run --release -p agentry-bench --bin bench [-- --requests 1000 --in-flight 200]
//!     [--rounds 3] [--phase sequential,concurrent,memory,test-model] [--no-event-log]
//!     [--hook none|inline|background] [--url URL-of-a-running-mock]
//!     [--skip-floor | --only-floor]
//! cargo run --release -p agentry-bench --bin bench -- --help
//! ```
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentry::model::{OpenAiChat, OpenAiConfig};

use agentry::core::{HookError, hook_fn};
use agentry::{HookOptions, Runtime, Settings};
use agentry_testkit::{MockServer, Reply, Rule, Scenario};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use nix::sys::resource::{UsageWho, getrusage};
use serde_json::json;

const ANSWER: &str = "Agentry streams this answer in twenty small chunks so that every request \
                      exercises the streaming path, the event center and the assembler end to end.";

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Throughput, CPU per request and memory of Agentry executions against the mock server"
)]
struct Options {
    /// Requests per phase (and executions held at once in the memory phase).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Requests in flight in the concurrent phase.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    in_flight: u32,
    /// Interleaved rounds of each streamed phase and its floor; the best of each is compared.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Phases to run (default: all). Repeat or separate with commas.
    #[arg(long, value_enum, value_delimiter = ',')]
    phase: Vec<PhaseKind>,
    /// Keep no per-execution replay log (hosts that observe through hooks only).
    #[arg(long)]
    no_event_log: bool,
    /// Register one hook that receives every event and counts it, as a host that
    /// forwards events (to DevTools, a log) would: `inline` is awaited by each emit,
    /// `background` runs on its own task. The default measures the runtime alone.
    #[arg(long, value_enum, default_value_t = HookKind::None)]
    hook: HookKind,
    /// Use a mock server that is already running (see `--serve`) instead of starting one.
    #[arg(long, value_name = "BASE_URL")]
    url: Option<String>,
    /// Run only the Agentry side of each streamed phase (for profilers).
    #[arg(long, conflicts_with = "only_floor")]
    skip_floor: bool,
    /// Run only the bare-reqwest floor of each streamed phase (for profilers).
    #[arg(long)]
    only_floor: bool,
    /// Serve the mock until stdin closes, printing its base URL on the first line.
    #[arg(long, exclusive = true)]
    serve: bool,
}

/// The observer registered for the streamed phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HookKind {
    /// No hook.
    None,
    /// One raw hook, awaited inline by every emit.
    Inline,
    /// One raw hook on a background task.
    Background,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PhaseKind {
    /// Streamed requests one at a time, against the floor.
    Sequential,
    /// Streamed requests `--in-flight` at a time, against the floor.
    Concurrent,
    /// `--requests` executions alive at once while RSS is sampled.
    Memory,
    /// The in-process test model against a spawned-task floor: the facade's own cost without HTTP.
    TestModel,
}

fn main() {
    let options = Options::parse();
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
    if options.serve {
        rt.block_on(serve());
        return;
    }
    match rt.block_on(bench(&options)) {
        Ok(()) => {}
        // The reader of our output went away (`bench | head`): nothing left to say.
        Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    }
}

/// Why a benchmark run stopped.
#[derive(Debug)]
enum Failure {
    /// A request, the mock server or the runtime failed.
    Run(String),
    /// Writing the report failed.
    Output(std::io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Run(e) => f.write_str(e),
            Failure::Output(e) => write!(f, "cannot write the report: {e}"),
        }
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Run(e)
    }
}

/// Writes one line of the report to stdout; a closed stdout is a [`Failure::Output`].
macro_rules! report {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(Failure::Output)
    };
}

/// The same work with the in-process test model: the facade's own cost without HTTP.
///
/// Its floor is an empty task spawned and awaited the same way: an execution runs on
/// a task of its own, and from the bench's `block_on` thread each hand-off wakes a
/// worker thread, whose cost swings with how deeply it had parked. Both run for
/// `rounds` interleaved rounds; the best of each is compared, as for the streamed phases.
async fn bench_test_model(requests: usize, rounds: usize) -> Result<(), Failure> {
    let test_runtime = Runtime::builder()
        .test_model()
        .build()
        .map_err(|e| e.to_string())?;
    let agent = test_runtime.agent("bench");
    let name = "test model, sequential (no HTTP)";
    let mut best = Best::default();
    for _ in 0..rounds.max(1) {
        let before = Usage::now();
        let t0 = Instant::now();
        for _ in 0..requests {
            tokio::spawn(std::future::ready(()))
                .await
                .map_err(|e| e.to_string())?;
        }
        best.floor(Phase::measured(
            "floor: spawn and await a task",
            requests,
            t0,
            before,
        ))?;

        let before = Usage::now();
        let t0 = Instant::now();
        for _ in 0..requests {
            agent.input("hi").text().await.map_err(|e| e.to_string())?;
        }
        best.phase(Phase::measured(name, requests, t0, before))?;
    }
    best.report("facade", "test model", "task floor", name, rounds)?;
    test_runtime.shutdown().await;
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
fn http_runtime(base_url: &str, keep_event_log: bool, hook: HookKind) -> Result<Runtime, String> {
    let provider =
        OpenAiChat::new(OpenAiConfig::new(base_url, "bench-model")).map_err(|e| e.to_string())?;
    let settings = Settings {
        // `--no-event-log`: no per-execution replay log (hosts that observe through
        // hooks rather than late `Execution::events()` subscribers).
        keep_event_log,
        ..Settings::default()
    };
    let runtime = Runtime::builder()
        .model("default", Arc::new(provider))
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?;
    let options = match hook {
        HookKind::None => return Ok(runtime),
        HookKind::Inline => HookOptions::new("bench-counter"),
        HookKind::Background => HookOptions::new("bench-counter").background(),
    };
    let seen = Arc::new(AtomicU64::new(0));
    runtime
        .events()
        .register(
            options,
            hook_fn(move |event| {
                let seen = seen.clone();
                async move {
                    // Touch the event as a forwarding sink would.
                    seen.fetch_add(event.seq.min(1), Ordering::Relaxed);
                    Ok::<(), HookError>(())
                }
            }),
        )
        .map_err(|e| e.to_string())?;
    Ok(runtime)
}

/// This process's resource use so far, from `getrusage(RUSAGE_SELF)`.
///
/// Linux keeps CPU time in nanoseconds and reports it here to the microsecond
/// (`/proc/self/stat` rounds to 10 ms ticks), and the switch counts include threads
/// that have already exited.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: Duration,
    /// Context switches, voluntary and involuntary. A thread hand-off costs one; on a
    /// VM each is several microseconds.
    switches: u64,
}

impl Usage {
    fn now() -> Self {
        let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
            return Usage {
                cpu: Duration::ZERO,
                switches: 0,
            };
        };
        let micros = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec().max(0) as u64)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        Usage {
            cpu: micros(usage.user_time()) + micros(usage.system_time()),
            switches: (usage.voluntary_context_switches() + usage.involuntary_context_switches())
                .max(0) as u64,
        }
    }
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
    cpu: Duration,
    switches: u64,
}

impl Phase {
    /// The phase that started at `t0` with resource use `before` and ends now.
    fn measured(name: &str, requests: usize, t0: Instant, before: Usage) -> Self {
        let wall = t0.elapsed();
        let after = Usage::now();
        Phase {
            name: name.to_owned(),
            requests,
            wall,
            cpu: after.cpu.saturating_sub(before.cpu),
            switches: after.switches.saturating_sub(before.switches),
        }
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests as f64
    }

    fn print(&self) -> Result<(), Failure> {
        let rps = self.requests as f64 / self.wall.as_secs_f64();
        let cpu_us = self.cpu_us_per_request();
        let switches = self.switches as f64 / self.requests as f64;
        report!(
            "{:<34} {:>6} req  {:>9.1} req/s  {:>8.1} µs CPU/req  {:>5.1} switches/req  {:>8.1} ms wall",
            self.name,
            self.requests,
            rps,
            cpu_us,
            switches,
            self.wall.as_secs_f64() * 1e3
        )?;
        report!(
            "{}",
            json!({"phase": self.name, "requests": self.requests, "requests_per_s": rps, "cpu_us_per_request": cpu_us, "context_switches_per_request": switches, "wall_ms": self.wall.as_secs_f64() * 1e3})
        )
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
    let before = Usage::now();
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
    let phase = Phase::measured(name, n, t0, before);
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
    Ok(phase)
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
    let before = Usage::now();
    let t0 = Instant::now();
    let results: Vec<Result<usize, String>> = futures::stream::iter(0..n)
        .map(|_| one(client.clone()))
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let phase = Phase::measured(
        &format!("floor: bare reqwest ({in_flight} in flight)"),
        n,
        t0,
        before,
    );
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        return Err(format!("floor: {e}"));
    }
    if results.iter().any(|r| matches!(r, Ok(0))) {
        return Err("floor: an empty response body".into());
    }
    Ok(phase)
}

/// Which sides of a streamed phase to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sides {
    Both,
    AgentryOnly,
    FloorOnly,
}

/// Runs an Agentry phase and its floor `rounds` times, interleaved so both see the
/// same machine, and prints the runtime's own cost: the best Agentry round minus the
/// best floor round. On a shared VM single runs swing by a quarter or more; the best
/// of several is the figure least disturbed by other tenants.
async fn compare_with_floor(
    runtime: &Runtime,
    base_url: &str,
    name: &str,
    (requests, in_flight, rounds): (usize, usize, usize),
    sides: Sides,
) -> Result<(), Failure> {
    let mut best = Best::default();
    for _ in 0..rounds.max(1) {
        if sides != Sides::AgentryOnly {
            best.floor(run_floor(base_url, requests, in_flight).await?)?;
        }
        if sides != Sides::FloorOnly {
            best.phase(run_phase(runtime, name, requests, in_flight, "hi").await?)?;
        }
    }
    if sides != Sides::Both {
        return Ok(());
    }
    best.report("runtime", "Agentry", "floor", name, rounds)
}

/// The lowest CPU per request of a phase and of its floor over interleaved rounds.
struct Best {
    phase: f64,
    floor: f64,
}

impl Default for Best {
    fn default() -> Self {
        Best {
            phase: f64::INFINITY,
            floor: f64::INFINITY,
        }
    }
}

impl Best {
    /// Prints a floor round and keeps it if it is the best so far.
    fn floor(&mut self, round: Phase) -> Result<(), Failure> {
        round.print()?;
        self.floor = self.floor.min(round.cpu_us_per_request());
        Ok(())
    }

    /// Prints a round of the measured phase and keeps it if it is the best so far.
    fn phase(&mut self, round: Phase) -> Result<(), Failure> {
        round.print()?;
        self.phase = self.phase.min(round.cpu_us_per_request());
        Ok(())
    }

    /// Prints the own cost, best phase round minus best floor round, in words and as JSON.
    fn report(
        &self,
        whose: &str,
        phase_label: &str,
        floor_label: &str,
        name: &str,
        rounds: usize,
    ) -> Result<(), Failure> {
        let (best, best_floor) = (self.phase, self.floor);
        let own = best - best_floor;
        report!(
            "  {whose}'s own CPU per request (best {phase_label} − best {floor_label} of {rounds}): {own:.1} µs ({best:.1} vs {best_floor:.1})"
        )?;
        report!(
            "{}",
            json!({"phase": name, "rounds": rounds, "own_cpu_us_per_request": own, "cpu_us_per_request": best, "floor_cpu_us_per_request": best_floor})
        )
    }
}

/// All executions in flight at once: the server holds each first token for 1.5 s, so
/// every execution is alive at the same time while RSS is sampled.
async fn bench_memory(runtime: &Runtime, requests: usize) -> Result<(), Failure> {
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
        runtime,
        &format!("all {requests} in flight"),
        requests,
        requests,
        "hold",
    )
    .await?;
    let peak_during = sampler.await.unwrap_or(0);
    all.print()?;
    report!(
        "RSS: before {rss_before} KiB, peak while {requests} executions were in flight {peak_during} KiB, \
         process high-water mark {} KiB",
        status_kib("VmHWM:")
    )?;
    report!(
        "{}",
        json!({"rss_before_kib": rss_before, "rss_peak_in_flight_kib": peak_during, "vm_hwm_kib": status_kib("VmHWM:")})
    )
}

/// The mock server in a child process; it exits when dropped (its stdin closes).
struct ServerProcess {
    child: Child,
    base_url: String,
}

impl ServerProcess {
    fn start() -> Result<Self, String> {
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
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("mock server did not report its URL: {base_url:?}"));
        }
        Ok(ServerProcess { child, base_url })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

async fn bench(options: &Options) -> Result<(), Failure> {
    let requests = options.requests as usize;
    let in_flight = options.in_flight as usize;
    let rounds = options.rounds as usize;
    let wants = |kind: PhaseKind| options.phase.is_empty() || options.phase.contains(&kind);
    let sides = match (options.skip_floor, options.only_floor) {
        (true, _) => Sides::AgentryOnly,
        (_, true) => Sides::FloorOnly,
        _ => Sides::Both,
    };

    let mut server = None;
    let base_url = match &options.url {
        Some(url) => url.clone(),
        None => {
            let started = ServerProcess::start()?;
            let url = started.base_url.clone();
            report!("mock server: {url} (separate process)")?;
            server = Some(started);
            url
        }
    };
    let runtime = http_runtime(&base_url, !options.no_event_log, options.hook)?;
    report!("RSS at start: {} KiB", status_kib("VmRSS:"))?;
    run_phase(&runtime, "warm-up", 50, 10, "hi").await?;

    if wants(PhaseKind::Sequential) {
        let sizes = (requests, 1, rounds);
        compare_with_floor(
            &runtime,
            &base_url,
            "sequential (1 in flight)",
            sizes,
            sides,
        )
        .await?;
    }
    if wants(PhaseKind::Concurrent) {
        let name = format!("concurrent ({in_flight} in flight)");
        let sizes = (requests, in_flight, rounds);
        compare_with_floor(&runtime, &base_url, &name, sizes, sides).await?;
    }
    if wants(PhaseKind::Memory) {
        bench_memory(&runtime, requests).await?;
    }
    if wants(PhaseKind::TestModel) {
        bench_test_model(requests, rounds).await?;
    }
    runtime.shutdown().await;
    drop(server);
    Ok(())
}
