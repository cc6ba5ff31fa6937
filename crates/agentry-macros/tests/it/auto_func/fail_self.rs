use agentry::{Agent, AgentryError, auto_func};

struct Greeter;

impl Greeter {
    /// Say hi.
    #[auto_func]
    async fn greet(&self, agent: &Agent, name: String) -> Result<String, AgentryError>;
}

fn main() {}
