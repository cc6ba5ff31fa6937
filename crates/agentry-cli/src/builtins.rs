//! `--enable shell,python,node,sqlite,files,coding`: the built-in action packages.
use std::path::PathBuf;
use std::sync::Arc;

use agentry::actions::{ActionRegistry, ApprovalHandler, ApprovalMode};
use agentry_exec::{
    EnableSet, ExecOptions, IsolationLevel, PermissionProfile, ResourceManager, ResourceScope,
    SandboxMode,
};

/// The packages, the resources that serve them and the isolation in force.
pub struct Builtins {
    pub registry: ActionRegistry,
    pub resources: ResourceManager,
    pub isolation: IsolationLevel,
    pub action_ids: Vec<String>,
}

/// Registers the packages named in `list` over the root `root`.
pub fn enable(
    list: &str,
    root: PathBuf,
    sandbox: &str,
    profile: &str,
    approval: Arc<dyn ApprovalHandler>,
) -> Result<Builtins, String> {
    let set: EnableSet = list.parse().map_err(|e| format!("--enable {list}: {e}"))?;
    let mut options = ExecOptions::new(root);
    options.sandbox = sandbox
        .parse::<SandboxMode>()
        .map_err(|e| format!("--sandbox {sandbox}: {e}"))?;
    options.profile = profile
        .parse::<PermissionProfile>()
        .map_err(|e| format!("--profile {profile}: {e}"))?;
    let mut registry = ActionRegistry::new();
    let enabled = agentry_exec::enable(&mut registry, &set, &options)
        .map_err(|e| format!("--enable {list}: {e}"))?;
    Ok(Builtins {
        registry,
        resources: enabled
            .resources
            .with_approval(approval, ApprovalMode::default()),
        isolation: enabled.isolation,
        action_ids: enabled.action_ids,
    })
}

impl Builtins {
    /// Releases what the execution held (SQLite connections, scratch dirs …); a failed
    /// release is reported, never dropped.
    pub async fn release(&self, execution_id: &str) {
        if let Err(errors) = self
            .resources
            .release_scope(ResourceScope::Execution, execution_id)
            .await
        {
            for e in errors {
                eprintln!("agentry: a resource was not released cleanly: {e}");
            }
        }
    }
}
