#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod actions;
mod execution;
mod limits;
mod observation;
mod structured;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use agentry::model::{OpenAiChat, OpenAiConfig, Timeouts};
use agentry::{Runtime, Settings};
use agentry_testkit::{MockServer, Scenario};

/// A runtime whose `default` model is an OpenAI chat provider pointed at a mock
/// server running `scenario`.
pub async fn mock_runtime(scenario: Scenario, settings: Settings) -> (Runtime, MockServer) {
    let server = MockServer::start(scenario).await.unwrap();
    let mut config = OpenAiConfig::new(server.base_url(), "mock-model");
    config.timeouts = Timeouts {
        first_event: Some(Duration::from_secs(30)),
        ..config.timeouts
    };
    let provider = OpenAiChat::new(config).unwrap();
    let runtime = Runtime::builder()
        .model("default", Arc::new(provider))
        .settings(settings)
        .build()
        .unwrap();
    (runtime, server)
}
