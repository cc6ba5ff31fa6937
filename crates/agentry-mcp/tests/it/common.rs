use std::sync::Arc;
use std::time::Duration;

use agentry_actions::{
    ActionPolicy, ActionRecord, ActionRegistry, CallScope, Dispatcher, HostCall,
};
use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
use agentry_mcp::{McpServer, McpServerConfig, McpToolSet, UseMcpOptions, use_mcp};
use serde_json::Value;

pub const TEST_SERVER: &str = env!("CARGO_BIN_EXE_agentry-mcp-test-server");

pub fn own_stdio() -> McpServerConfig {
    McpServerConfig::stdio(TEST_SERVER, Vec::<String>::new())
        .connect_timeout(Duration::from_secs(20))
}

pub fn raw_stdio() -> McpServerConfig {
    McpServerConfig::stdio(TEST_SERVER, ["raw"]).connect_timeout(Duration::from_secs(20))
}

pub fn sh(script: &str) -> McpServerConfig {
    McpServerConfig::stdio("sh", ["-c", script])
}

pub fn scope() -> CallScope {
    let center = EventCenter::new();
    let exe = ExecutionId::new();
    let mut run = (*RunContext::root(RunKind::REQUEST)).clone();
    run.execution_id = Some(exe.clone());
    CallScope::new(center.recording_emitter("test"), Arc::new(run), exe)
}

pub struct Setup {
    pub server: McpServer,
    pub set: McpToolSet,
    pub dispatcher: Dispatcher,
    pub scope: CallScope,
}

impl Setup {
    pub async fn new(
        name: &str,
        config: McpServerConfig,
        options: UseMcpOptions,
        policy: &ActionPolicy,
    ) -> Self {
        let server = McpServer::new(name, config).unwrap();
        let mut registry = ActionRegistry::new();
        let set = use_mcp(&mut registry, &server, options).await.unwrap();
        Self {
            server,
            set,
            dispatcher: Dispatcher::new(registry, policy),
            scope: scope(),
        }
    }

    pub async fn call(&self, id: &str, input: Value) -> ActionRecord {
        self.dispatcher
            .call(&self.scope, HostCall::new(id, input))
            .await
    }
}

pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 is the state; a zombie (Z) or dead (X) process is not running.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}
