// A facade that re-exports agentry under another path.
mod facade {
    pub use agentry::*;
}

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
struct Answer {
    answer: String,
}

/// Answer the question.
#[agentry::auto_func(crate = "crate::facade")]
async fn ask(agent: &facade::Agent, question: String) -> Result<Answer, facade::AgentryError>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), facade::AgentryError> {
    let runtime = facade::Runtime::builder().test_model().build()?;
    let agent = runtime.agent("oracle");
    let answer = ask(&agent, "Why?".to_owned()).await?;
    assert!(!answer.answer.is_empty());
    Ok(())
}
