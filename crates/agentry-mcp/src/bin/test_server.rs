//! Test support, not a product: a real MCP server process for the crate's integration
//! tests and benchmark (`CARGO_BIN_EXE_agentry-mcp-test-server`).
//!
//! - no argument: serves a small registry of test actions over stdio through
//!   `agentry_mcp::serve_stdio` (the library's own server path, default fail-closed
//!   approval);
//! - `raw`: a hand-written rmcp server with behaviours the library's server never
//!   shows: progress notifications, `tools/list_changed`, image content, structured
//!   and text tool errors, garbage on stdout, a tool whose schema is not an object
//!   schema.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentry_actions::{
    ActionFailure, ActionPolicy, ActionRegistry, Dispatcher, FnAction, SideEffect,
};
use agentry_mcp::{ServeOptions, serve_stdio};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

fn registry() -> ActionRegistry {
    let mut reg = ActionRegistry::new();
    let obj = |props: Value, required: Value| json!({"type": "object", "properties": props, "required": required});
    let actions = vec![
        FnAction::new(
            "echo",
            "Returns its input.",
            obj(json!({"text": {"type": "string"}}), json!(["text"])),
            |_, v| async move { Ok(v) },
        ),
        FnAction::new(
            "add",
            "Adds two integers.",
            obj(
                json!({"a": {"type": "integer"}, "b": {"type": "integer"}}),
                json!(["a", "b"]),
            ),
            |_, v| async move {
                let a = v["a"].as_i64().unwrap_or_default();
                let b = v["b"].as_i64().unwrap_or_default();
                Ok(json!({"sum": a + b}))
            },
        ),
        FnAction::new(
            "greet",
            "Returns a plain string.",
            obj(json!({"name": {"type": "string"}}), json!(["name"])),
            |_, v| async move {
                Ok(json!(format!(
                    "hello {}",
                    v["name"].as_str().unwrap_or("?")
                )))
            },
        ),
        FnAction::new(
            "fail",
            "Always fails.",
            obj(json!({}), json!([])),
            |_, _| async move {
                Err(ActionFailure::new(
                    "test.failed",
                    "this action always fails",
                ))
            },
        ),
        FnAction::new(
            "sleep",
            "Sleeps for `ms` milliseconds.",
            obj(json!({"ms": {"type": "integer"}}), json!(["ms"])),
            |_, v| async move {
                tokio::time::sleep(Duration::from_millis(v["ms"].as_u64().unwrap_or(0))).await;
                Ok(json!({"slept_ms": v["ms"]}))
            },
        ),
        FnAction::new(
            "delete_everything",
            "Needs approval.",
            obj(json!({}), json!([])),
            |_, _| async move { Ok(json!("deleted")) },
        )
        .side_effect(SideEffect::Write)
        .approval_required(true),
        FnAction::new(
            "crash",
            "Exits the server process.",
            obj(json!({}), json!([])),
            |_, _| async move {
                eprintln!("test server: crashing on request");
                std::process::exit(3)
            },
        ),
        FnAction::new(
            "big",
            "Returns a string of `bytes` bytes.",
            obj(json!({"bytes": {"type": "integer"}}), json!(["bytes"])),
            |_, v| async move {
                let n = usize::try_from(v["bytes"].as_u64().unwrap_or(0)).unwrap_or(0);
                Ok(json!("x".repeat(n)))
            },
        ),
        FnAction::new(
            "env_probe",
            "Returns the working directory and the requested environment variables.",
            obj(
                json!({"names": {"type": "array", "items": {"type": "string"}}}),
                json!(["names"]),
            ),
            |_, v| async move {
                let mut vars = Map::new();
                for n in v["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    vars.insert(
                        n.to_owned(),
                        std::env::var(n).map(Value::String).unwrap_or(Value::Null),
                    );
                }
                let cwd = std::env::current_dir()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                Ok(json!({"cwd": cwd, "vars": vars}))
            },
        ),
        FnAction::new(
            "hidden",
            "Host-only action; never offered over MCP.",
            obj(json!({}), json!([])),
            |_, _| async move { Ok(json!("hidden")) },
        )
        .expose_to_model(false),
    ];
    for a in actions {
        if let Err(e) = reg.register_fn(a) {
            eprintln!("test server: {e}");
        }
    }
    reg
}

#[derive(Clone, Default)]
struct Raw {
    extra_tool: Arc<AtomicBool>,
}

fn schema(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl ServerHandler for Raw {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let any = schema(
            json!({"type": "object", "properties": {"steps": {"type": "integer"}, "interval_ms": {"type": "integer"}}}),
        );
        let mut tools = vec![
            Tool::new(
                "progress",
                "Sends `steps` progress notifications `interval_ms` apart, then answers.",
                any.clone(),
            ),
            Tool::new("image", "Returns text and an image.", any.clone()),
            Tool::new("tool_error", "Answers isError with text.", any.clone()),
            Tool::new("structured", "Answers structured content.", any.clone()),
            Tool::new("garbage", "Prints a non-JSON line on stdout.", any.clone()),
            Tool::new(
                "add_tool",
                "Adds the tool `late` and notifies list_changed.",
                any.clone(),
            ),
            Tool::new(
                "bad_schema",
                "Declares a string schema.",
                schema(json!({"type": "string"})),
            ),
            Tool::new(
                "weird name/with spaces",
                "A name the registry must rewrite.",
                any.clone(),
            ),
        ];
        if self.extra_tool.load(Ordering::SeqCst) {
            tools.push(Tool::new("late", "Added at run time.", any));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "progress" => {
                let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(3);
                let every = args
                    .get("interval_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(50);
                let token = context.meta.get_progress_token();
                for i in 0..steps {
                    tokio::time::sleep(Duration::from_millis(every)).await;
                    if let Some(t) = &token {
                        let _ = context
                            .peer
                            .notify_progress(ProgressNotificationParam::new(t.clone(), i as f64))
                            .await;
                    }
                }
                CallToolResult::structured(json!({"steps": steps}))
            }
            "image" => CallToolResult::success(vec![
                ContentBlock::text("a red dot"),
                ContentBlock::image("iVBORw0KGgo=", "image/png"),
            ]),
            "tool_error" => CallToolResult::error(vec![ContentBlock::text("the disk is on fire")]),
            "structured" => CallToolResult::structured(json!({"answer": 42})),
            "garbage" => {
                println!("this is not JSON-RPC");
                tokio::time::sleep(Duration::from_secs(30)).await;
                CallToolResult::success(vec![])
            }
            "add_tool" => {
                self.extra_tool.store(true, Ordering::SeqCst);
                let _ = context.peer.notify_tool_list_changed().await;
                CallToolResult::success(vec![ContentBlock::text("added")])
            }
            "hang" => {
                // Blocks the server's only thread: nothing is answered any more.
                std::thread::sleep(Duration::from_secs(3600));
                CallToolResult::success(vec![])
            }
            "late" => CallToolResult::success(vec![ContentBlock::text("late tool ran")]),
            "weird name/with spaces" => {
                CallToolResult::success(vec![ContentBlock::text("weird ok")])
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other}"),
                    None,
                ));
            }
        };
        Ok(CallToolResponse::Complete(result))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "raw" {
        match Raw::default()
            .serve((tokio::io::stdin(), tokio::io::stdout()))
            .await
        {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => eprintln!("test server: {e}"),
        }
        return;
    }
    let dispatcher = Dispatcher::new(registry(), &ActionPolicy::new());
    if let Err(e) = serve_stdio(dispatcher, ServeOptions::default(), std::future::pending()).await {
        eprintln!("test server: {e}");
        std::process::exit(1);
    }
}
