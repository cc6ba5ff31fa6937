use std::fmt;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::response::{ModelResponse, ResponseAssembler};
use crate::types::{ModelRequest, StreamEvent};

/// A stream of model output. Ends after [`StreamEvent::Done`] or an error.
pub type ModelStream = BoxStream<'static, Result<StreamEvent, ModelError>>;

/// What a provider is, for logs and events. Never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// The provider kind (`openai_chat`, `openai_responses`, `test`, `scripted` …).
    pub provider: String,
    /// The model name sent to the provider.
    pub model: String,
    /// The endpoint URL, when there is one (no credentials, no query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// A source of model responses.
///
/// Streaming is the primary path; [`complete`](Self::complete) collects a stream.
/// Implementations must end every stream with `Done` or an error within their
/// configured timeouts, and never panic on anything a server sends.
///
/// ```
/// use agentry_model::{Message, ModelProvider, ModelRequest, TestModel};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let model = TestModel::new();
/// let response = model.complete(ModelRequest::new(vec![Message::user("hi")])).await.unwrap();
/// assert!(!response.text.is_empty());
/// # }
/// ```
pub trait ModelProvider: Send + Sync + fmt::Debug {
    /// What this provider is.
    fn info(&self) -> ProviderInfo;

    /// Starts a request and streams its output.
    fn stream(&self, request: ModelRequest) -> ModelStream;

    /// Runs a request and collects the whole response.
    fn complete(&self, request: ModelRequest) -> BoxFuture<'_, Result<ModelResponse, ModelError>> {
        let stream = self.stream(request);
        Box::pin(collect(stream))
    }
}

/// Collects a model stream into a [`ModelResponse`].
pub async fn collect(mut stream: ModelStream) -> Result<ModelResponse, ModelError> {
    let mut assembler = ResponseAssembler::default();
    while let Some(item) = stream.next().await {
        let event = item?;
        let done = matches!(event, StreamEvent::Done(_));
        assembler.push(&event);
        if done {
            break;
        }
    }
    Ok(assembler.finish())
}
