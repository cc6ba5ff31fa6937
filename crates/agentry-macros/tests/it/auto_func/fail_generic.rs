use agentry::{Agent, AgentryError, auto_func};

/// Produce a value.
#[auto_func]
async fn produce<T>(agent: &Agent, hint: String) -> Result<T, AgentryError>;

/// Produce with a generic input.
#[auto_func]
async fn produce_from<I: serde::Serialize>(agent: &Agent, input: I)
-> Result<String, AgentryError>;

/// Produce something.
#[auto_func]
async fn produce_opaque(agent: &Agent) -> Result<impl Sized, AgentryError>;

fn main() {}
