//! The entry point a host (the `agentry` CLI) calls: parse `--enable
//! shell,python,node,sqlite,files,coding`, register the actions, get back the
//! [`ResourceManager`] the dispatcher needs.
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use agentry_actions::ActionRegistry;

use crate::error::ExecError;
use crate::files::{FilesOptions, Root, register, register_workspace_file_actions};
use crate::resource::{Capability, PermissionProfile, ResourceManager};
use crate::sandbox::{IsolationLevel, RuntimeProvider, Sandbox, SandboxMode};
use crate::shell::{CommandProfile, ShellOptions, command_action};
use crate::sqlite::{SqliteOptions, SqliteProvider, sqlite_action};
use crate::{coding, node, python};

/// One built-in package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Package {
    /// `run_command`.
    Shell,
    /// `run_python`.
    Python,
    /// `run_node`.
    Node,
    /// `sqlite_query`.
    Sqlite,
    /// `list_files`, `search_files`, `read_file`, `write_file`, `export_file`.
    Files,
    /// The coding-agent set (supersedes `files`).
    Coding,
}

impl Package {
    /// The name used in `--enable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::Python => "python",
            Self::Node => "node",
            Self::Sqlite => "sqlite",
            Self::Files => "files",
            Self::Coding => "coding",
        }
    }
}

impl FromStr for Package {
    type Err = ExecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "shell" | "bash" | "cmd" => Ok(Self::Shell),
            "python" | "py" => Ok(Self::Python),
            "node" | "nodejs" | "js" => Ok(Self::Node),
            "sqlite" => Ok(Self::Sqlite),
            "files" | "workspace_files" => Ok(Self::Files),
            "coding" | "coding_agent" => Ok(Self::Coding),
            other => Err(ExecError::UnknownPackage(other.to_owned())),
        }
    }
}

/// The packages asked for; parses a comma list (`"shell,python,files"`).
/// Names this crate does not provide (`search`, `browse`) are refused, so the CLI
/// should split them off before parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnableSet(BTreeSet<Package>);

impl EnableSet {
    /// Whether a package is in the set.
    pub fn contains(&self, p: Package) -> bool {
        self.0.contains(&p)
    }
    /// Adds a package.
    pub fn insert(&mut self, p: Package) {
        self.0.insert(p);
    }
    /// The packages, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = Package> + '_ {
        self.0.iter().copied()
    }
    /// Nothing enabled.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for EnableSet {
    type Err = ExecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = EnableSet::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            set.insert(part.parse()?);
        }
        Ok(set)
    }
}

impl fmt::Display for EnableSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Package::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// Host settings for [`enable`].
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The workspace root (`--workspace DIR`); must exist.
    pub workspace: PathBuf,
    /// `--sandbox auto|required|off`. `off` needs the `trusted` profile.
    pub sandbox: SandboxMode,
    /// What resources may do (default `local_files`).
    pub profile: PermissionProfile,
    /// Replace the shell's built-in command profile by these prefixes.
    pub shell_allow: Option<Vec<String>>,
    /// Where Python/Node.js scratch directories go (default: the system temp dir).
    pub scratch_dir: Option<PathBuf>,
}

impl ExecOptions {
    /// Defaults for a workspace: sandbox `auto`, profile `local_files`.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        Self {
            workspace: workspace.into(),
            sandbox: SandboxMode::Auto,
            profile: PermissionProfile::LocalFiles,
            shell_allow: None,
            scratch_dir: None,
        }
    }
}

/// What [`enable`] registered.
#[derive(Debug, Clone)]
pub struct Enabled {
    /// Give it to the dispatcher: `ActionLoop::with_resources(Arc::new(enabled.resources.clone()))`.
    pub resources: ResourceManager,
    /// The action ids registered, in order.
    pub action_ids: Vec<String>,
    /// The isolation code and commands will run under (`none` when bubblewrap is
    /// missing and the mode is `auto`).
    pub isolation: IsolationLevel,
}

/// Registers the built-in actions of `set` and returns the resource manager that
/// provides their resources.
///
/// Defaults follow the permission profile: writes (`write_file`, `edit_file`,
/// `apply_patch`, writable SQLite, a writable root for build tools) only when it
/// grants `write`; `run_command` limited to read-only diagnostics when it does not
/// grant `exec`; Python/Node.js refused unless it grants `exec`. `files` and
/// `coding` together register the coding set once (it includes the file actions).
///
/// ```
/// use std::sync::Arc;
/// use agentry_actions::{ActionPolicy, ActionRegistry, CallScope, Dispatcher, HostCall, ActionStatus};
/// use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
/// use agentry_exec::enable::{enable, EnableSet, ExecOptions};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("notes.txt"), "hello")?;
/// let mut registry = ActionRegistry::new();
/// let enabled = enable(&mut registry, &"files,sqlite".parse::<EnableSet>()?, &ExecOptions::new(dir.path()))?;
///
/// // The dispatcher (or `ActionLoop::with_resources`) gets the manager as its resolver.
/// let dispatcher = Dispatcher::new(registry, &ActionPolicy::new())
///     .with_resources(Arc::new(enabled.resources.clone()));
/// let scope = CallScope::new(EventCenter::new().emitter("doc"), RunContext::root(RunKind::REQUEST), ExecutionId::new());
/// let read = dispatcher.call(&scope, HostCall::new("read_file", serde_json::json!({"path": "notes.txt"}))).await;
/// assert_eq!(read.data.unwrap()["content"], "hello");
/// let escape = dispatcher.call(&scope, HostCall::new("read_file", serde_json::json!({"path": "../etc/passwd"}))).await;
/// assert_eq!(escape.error_code(), Some("workspace.path_outside_root"));
/// let q = dispatcher.call(&scope, HostCall::new("sqlite_query", serde_json::json!({"query": "select 1 + 1 as two"}))).await;
/// assert_eq!(q.status, ActionStatus::Success);
/// # Ok(()) }
/// ```
pub fn enable(
    registry: &mut ActionRegistry,
    set: &EnableSet,
    options: &ExecOptions,
) -> Result<Enabled, ExecError> {
    let profile = options.profile;
    if options.sandbox == SandboxMode::Off && profile != PermissionProfile::Trusted {
        return Err(ExecError::PermissionDenied {
            profile: profile.as_str(),
            what: "running without a sandbox (`--sandbox off` needs the `trusted` profile)".into(),
        });
    }
    let root = Root::new(&options.workspace)?;
    let write = profile.allows(Capability::Write);
    let sandbox = if options.sandbox == SandboxMode::Off {
        Sandbox::unavailable("sandbox off")
    } else {
        Sandbox::detect()
    };
    let isolation = sandbox.level_for(options.sandbox)?;
    let resources = ResourceManager::new(profile);
    let mut ids = Vec::new();
    let exec = profile.allows(Capability::Exec);
    if let Some(p) = [Package::Python, Package::Node]
        .into_iter()
        .find(|p| set.contains(*p) && !exec)
    {
        return Err(ExecError::PermissionDenied {
            profile: profile.as_str(),
            what: format!(
                "running code (`{}` needs the `exec` capability)",
                p.as_str()
            ),
        });
    }
    if set.contains(Package::Shell) && options.shell_allow.is_some() && !exec {
        return Err(ExecError::PermissionDenied {
            profile: profile.as_str(),
            what: "a custom shell allow-list (needs the `exec` capability)".into(),
        });
    }

    if set.contains(Package::Shell) {
        let mut o = ShellOptions::new(root.clone());
        o.sandbox = options.sandbox;
        o.writable_root = write;
        // Without `exec`, the shell still runs read-only diagnostics.
        o.profile = match &options.shell_allow {
            Some(list) => CommandProfile::allow_list(list)?,
            None if exec => CommandProfile::SafeDefault,
            None => CommandProfile::ReadOnly,
        };
        let action = command_action(o);
        resources.register_provider(RuntimeProvider::shell().with_sandbox(sandbox.clone()));
        ids.extend(register(registry, vec![action])?);
    }
    let scratch = options
        .scratch_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let code_output = root
        .path()
        .join(agentry_workspace::files::RESERVED_DIR)
        .join("files")
        .join("code-output");
    if set.contains(Package::Python) {
        let mut o = python::default_options();
        o.sandbox = options.sandbox;
        o.scratch_base = scratch.clone();
        o.output_dir = Some(code_output.clone());
        resources.register_provider(
            RuntimeProvider::python(o.program.clone()).with_sandbox(sandbox.clone()),
        );
        ids.extend(register(registry, vec![python::python_action(o)])?);
    }
    if set.contains(Package::Node) {
        let mut o = node::default_options();
        o.sandbox = options.sandbox;
        o.scratch_base = scratch.clone();
        o.output_dir = Some(code_output.clone());
        resources.register_provider(
            RuntimeProvider::node(o.program.clone()).with_sandbox(sandbox.clone()),
        );
        ids.extend(register(registry, vec![node::node_action(o)])?);
    }
    if set.contains(Package::Sqlite) {
        let mut o = SqliteOptions::new(root.clone());
        o.write = write;
        resources.register_provider(SqliteProvider::new(root.clone()));
        ids.extend(register(registry, vec![sqlite_action(o)])?);
    }
    let files = FilesOptions {
        write,
        export: write,
        ..FilesOptions::read_only(root.clone())
    };
    if set.contains(Package::Coding) {
        ids.extend(coding::register_coding_agent_actions(registry, files)?);
    } else if set.contains(Package::Files) {
        ids.extend(register_workspace_file_actions(registry, files)?);
    }
    Ok(Enabled {
        resources,
        action_ids: ids,
        isolation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_set_parses_comma_lists() {
        let s: EnableSet = "shell, python,nodejs,sqlite,files,coding".parse().unwrap();
        assert_eq!(s.to_string(), "shell,python,node,sqlite,files,coding");
        assert!("shell,browse".parse::<EnableSet>().is_err());
        assert!("".parse::<EnableSet>().unwrap().is_empty());
    }
}
