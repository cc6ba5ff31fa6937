use agentry::{Agent, auto_func};

/// Say hi.
#[auto_func]
async fn no_return(agent: &Agent, name: String);

/// Say hi.
#[auto_func]
async fn not_result(agent: &Agent, name: String) -> String;

fn main() {}
