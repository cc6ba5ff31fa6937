use agentry::{Agent, AgentryError, auto_func};

/// Say hi.
#[auto_func(model = "fast")]
async fn greet(agent: &Agent, name: String) -> Result<String, AgentryError>;

fn main() {}
