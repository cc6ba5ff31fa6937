// Every accepted shape, declared and called against the built-in test model.
use agentry::{Agent, AgentryError, Runtime, auto_func};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, JsonSchema)]
struct Summary {
    title: String,
    bullets: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema, PartialEq)]
enum Mood {
    Happy,
    Sad,
}

#[derive(Serialize)]
struct Options {
    lang: String,
}

/// Summarize the text as a title and at most `max_bullets` bullet points.
#[auto_func]
pub async fn summarize(
    agent: &Agent,
    text: String,
    max_bullets: u32,
) -> Result<Summary, AgentryError>;

/// Classify the mood of the text.
///
/// Answer with one word.
#[auto_func]
#[allow(clippy::needless_lifetimes)]
pub(crate) async fn mood<'a>(
    bot: &'a agentry::Agent,
    text: &'a str,
    mut r#type: Option<String>,
) -> Result<Mood, AgentryError> {
}

/// A custom error type that wraps AgentryError.
#[derive(Debug)]
enum MyError {
    Agent(AgentryError),
}

impl From<AgentryError> for MyError {
    fn from(e: AgentryError) -> Self {
        MyError::Agent(e)
    }
}

type MyResult<T> = Result<T, MyError>;

/// Count the words.
#[auto_func]
async fn count(agent: &::agentry::Agent, options: impl Serialize, words: Vec<&str>)
-> MyResult<u8>;

struct Helpers;

impl Helpers {
    /// Pick a title for the text.
    #[auto_func]
    async fn title(agent: &Agent, text: String) -> Result<String, AgentryError>;
}

fn main() -> Result<(), AgentryError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentryError::Config(e.to_string()))?;
    rt.block_on(async {
        let runtime = Runtime::builder().test_model().build()?;
        let agent = runtime.agent("helper");
        let summary = summarize(&agent, "Rust is fast.".to_owned(), 3).await?;
        assert!(!summary.title.is_empty());
        let m = mood(&agent, "I am glad", None).await?;
        assert!(m == Mood::Happy || m == Mood::Sad);
        let n = count(&agent, Options { lang: "en".into() }, vec!["a", "b"]).await;
        match n {
            Ok(_) => {}
            Err(MyError::Agent(e)) => panic!("{e}"),
        }
        let t = Helpers::title(&agent, "text".into()).await?;
        let _ = t;
        let _joke: Joke = joke(&agent).await?;
        let _echo: Vec<String> = strict::echo(&agent, vec!["x".into()]).await?;
        Ok(())
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Joke {
    pub setup: String,
    pub punchline: String,
}

/// Tell a joke (no input besides the agent).
#[auto_func]
#[deny(warnings)]
pub async fn joke(agent: &Agent) -> Result<Joke, AgentryError>;

#[deny(warnings)]
mod strict {
    use super::*;

    /// Echo the words.
    #[auto_func]
    pub async fn echo(agent: &Agent, words: Vec<String>) -> Result<Vec<String>, AgentryError>;
}
