use agentry::{Agent, AgentryError, auto_func};

/// Say hi.
#[auto_func]
async fn greet(agent: &Agent, name: String) -> Result<String, AgentryError> {
    Ok(format!("hi {name}"))
}

fn main() {}
