use agentry::{Agent, AgentryError, auto_func};

struct Opaque;

/// Describe it.
#[auto_func]
async fn describe(agent: &Agent, thing: Opaque) -> Result<String, AgentryError>;

fn main() {}
