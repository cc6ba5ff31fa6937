//! Every model request of an execution passes here: budget, events, request log.
use std::sync::Arc;

use agentry_core::{
    Diagnostic, ErrorCode, EventType, Level, NewEvent, RunContext, RunKind, Severity, Timestamp,
    stage,
};
use agentry_model::streaming_json::JsonEvent;
use agentry_model::{ModelProvider, ModelRequest, ModelResponse, ResponseAssembler, StreamEvent};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::run::RunCtx;
use crate::error::AgentryError;
use crate::meta::ModelRequestLog;
use crate::structured::{OUTPUT_STREAM_PARSE_FAILED, OutputStream};

const MODEL_TOOL_CALL_DELTA: EventType = EventType::from_static("model.tool_call.delta");
/// A string value of the structured answer grew (high frequency).
const STREAM_DELTA: EventType = EventType::from_static("agent_execution.stream.delta");
/// A value of the structured answer is complete (provisional until validation).
const STREAM_DONE: EventType = EventType::from_static("agent_execution.stream.done");

/// Publishes per-key events of the structured answer and records completed values
/// for the KeyWaiter.
async fn emit_keys(ctx: &RunCtx, run: &Arc<RunContext>, events: Vec<JsonEvent>) {
    for event in events {
        match event {
            JsonEvent::Delta { path, delta } => {
                let payload =
                    json!({"path": path.to_string(), "delta": delta, "provisional": true});
                ctx.emit(
                    run,
                    NewEvent::new(STREAM_DELTA)
                        .source("AgentExecution")
                        .level(Level::Debug)
                        .payload(payload),
                )
                .await;
            }
            JsonEvent::Done { path, value } => {
                let shown = path.to_string();
                ctx.shared.keys.record(path, value.clone());
                // Built by hand so the value moves in: `json!` would serialize it, a
                // second deep copy of every container.
                let mut payload = serde_json::Map::with_capacity(3);
                payload.insert("path".into(), shown.into());
                payload.insert("value".into(), value);
                payload.insert("provisional".into(), true.into());
                ctx.emit(
                    run,
                    NewEvent::new(STREAM_DONE)
                        .source("AgentExecution")
                        .payload(payload.into()),
                )
                .await;
            }
            // `OutputStream` asks for every container value (the KeyWaiter and the `done`
            // events need them), so containers always come as `Done`.
            JsonEvent::ContainerDone { .. } => {}
        }
    }
}

/// Sends one request through `provider`, emitting the `request` / `model_request`
/// run events the DevTools console renders, and logs it in the execution meta.
pub(crate) async fn call(
    ctx: &RunCtx,
    parent: &Arc<RunContext>,
    model_key: &str,
    provider: &dyn ModelProvider,
    request: ModelRequest,
    parse_output: bool,
) -> Result<ModelResponse, AgentryError> {
    let index = ctx.take_model_request().await?;
    let info = provider.info();
    let request_run = Arc::new(parent.child(RunKind::REQUEST));
    let attempt_run = Arc::new(
        request_run
            .child(RunKind::MODEL_REQUEST)
            .with_meta("attempt_index", 1),
    );
    let started_at = Timestamp::now();
    let started = Instant::now();

    ctx.emit(
        &request_run,
        NewEvent::new(EventType::REQUEST_STARTED)
            .source("ModelRequest")
            .payload(json!({"attempt_index": 1, "model_key": model_key, "request_index": index})),
    )
    .await;
    ctx.emit(
        &attempt_run,
        NewEvent::new(EventType::MODEL_REQUEST_STARTED)
            .source("ModelRequest")
            .payload(json!({"attempt_index": 1, "request_run_id": request_run.run_id, "model_run_id": attempt_run.run_id})),
    )
    .await;
    ctx.emit(
        &attempt_run,
        NewEvent::new(EventType::PROMPT_BUILT)
            .source("ModelRequest")
            .level(Level::Debug)
            .payload(json!({"prompt_messages": request.messages, "output_schema": request.output_schema})),
    )
    .await;
    ctx.emit(
        &attempt_run,
        NewEvent::new(EventType::MODEL_REQUESTING)
            .source("ModelRequest")
            .payload(json!({
                "request": {
                    "request_url": info.endpoint,
                    "provider": info.provider,
                    "model": info.model,
                    "stream": true,
                    "tools": request.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                }
            })),
    )
    .await;

    ctx.progress.set_stage(stage::RESPONSE_FIRST_EVENT);
    let mut stream = provider.stream(request);
    let mut assembler = ResponseAssembler::default();
    let mut chunk_index: u64 = 0;
    let mut first_output_ms = None;
    let mut output = parse_output.then(OutputStream::new);
    let mut failure: Option<AgentryError> = None;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(ev) => ev,
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        };
        assembler.push(&event);
        match event {
            StreamEvent::TextDelta { text } => {
                if first_output_ms.is_none() {
                    first_output_ms = Some(started.elapsed().as_millis() as u64);
                    ctx.progress.set_stage(stage::RESPONSE_STREAM);
                }
                // Parsed before the text moves into the event; published after it.
                let keys = output.as_mut().map(|out| out.feed(&text));
                // The hottest event of a request, one per chunk: built by hand so the
                // text moves in rather than being copied.
                let mut payload = serde_json::Map::with_capacity(2);
                payload.insert("delta".to_owned(), Value::String(text));
                payload.insert("chunk_index".to_owned(), chunk_index.into());
                ctx.emit(
                    &attempt_run,
                    NewEvent::new(EventType::MODEL_STREAMING)
                        .source("ModelRequest")
                        .level(Level::Debug)
                        .payload(payload.into()),
                )
                .await;
                chunk_index += 1;
                if let Some(events) = keys {
                    emit_keys(ctx, &attempt_run, events).await;
                }
            }
            StreamEvent::ReasoningDelta { text } => {
                ctx.emit(
                    &attempt_run,
                    NewEvent::new(EventType::MODEL_REASONING_DELTA)
                        .source("ModelRequest")
                        .level(Level::Debug)
                        .payload(json!({"delta": text})),
                )
                .await;
            }
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                if first_output_ms.is_none() {
                    first_output_ms = Some(started.elapsed().as_millis() as u64);
                    ctx.progress.set_stage(stage::RESPONSE_STREAM);
                }
                ctx.emit(
                    &attempt_run,
                    NewEvent::new(MODEL_TOOL_CALL_DELTA)
                        .source("ModelRequest")
                        .level(Level::Debug)
                        .payload(
                            json!({"index": index, "id": id, "name": name, "delta": arguments}),
                        ),
                )
                .await;
            }
            StreamEvent::Retry(retry) => {
                ctx.emit(
                    &attempt_run,
                    NewEvent::new(EventType::MODEL_RETRYING)
                        .source("ModelRequest")
                        .level(Level::Warning)
                        .message(format!("retrying after {}", retry.error_code))
                        .payload(json!({
                            "attempt_index": retry.attempt,
                            "next_attempt_index": retry.next_attempt,
                            "reason": retry.reason,
                            "error_code": retry.error_code,
                            "delay_ms": retry.delay.as_millis() as u64,
                        })),
                )
                .await;
            }
            StreamEvent::Usage(_) => {}
            StreamEvent::Done(_) => break,
        }
    }
    drop(stream);
    ctx.progress.set_stage(stage::AGENT_EXECUTION);
    let duration_ms = started.elapsed().as_millis() as u64;

    if let Some(err) = failure {
        let retries = assembler.finish().retries;
        ctx.shared.update_meta(|m| {
            m.model_requests.push(ModelRequestLog {
                index,
                model_key: model_key.to_owned(),
                provider: info.clone(),
                started_at,
                duration_ms,
                first_output_ms,
                retries,
                usage: None,
                finish_reason: None,
                response_id: None,
                error: Some(err.error_info()),
            })
        });
        ctx.emit(
            &attempt_run,
            NewEvent::new(EventType::MODEL_FAILED)
                .source("ModelRequest")
                .message(err.to_string())
                .error(err.error_info()),
        )
        .await;
        ctx.emit(
            &request_run,
            NewEvent::new(EventType::REQUEST_FAILED)
                .source("ModelRequest")
                .message(err.to_string())
                .error(err.error_info())
                .payload(json!({"attempt_index": 1})),
        )
        .await;
        return Err(err);
    }

    if let Some(out) = output {
        if let Some(reason) = out.failed.clone() {
            ctx.shared.update_meta(|m| {
                m.diagnostics.items.push(Diagnostic::new(
                    OUTPUT_STREAM_PARSE_FAILED,
                    Severity::Warning,
                    format!("the streamed answer could not be parsed incrementally: {reason}"),
                ))
            });
        }
        emit_keys(ctx, &attempt_run, out.finish()).await;
    }
    let response = assembler.finish();
    let usage_summary = json!({
        "available": response.usage.is_some(),
        "source": "provider",
        "provider": response.usage,
    });
    ctx.emit(
        &attempt_run,
        NewEvent::new(EventType::MODEL_META).source("ModelRequest").payload(json!({
            "meta": {
                "provider": info.provider,
                "model": response.completion.model.clone().unwrap_or_else(|| info.model.clone()),
                "finish_reason": response.completion.finish_reason,
                "usage": response.usage,
            }
        })),
    )
    .await;
    ctx.emit(
        &attempt_run,
        NewEvent::new(EventType::MODEL_COMPLETED)
            .source("ModelRequest")
            .payload(json!({
                "result": response.text,
                "raw_text": response.text,
                "tool_calls": response.tool_calls,
                "diagnostics": response.diagnostics,
                "model_request_telemetry": {
                    "response_id": response.completion.response_id,
                    "provider": info.provider,
                    "model": info.model,
                    "request_url": info.endpoint,
                    "duration_ms": duration_ms,
                    "usage": response.usage,
                    "usage_summary": usage_summary,
                },
            })),
    )
    .await;
    ctx.emit(
        &request_run,
        NewEvent::new(EventType::REQUEST_COMPLETED)
            .source("ModelRequest")
            .payload(json!({"attempt_index": 1})),
    )
    .await;
    ctx.shared.update_meta(|m| {
        if let Some(u) = &response.usage {
            m.usage.add(u);
        }
        m.diagnostics
            .items
            .extend(response.diagnostics.iter().cloned());
        m.model_requests.push(ModelRequestLog {
            index,
            model_key: model_key.to_owned(),
            provider: info,
            started_at,
            duration_ms,
            first_output_ms,
            retries: response.retries,
            usage: response.usage,
            finish_reason: response.completion.finish_reason.clone(),
            response_id: response.completion.response_id.clone(),
            error: None,
        })
    });
    Ok(response)
}
