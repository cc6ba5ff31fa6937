//! `agentry run`.
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use agentry::{AgentryError, ErrorCode, EventType, Limits, Runtime};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::config::{self, Env, Overrides};
use crate::{EventsFormat, RunArgs};

const USAGE_ERROR: u8 = 2;
const RUN_FAILED: u8 = 1;

fn usage_error(message: impl std::fmt::Display) -> u8 {
    eprintln!("agentry: {message}");
    USAGE_ERROR
}

fn read_prompt(prompt: Option<String>) -> Result<String, String> {
    match prompt.as_deref() {
        Some("-") => {
            let mut buf = String::new();
            std::io::stdin()
                .read_to_string(&mut buf)
                .map_err(|e| format!("cannot read the prompt from stdin: {e}"))?;
            Ok(buf)
        }
        Some(p) => Ok(p.to_owned()),
        None if !std::io::stdin().is_terminal() => {
            Err("agentry run needs a PROMPT argument (use `-` to read it from stdin)".into())
        }
        None => Err(
            "agentry run needs a PROMPT argument, e.g. agentry run --model test \"Hello\"".into(),
        ),
    }
}

fn read_schema(path: &PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}

pub async fn run(config_path: Option<PathBuf>, args: RunArgs, env: &Env) -> u8 {
    let prompt = match read_prompt(args.prompt.clone()) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let schema = match &args.output {
        Some(p) => match read_schema(p) {
            Ok(s) => Some(s),
            Err(e) => return usage_error(e),
        },
        None => None,
    };
    let overrides = Overrides {
        config_path,
        model: args.model.clone(),
        base_url: args.base_url.clone(),
    };
    let resolved = match config::resolve(&overrides, env) {
        Ok(r) => r,
        Err(e) => return usage_error(format!("config error: {e}")),
    };
    let mut limits = Limits::new();
    limits.max_seconds = args.max_seconds;
    limits.max_no_progress_seconds = args.max_no_progress_seconds;
    limits.max_model_requests = args.max_model_requests;

    let mut builder = Runtime::builder().limits(resolved.limits);
    if args.workspace.workspace.is_some() || args.workspace.workspace_url.is_some() {
        match args.workspace.open() {
            Ok(ws) => builder = builder.workspace(ws),
            Err(e) => return usage_error(e),
        }
    } else if args.record {
        return usage_error("--record needs a Workspace: add --workspace DIR");
    }
    let mut description = String::new();
    for m in &resolved.models {
        if m.key == resolved.selected {
            description = m.description.clone();
        }
        if let Some(s) = &m.secret {
            builder = builder.secret(s.clone());
        }
        builder = builder.model(m.key.clone(), m.provider.clone());
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => return usage_error(e),
    };
    let approval = crate::approve::handler(args.approve);
    let mut agent = runtime.agent("agentry-cli").approval(approval.clone());
    let builtins = match &args.enable {
        Some(list) => {
            let root = args
                .workspace
                .workspace
                .clone()
                .unwrap_or_else(|| PathBuf::from("."));
            match crate::builtins::enable(list, root, &args.sandbox, &args.profile, approval) {
                Ok(b) => Some(b),
                Err(e) => return usage_error(e),
            }
        }
        None => None,
    };
    let mut registry = builtins
        .as_ref()
        .map(|b| b.registry.clone())
        .unwrap_or_default();
    let mcp_servers =
        match crate::mcp_cmd::connect_all(&args.mcp, &resolved.mcp, &mut registry).await {
            Ok(s) => s,
            Err(e) => return usage_error(e),
        };
    if !registry.is_empty() {
        agent = agent.with_actions(registry);
    }
    if let Some(b) = &builtins {
        agent = agent.resources(Arc::new(b.resources.clone()));
    }
    if let Some(rounds) = args.max_rounds {
        agent = agent.max_rounds(rounds);
    }
    let mut draft = agent
        .input(prompt)
        .model(resolved.selected.clone())
        .limits(limits);
    for i in &args.instruct {
        draft = draft.instruct(i.clone());
    }
    if let Some(s) = schema.clone() {
        draft = draft.output_schema(s);
    }
    let execution = match draft.start() {
        Ok(e) => e,
        Err(e @ (AgentryError::InvalidLimit { .. } | AgentryError::Config(_))) => {
            return usage_error(e);
        }
        Err(e) => return usage_error(e),
    };

    let human = !args.json && args.events.is_none();
    let progress = human && !args.quiet;
    if progress && let Some(b) = &builtins {
        eprintln!(
            "actions: {} (isolation: {:?})",
            b.action_ids.join(", "),
            b.isolation
        );
    }
    if progress {
        eprintln!(
            "agentry · {} · {} · {}",
            resolved.selected,
            description,
            execution.id()
        );
    }
    let started = Instant::now();

    // Stream what the user asked for while the execution runs.
    let mut events = execution.events();
    let stream_text = human && schema.is_none();
    let stream_keys = schema.is_some();
    let events_jsonl = args.events == Some(EventsFormat::Jsonl);
    let printer = tokio::spawn(async move {
        let stdout = std::io::stdout();
        let mut printed_text = false;
        while let Some(ev) = events.next().await {
            if events_jsonl {
                if let Ok(line) = serde_json::to_string(&*ev) {
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
                continue;
            }
            if ev.event_type == EventType::MODEL_STREAMING && stream_text {
                if let Some(delta) = ev.payload.get("delta").and_then(Value::as_str) {
                    let mut out = stdout.lock();
                    let _ = out.write_all(delta.as_bytes());
                    let _ = out.flush();
                    printed_text = true;
                }
            } else if progress
                && stream_keys
                && ev.event_type.as_str() == "agent_execution.stream.done"
            {
                // Per-key progress for structured answers: each completed leaf value.
                let value = &ev.payload["value"];
                if !value.is_object() && !value.is_array() {
                    let path = ev.payload["path"].as_str().unwrap_or("");
                    let mut shown = value.to_string();
                    if shown.len() > 80 {
                        let cut = (0..=77)
                            .rev()
                            .find(|i| shown.is_char_boundary(*i))
                            .unwrap_or(0);
                        shown.truncate(cut);
                        shown.push('…');
                    }
                    eprintln!("  ✓ {path} = {shown}");
                }
            } else if ev.event_type == EventType::MODEL_RETRYING && progress {
                eprintln!(
                    "  retrying: {}",
                    ev.message.as_deref().unwrap_or("transient failure")
                );
            }
        }
        printed_text
    });

    let outcome = tokio::select! {
        r = execution.result() => r,
        _ = tokio::signal::ctrl_c() => {
            execution.cancel();
            execution.result().await
        }
    };
    let printed_text = printer.await.unwrap_or(false);
    if let Some(b) = &builtins {
        b.release(execution.id().as_str()).await;
    }
    for server in &mcp_servers {
        server.release().await;
    }
    if args.record {
        let options = agentry::RecordOptions::new("observations").checkpoint(true);
        match execution.record_workspace(options).await {
            Ok(w) if progress => eprintln!("recorded {} in the Workspace", w.record.id),
            Ok(_) => {}
            Err(e) => eprintln!(
                "agentry: could not record the execution [{}]: {e}",
                e.code()
            ),
        }
    }
    let meta = execution.meta().await;
    runtime.shutdown().await;

    let code = match &outcome {
        Ok(_) => 0,
        Err(_) => RUN_FAILED,
    };
    if args.json {
        let object = match &outcome {
            Ok(r) => json!({
                "status": "success",
                "execution_id": execution.id(),
                "text": r.text,
                "data": r.data,
                "meta": meta,
            }),
            Err(e) => json!({
                "status": "error",
                "execution_id": execution.id(),
                "error": {"code": e.code(), "message": e.to_string()},
                "meta": meta,
            }),
        };
        println!("{object}");
    } else if human {
        match &outcome {
            Ok(r) => {
                if let Some(data) = &r.data {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(data).unwrap_or_else(|_| data.to_string())
                    );
                } else if printed_text {
                    println!();
                } else {
                    println!("{}", r.text);
                }
            }
            Err(_) if printed_text => println!(),
            Err(_) => {}
        }
    }
    match &outcome {
        Err(e) => eprintln!("agentry: execution failed [{}]: {e}", e.code()),
        Ok(_) if progress => eprintln!(
            "done in {:.2}s · {} model request(s) · {} tokens",
            started.elapsed().as_secs_f64(),
            meta.diagnostics.budget.model_requests_used,
            meta.usage.total_tokens
        ),
        Ok(_) => {}
    }
    code
}
