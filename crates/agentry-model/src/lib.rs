//! The model layer of Agentry: a provider-neutral [`ModelProvider`] trait with
//! streaming as the primary path, OpenAI-compatible Chat Completions and Responses
//! providers, a [`ModelPool`] of named models, and deterministic test and scripted
//! models so every feature runs without a model server.
#![deny(missing_docs)]

mod error;
mod pool;
mod provider;
mod response;
mod types;

pub use error::ModelError;
pub use pool::ModelPool;
pub use provider::{ModelProvider, ModelStream, ProviderInfo, collect};
pub use response::{
    ModelResponse, ResponseAssembler, TOOL_ARGUMENTS_NOT_JSON, TOOL_CALL_MISSING_NAME,
};
pub use types::{
    Completion, Message, ModelRequest, OutputSchema, RetryInfo, StreamEvent, ToolArguments,
    ToolCall, ToolChoice, ToolSpec, Usage,
};
