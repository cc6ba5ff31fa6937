use agentry::{Agent, AgentryError, auto_func};

/// Add the pair.
#[auto_func]
async fn add(agent: &Agent, (a, b): (i64, i64)) -> Result<i64, AgentryError>;

/// Ignore the input.
#[auto_func]
async fn ignore(agent: &Agent, _: String) -> Result<i64, AgentryError>;

fn main() {}
