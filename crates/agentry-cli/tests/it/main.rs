#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod config_cmd;
mod mcp_cmd;
mod run_cmd;
mod workspace_cmd;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The `agentry` binary with a clean environment (no host model settings leak in)
/// in `dir`.
pub fn agentry(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentry"));
    cmd.current_dir(dir)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("AGENTRY_MODEL")
        .env_remove("AGENTRY_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Runs a command off the async threads (the mock server lives on them).
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
