//! Helpers shared by the integration tests.
use std::time::Duration;

use agentry_model::{
    Message, ModelError, ModelProvider, ModelRequest, ModelResponse, OpenAiChat, OpenAiConfig,
    OpenAiResponses, ResponseAssembler, RetryPolicy, StreamEvent, Timeouts,
};
use agentry_testkit::{MockServer, Reply, Rule, Scenario};
use futures::StreamExt;

/// Which wire protocol a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Responses,
}

pub const BOTH: [Api; 2] = [Api::Chat, Api::Responses];

/// A config with short timeouts and fast retries, so the suite stays quick.
pub fn config(server: &MockServer) -> OpenAiConfig {
    OpenAiConfig::new(server.base_url(), "mock-model")
        .timeouts(Timeouts {
            connect: Duration::from_secs(2),
            first_event: Some(Duration::from_secs(5)),
            stream_idle: Some(Duration::from_secs(5)),
            request: Some(Duration::from_secs(5)),
        })
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        })
}

pub fn provider(api: Api, config: OpenAiConfig) -> Box<dyn ModelProvider> {
    match api {
        Api::Chat => Box::new(OpenAiChat::new(config).unwrap()),
        Api::Responses => Box::new(OpenAiResponses::new(config).unwrap()),
    }
}

pub async fn server(scenario: Scenario) -> MockServer {
    MockServer::start(scenario).await.unwrap()
}

/// A server that always answers with `reply`.
pub async fn serve(reply: Reply) -> MockServer {
    server(Scenario::new().rule(Rule::always().reply(reply))).await
}

pub fn ask(text: &str) -> ModelRequest {
    ModelRequest::new(vec![Message::system("You are terse."), Message::user(text)])
}

/// Everything a stream yielded, and its error if it ended with one.
#[derive(Debug)]
pub struct Outcome {
    pub events: Vec<StreamEvent>,
    pub error: Option<ModelError>,
}

impl Outcome {
    pub fn response(&self) -> ModelResponse {
        let mut a = ResponseAssembler::default();
        for e in &self.events {
            a.push(e);
        }
        a.finish()
    }

    pub fn text(&self) -> String {
        self.response().text
    }

    pub fn retries(&self) -> Vec<&agentry_model::RetryInfo> {
        self.events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Retry(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub fn output_events(&self) -> usize {
        self.events
            .iter()
            .filter(|e| !matches!(e, StreamEvent::Retry(_)))
            .count()
    }

    pub fn err(&self) -> &ModelError {
        self.error
            .as_ref()
            .unwrap_or_else(|| panic!("expected an error, got {:?}", self.events))
    }

    pub fn ok(&self) -> &Self {
        if let Some(e) = &self.error {
            panic!("unexpected error {e:?} after {:?}", self.events);
        }
        assert!(
            matches!(self.events.last(), Some(StreamEvent::Done(_))),
            "stream must end with Done: {:?}",
            self.events
        );
        self
    }
}

/// Drains a stream, checking that nothing follows an error or `Done`.
pub async fn run(model: &dyn ModelProvider, request: ModelRequest) -> Outcome {
    let mut stream = model.stream(request);
    let mut events = Vec::new();
    let mut error = None;
    while let Some(item) = stream.next().await {
        assert!(error.is_none(), "item after an error: {item:?}");
        assert!(
            !matches!(events.last(), Some(StreamEvent::Done(_))),
            "item after Done: {item:?}"
        );
        match item {
            Ok(e) => events.push(e),
            Err(e) => error = Some(e),
        }
    }
    Outcome { events, error }
}
