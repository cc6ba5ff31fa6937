//! Tool-call round trips against our own MCP server, over stdio (a real child process:
//! the `agentry-mcp-test-server` binary) and Streamable HTTP (the library's server on
//! 127.0.0.1, in its own thread and runtime), comparing:
//!
//! - `bare rmcp`: an rmcp client with no handler, `peer.call_tool(…)` (stdio framing by
//!   rmcp's async-rw transport; HTTP by rmcp's reqwest transport);
//! - `McpServer::call_tool`: our client alone (own stdout reader, per-call inactivity
//!   timeout reset by progress + maximum total, result conversion);
//! - `dispatch → MCP`: the runtime's path, `Dispatcher::call(HostCall)` on the action
//!   `use_mcp` registered (lookup, schema validation, policy, approval check, events,
//!   record, digest check), then our client.
//!
//! Run with `cargo bench -p agentry-mcp --bench roundtrip` (`-- --calls N` to change the
//! number of measured calls, default 1000).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use agentry_actions::{ActionPolicy, ActionRegistry, CallScope, Dispatcher, FnAction, HostCall};
use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
use agentry_mcp::{
    CallLimits, McpHttpServer, McpServer, McpServerConfig, ServeOptions, UseMcpOptions, use_mcp,
};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agentry-mcp-test-server");
const WARMUP: usize = 100;

fn args() -> serde_json::Map<String, Value> {
    match json!({"a": 20, "b": 22}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

struct Stats {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

async fn measure<F, Fut>(n: usize, mut f: F) -> Stats
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARMUP {
        f().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed());
    }
    samples.sort();
    let total: Duration = samples.iter().sum();
    Stats {
        median: samples[n / 2],
        p99: samples[(n * 99 / 100).min(n - 1)],
        mean: total / n as u32,
    }
}

fn row(transport: &str, path: &str, s: &Stats, bare: Option<&Stats>) {
    let over = bare
        .map(|b| {
            format!(
                "{:+.3} ms",
                (s.median.as_secs_f64() - b.median.as_secs_f64()) * 1e3
            )
        })
        .unwrap_or_else(|| "—".into());
    println!(
        "| {transport:<6} | {path:<24} | {:>8.3} | {:>8.3} | {:>8.3} | {over:>10} |",
        s.median.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.mean.as_secs_f64() * 1e3,
    );
}

fn scope() -> CallScope {
    let exe = ExecutionId::new();
    let mut run = (*RunContext::root(RunKind::REQUEST)).clone();
    run.execution_id = Some(exe.clone());
    CallScope::new(
        EventCenter::new().emitter("bench"),
        std::sync::Arc::new(run),
        exe,
    )
}

async fn ours(n: usize, transport: &str, config: McpServerConfig) {
    let server = McpServer::new("bench", config).unwrap();
    let direct = measure(n, || async {
        let v = server
            .call_tool("add", Value::Object(args()), CallLimits::default())
            .await
            .unwrap();
        assert_eq!(v["sum"], 42);
    })
    .await;
    let mut registry = ActionRegistry::new();
    use_mcp(&mut registry, &server, UseMcpOptions::default())
        .await
        .unwrap();
    let dispatcher = Dispatcher::new(registry, &ActionPolicy::new());
    let scope = scope();
    let dispatched = measure(n, || async {
        let r = dispatcher
            .call(&scope, HostCall::new("add", Value::Object(args())))
            .await;
        assert!(r.is_ok(), "{r:?}");
    })
    .await;
    server.release().await;
    BARE.with(|b| {
        let bare = b.borrow();
        row(transport, "McpServer::call_tool", &direct, bare.as_ref());
        row(
            transport,
            "dispatch → MCP (runtime)",
            &dispatched,
            bare.as_ref(),
        );
    });
}

thread_local! {
    static BARE: std::cell::RefCell<Option<Stats>> = const { std::cell::RefCell::new(None) };
}

async fn bare_stdio(n: usize) -> Stats {
    let mut child = tokio::process::Command::new(BIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let client = ().serve((stdout, stdin)).await.unwrap();
    let s = measure(n, || async {
        let mut p = CallToolRequestParams::new("add");
        p.arguments = Some(args());
        let r = client.call_tool(p).await.unwrap();
        assert_eq!(r.structured_content.unwrap()["sum"], 42);
    })
    .await;
    drop(client);
    let _ = child.kill().await;
    s
}

async fn bare_http(n: usize, url: &str) -> Stats {
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.to_owned());
    let client = ().serve(transport).await.unwrap();
    measure(n, || async {
        let mut p = CallToolRequestParams::new("add");
        p.arguments = Some(args());
        let r = client.call_tool(p).await.unwrap();
        assert_eq!(r.structured_content.unwrap()["sum"], 42);
    })
    .await
}

fn http_registry() -> ActionRegistry {
    let mut reg = ActionRegistry::new();
    reg.register_fn(FnAction::new(
        "add",
        "Adds two integers.",
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
        |_, v| async move {
            Ok(json!({"sum": v["a"].as_i64().unwrap_or(0) + v["b"].as_i64().unwrap_or(0)}))
        },
    ))
    .unwrap();
    reg
}

fn main() {
    let mut n = 1000usize;
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|a| a == "--calls") {
        n = argv.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(n);
    }
    // The HTTP server runs in its own thread and runtime, like a separate process.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let dispatcher = Dispatcher::new(http_registry(), &ActionPolicy::new());
            let server = McpHttpServer::bind(
                "127.0.0.1:0".parse().unwrap(),
                dispatcher,
                ServeOptions::default(),
            )
            .await
            .unwrap();
            addr_tx.send(server.local_addr()).unwrap();
            server
                .run(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    let url = format!("http://{addr}/mcp");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("tool-call round trips, {n} calls after {WARMUP} warm-up calls (ms)\n");
        println!(
            "| {:<6} | {:<24} | {:>8} | {:>8} | {:>8} | {:>10} |",
            "via", "path", "median", "p99", "mean", "Δ median"
        );
        println!(
            "|--------|--------------------------|---------:|---------:|---------:|-----------:|"
        );
        let bare = bare_stdio(n).await;
        row("stdio", "bare rmcp", &bare, None);
        BARE.with(|b| *b.borrow_mut() = Some(bare));
        ours(
            n,
            "stdio",
            McpServerConfig::stdio(BIN, Vec::<String>::new()),
        )
        .await;

        let bare = bare_http(n, &url).await;
        row("http", "bare rmcp", &bare, None);
        BARE.with(|b| *b.borrow_mut() = Some(bare));
        ours(n, "http", McpServerConfig::http(&url)).await;
    });
    let _ = stop_tx.send(());
    let _ = server_thread.join();
}
