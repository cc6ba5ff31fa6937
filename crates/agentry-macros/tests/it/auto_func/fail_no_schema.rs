use agentry::{Agent, AgentryError, auto_func};

#[derive(serde::Deserialize)]
struct NoSchema {
    x: u32,
}

/// Produce a value.
#[auto_func]
async fn produce(agent: &Agent) -> Result<NoSchema, AgentryError>;

fn main() {}
