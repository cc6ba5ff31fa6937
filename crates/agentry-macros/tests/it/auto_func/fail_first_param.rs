use agentry::{Agent, AgentryError, auto_func};

/// Say hi.
#[auto_func]
async fn greet(name: String, agent: &Agent) -> Result<String, AgentryError>;

/// Say hi to nobody.
#[auto_func]
async fn greet_nobody() -> Result<String, AgentryError>;

/// Say hi with an owned agent.
#[auto_func]
async fn greet_owned(agent: Agent) -> Result<String, AgentryError>;

fn main() {}
