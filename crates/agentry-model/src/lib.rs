//! The model layer of Agentry: a provider-neutral [`ModelProvider`] trait with
//! streaming as the primary path, OpenAI-compatible Chat Completions and Responses
//! providers, a [`ModelPool`] of named models, and deterministic test and scripted
//! models so every feature runs without a model server.
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
mod sse;
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
