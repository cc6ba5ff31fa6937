use agentry::{Agent, AgentryError, auto_func};

#[auto_func]
async fn greet(agent: &Agent, name: String) -> Result<String, AgentryError>;

fn main() {}
