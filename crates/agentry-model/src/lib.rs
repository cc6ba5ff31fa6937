//! The model layer of Agentry: a provider-neutral [`ModelProvider`] trait with
//! streaming as the primary path, OpenAI-compatible Chat Completions and Responses
//! providers, a [`ModelPool`] of named models, and deterministic test and scripted
//! models so every feature runs without a model server.
//!
//! # Providers
//!
//! - [`OpenAiChat`]: `POST {base_url}/chat/completions` (OpenAI and compatible
//!   servers such as vLLM, Ollama, llama.cpp).
//! - [`OpenAiResponses`]: `POST {base_url}/responses`.
//! - [`TestModel`]: deterministic, no network; calls offered tools once, then answers
//!   (schema-valid JSON when an output schema is set, via [`schema_sample`]).
//! - [`ScriptedModel`]: plays back [`ScriptedTurn`]s and records requests.
//!
//! Both HTTP providers share one behaviour, configured by [`OpenAiConfig`]:
//!
//! - **Timeouts** ([`Timeouts`]) name their stage in [`ModelError::Stall`]:
//!   `response_first_event` until the first frame that yields output (SSE comments
//!   and lifecycle frames do not count), `response_stream` for silence after
//!   output started (comments do not reset it), `response_materialization` for a
//!   whole non-streamed exchange.
//! - **Retries** ([`RetryPolicy`]) happen only before any output reached the
//!   consumer, for connect errors, resets or end of stream before the first event,
//!   HTTP 429 and 5xx, and first-event stalls; each yields [`StreamEvent::Retry`]
//!   first and resends the same body bytes. Other 4xx, protocol errors and in-band
//!   failures are not retried; a transport failure after output is
//!   [`ModelError::Interrupted`].
//! - **Bad data fails loudly**: a `data:` frame that is not JSON is a
//!   [`ModelError::Protocol`] error (skipping it could silently drop part of an
//!   answer or of a tool call's arguments), as is an HTML page or any other
//!   non-SSE content type on a streamed request (a JSON body is accepted: some
//!   servers ignore `stream: true`). Unknown fields and event types are ignored.
//! - **Errors never carry the request body or the key**: server messages are
//!   bounded (500 characters) and passed through a [`Redactor`](agentry_core::Redactor)
//!   that knows the key; `Debug` of configs and providers prints `***` for it.
//!
//! ```
//! use agentry_model::{Message, ModelProvider, ModelRequest, ScriptedModel, ScriptedTurn};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let model = ScriptedModel::new(vec![ScriptedTurn::text("scripted answer")]);
//! let response = model.complete(ModelRequest::new(vec![Message::user("hi")])).await.unwrap();
//! assert_eq!(response.text, "scripted answer");
//! # }
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod http;
mod openai_chat;
mod openai_responses;
mod pool;
mod provider;
mod response;
pub mod schema_sample;
mod scripted;
pub mod sse;
pub mod streaming_json;
#[cfg(test)]
mod test_alloc;
mod test_model;
mod types;
mod wire;

pub use config::{ApiKey, OpenAiConfig, RetryPolicy, Timeouts};
pub use error::ModelError;
pub use openai_chat::OpenAiChat;
pub use openai_responses::OpenAiResponses;
pub use pool::ModelPool;
pub use provider::{ModelProvider, ModelStream, ProviderInfo, collect};
pub use response::{
    ModelResponse, ResponseAssembler, TOOL_ARGUMENTS_NOT_JSON, TOOL_CALL_MISSING_NAME,
};
pub use scripted::{ScriptedModel, ScriptedTurn};
pub use test_model::TestModel;
pub use types::{
    Completion, Message, ModelRequest, OutputSchema, RetryInfo, StreamEvent, ToolArguments,
    ToolCall, ToolChoice, ToolSpec, Usage,
};
