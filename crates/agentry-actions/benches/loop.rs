//! Runtime overhead of the action loop: 3 rounds × 4 concurrent local actions, then an
//! answer. Run with `cargo bench -p agentry-actions --bench loop`.
//!
//! Two model back ends:
//! - an in-process zero-latency model (responses prepared up front), which isolates the
//!   runtime's own cost;
//! - the mock OpenAI-compatible HTTP server through `OpenAiChat`, for a realistic picture.
//!
//! Reported: wall time per loop, time inside the model caller, time inside actions, and
//! the rest — runtime overhead (planning/parsing, validation, dispatch, events, digests,
//! conversation bookkeeping) — per round and per dispatched call, plus heap
//! allocations per dispatched call (model-caller allocations excluded), counted by a
//! global allocator.
#![allow(
    unsafe_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentry_actions::*;
use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
use agentry_model::{
    Message, ModelRequest, ModelResponse, OpenAiChat, OpenAiConfig, ToolArguments, ToolCall,
};
use futures::future::BoxFuture;
use serde_json::json;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: usize = 3;
const CALLS: usize = 4;

/// Zero-latency model: prepared responses, with time and allocations inside measured.
struct InProcess {
    turns: Vec<ModelResponse>,
    next: AtomicU64,
    nanos: AtomicU64,
    allocs: AtomicU64,
}

impl InProcess {
    fn new() -> Self {
        let mut turns = Vec::new();
        for round in 0..ROUNDS {
            turns.push(ModelResponse {
                tool_calls: (0..CALLS)
                    .map(|i| ToolCall {
                        id: format!("call_{round}_{i}"),
                        name: "lookup".into(),
                        arguments: ToolArguments::Json(
                            json!({"key": format!("k{round}-{i}"), "limit": 3}),
                        ),
                    })
                    .collect(),
                ..Default::default()
            });
        }
        turns.push(ModelResponse {
            text: String::new(),
            ..Default::default()
        });
        turns.push(ModelResponse {
            text: "done".into(),
            ..Default::default()
        });
        Self {
            turns,
            next: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            allocs: AtomicU64::new(0),
        }
    }
    fn reset(&self) {
        self.next.store(0, Ordering::Relaxed);
        self.nanos.store(0, Ordering::Relaxed);
        self.allocs.store(0, Ordering::Relaxed);
    }
}

impl ModelCaller for InProcess {
    fn call(
        &self,
        _p: CallPurpose,
        request: ModelRequest,
    ) -> BoxFuture<'_, Result<ModelResponse, ActionError>> {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let r = self.turns[i.min(self.turns.len() - 1)].clone();
        drop(request);
        self.nanos
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.allocs
            .fetch_add(ALLOCS.load(Ordering::Relaxed) - a0, Ordering::Relaxed);
        Box::pin(async move { Ok(r) })
    }
}

/// Wraps a provider caller and measures the time spent in it.
struct Timed {
    inner: ProviderCaller,
    nanos: AtomicU64,
    allocs: AtomicU64,
}

impl ModelCaller for Timed {
    fn call(
        &self,
        p: CallPurpose,
        request: ModelRequest,
    ) -> BoxFuture<'_, Result<ModelResponse, ActionError>> {
        Box::pin(async move {
            let a0 = ALLOCS.load(Ordering::Relaxed);
            let t0 = Instant::now();
            let r = self.inner.call(p, request).await;
            self.nanos
                .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.allocs
                .fetch_add(ALLOCS.load(Ordering::Relaxed) - a0, Ordering::Relaxed);
            r
        })
    }
}

fn registry() -> ActionRegistry {
    let mut reg = ActionRegistry::new();
    reg.register_fn(FnAction::new(
        "lookup",
        "Looks up a key in a local table.",
        json!({"type": "object", "properties": {"key": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
               "required": ["key"], "additionalProperties": false}),
        |_ctx, input| async move { Ok(json!({"key": input["key"], "values": [1, 2, 3]})) },
    ))
    .unwrap();
    reg
}

struct Sample {
    wall: Duration,
    model: Duration,
    action: Duration,
    allocs: u64,
    calls: usize,
}

async fn one(
    lp: &ActionLoop,
    center: &EventCenter,
    caller: &dyn ModelCaller,
) -> (Duration, usize, u64, Duration) {
    let emitter = center.emitter("bench");
    let run = RunContext::root(RunKind::REQUEST);
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let out = lp
        .run(LoopInput::new(
            emitter,
            run,
            ExecutionId::new(),
            vec![Message::user("look things up")],
            caller,
        ))
        .await
        .unwrap();
    let wall = t0.elapsed();
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    assert_eq!(out.rounds as usize, ROUNDS);
    let calls = out
        .records
        .iter()
        .filter(|r| r.source != CallSource::Runtime)
        .count();
    assert_eq!(calls, ROUNDS * CALLS);
    let action: u64 = out.records.iter().map(|r| r.timing.executor_us).sum();
    (wall, calls, allocs, Duration::from_micros(action))
}

fn report(name: &str, samples: &[Sample]) {
    let n = samples.len() as f64;
    let mean = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>() / n;
    let wall = mean(&|s| s.wall.as_secs_f64() * 1e6);
    let model = mean(&|s| s.model.as_secs_f64() * 1e6);
    let action = mean(&|s| s.action.as_secs_f64() * 1e6);
    let calls = mean(&|s| s.calls as f64);
    let allocs = mean(&|s| s.allocs as f64);
    let overhead = wall - model - action;
    let mut per_call: Vec<f64> = samples
        .iter()
        .map(|s| (s.wall - s.model).saturating_sub(s.action).as_secs_f64() * 1e6 / s.calls as f64)
        .collect();
    per_call.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p50 = per_call[per_call.len() / 2];
    let p95 = per_call[per_call.len() * 95 / 100];
    println!(
        "== {name} ({} loops, {ROUNDS} rounds x {CALLS} calls + answer)",
        samples.len()
    );
    println!("  wall per loop          {wall:10.1} us");
    println!("  model caller per loop  {model:10.1} us");
    println!("  actions per loop       {action:10.1} us");
    println!("  runtime overhead/loop  {overhead:10.1} us");
    println!(
        "  overhead per round     {:10.1} us",
        overhead / ROUNDS as f64
    );
    println!(
        "  overhead per call      {:10.1} us (p50 {p50:.1}, p95 {p95:.1})",
        overhead / calls
    );
    println!(
        "  allocations per call   {:10.1} (runtime only, model caller excluded)",
        allocs / calls
    );
}

fn main() {
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let center = EventCenter::new();
        let lp = ActionLoop::new(
            registry(),
            &ActionPolicy::new(),
            Arc::new(FailClosed),
            LoopOptions::default(),
        )
        .unwrap();

        // In-process model.
        let model = InProcess::new();
        let mut samples = Vec::with_capacity(iters);
        for i in 0..(iters + iters / 10) {
            model.reset();
            let (wall, calls, allocs, action) = one(&lp, &center, &model).await;
            if i >= iters / 10 {
                samples.push(Sample {
                    wall,
                    model: Duration::from_nanos(model.nanos.load(Ordering::Relaxed)),
                    action,
                    allocs: allocs - model.allocs.load(Ordering::Relaxed),
                    calls,
                });
            }
        }
        report("in-process zero-latency model", &samples);

        // Mock HTTP server through OpenAiChat.
        use agentry_testkit::{MockServer, MockToolCall, Reply, Rule, Scenario};
        let mut scenario = Scenario::new();
        for round in 0..ROUNDS {
            let n = round * CALLS;
            scenario = scenario.rule(
                Rule::when(move |r| {
                    r.body["messages"]
                        .as_array()
                        .map(|m| m.iter().filter(|x| x["role"] == "tool").count())
                        == Some(n)
                        && r.body.get("tools").is_some()
                })
                .reply(Reply::tool_calls(
                    (0..CALLS)
                        .map(|i| {
                            MockToolCall::new(
                                format!("call_{round}_{i}"),
                                "lookup",
                                json!({"key": format!("k{round}-{i}")}),
                            )
                        })
                        .collect(),
                )),
            );
        }
        scenario = scenario.rule(Rule::always().reply(Reply::text("done")));
        let server = MockServer::start(scenario).await.unwrap();
        let provider = Arc::new(
            OpenAiChat::new(OpenAiConfig::new(server.base_url(), "mock-model").api_key("k"))
                .unwrap(),
        );
        let caller = Timed {
            inner: ProviderCaller::single(provider),
            nanos: AtomicU64::new(0),
            allocs: AtomicU64::new(0),
        };
        let http_iters = (iters / 10).max(20);
        let mut samples = Vec::with_capacity(http_iters);
        for i in 0..(http_iters + 5) {
            caller.nanos.store(0, Ordering::Relaxed);
            caller.allocs.store(0, Ordering::Relaxed);
            let (wall, calls, allocs, action) = one(&lp, &center, &caller).await;
            if i >= 5 {
                samples.push(Sample {
                    wall,
                    model: Duration::from_nanos(caller.nanos.load(Ordering::Relaxed)),
                    action,
                    allocs: allocs.saturating_sub(caller.allocs.load(Ordering::Relaxed)),
                    calls,
                });
            }
        }
        report(
            "mock OpenAI server via OpenAiChat (HTTP on 127.0.0.1)",
            &samples,
        );

        // Breakdown: one host call through the dispatcher, and one bare event emission.
        let run = RunContext::root(RunKind::REQUEST);
        let emitter = center.emitter("breakdown");
        let scope = CallScope::new(emitter.clone(), run.clone(), ExecutionId::new());
        let d = lp.dispatcher();
        let n = 5000u64;
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t0 = Instant::now();
        for i in 0..n {
            let r = d
                .call(
                    &scope,
                    HostCall::new("lookup", json!({"key": format!("k{i}")})),
                )
                .await;
            assert!(r.is_ok());
        }
        let per = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
        let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / n as f64;
        println!("== breakdown");
        println!(
            "  host call via dispatcher {per:8.2} us, {allocs:6.1} allocations (2 events included)"
        );
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t0 = Instant::now();
        for _ in 0..n {
            emitter
                .emit(
                    &run,
                    agentry_core::NewEvent::new(agentry_actions::events::ACTION_STARTED)
                        .payload(json!({"action_name": "x"})),
                )
                .await;
        }
        let per = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
        let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / n as f64;
        println!("  bare event emission      {per:8.2} us, {allocs:6.1} allocations");
    });
}
