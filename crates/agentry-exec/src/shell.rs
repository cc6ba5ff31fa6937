//! `run_command`: runs one program with arguments (an argv array) under the
//! bounded runner, confined to the workspace root, checked against a command
//! profile.
//!
//! It is deliberately *not* called `run_bash`: no shell ever parses the input, so
//! `;`, `&&`, `|`, `$(…)` and backticks are ordinary bytes inside one argument.
//! A command outside the profile, a dangerous flag of an allowed command, or a
//! working directory outside the root is refused before anything starts, with
//! `shell.command_not_allowed` / `shell.workdir_outside_root` (blocked).
use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use agentry_actions::{ActionContext, ActionFailure, FnAction, SideEffect};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ExecError;
use crate::files::{Root, typed};
use crate::process::{self, Limits, ProcessOutput, ProcessSpec};
use crate::resource::{Capability, ResourceScope, ResourceSpec};
use crate::sandbox::{ExecRuntime, IsolationLevel, RuntimeProvider, SandboxLayout, SandboxMode};

/// A command prefix: `git status` allows `git status -s`, not `git push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPrefix(Vec<String>);

impl CommandPrefix {
    /// The prefix tokens.
    pub fn tokens(&self) -> &[String] {
        &self.0
    }

    fn matches(&self, argv: &[String]) -> bool {
        let Some((first, rest)) = self.0.split_first() else {
            return false;
        };
        let Some(cmd) = argv.first() else {
            return false;
        };
        // A bare name is looked up on the safe PATH; a path must match exactly, so
        // a workspace script named `ls` is never mistaken for `/bin/ls`.
        let first_ok = cmd == first && (!cmd.contains('/') || first.contains('/'));
        first_ok && argv.len() > rest.len() && argv[1..=rest.len()] == *rest
    }
}

impl FromStr for CommandPrefix {
    type Err = ExecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let tokens: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        if tokens.is_empty() {
            return Err(ExecError::InvalidOption("empty command prefix".into()));
        }
        Ok(Self(tokens))
    }
}

/// Which commands `run_command` accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CommandProfile {
    /// Read-only diagnostics only (`ls`, `cat`, `grep`, `git status` …).
    ReadOnly,
    /// Read-only diagnostics plus build and test tools (`cargo test`, `make`,
    /// `pytest`, `npm test` …). The default.
    #[default]
    SafeDefault,
    /// Exactly these prefixes (host-configured).
    AllowList(Vec<CommandPrefix>),
}

const READ_ONLY: &[&str] = &[
    "ls",
    "cat",
    "head",
    "tail",
    "wc",
    "grep",
    "rg",
    "find",
    "pwd",
    "echo",
    "date",
    "whoami",
    "stat",
    "file",
    "du",
    "sort",
    "uniq",
    "diff",
    "tree",
    "true",
    "false",
    "basename",
    "dirname",
    "git status",
    "git log",
    "git diff",
    "git show",
    "git rev-parse",
    "git branch",
    "git ls-files",
];

const BUILD_AND_TEST: &[&str] = &[
    "cargo build",
    "cargo test",
    "cargo check",
    "cargo clippy",
    "cargo fmt",
    "cargo metadata",
    "cargo tree",
    "cargo run",
    "make",
    "pytest",
    "python -m pytest",
    "python3 -m pytest",
    "npm test",
    "npm run test",
    "npm run build",
    "npm run lint",
    "go test",
    "go build",
    "go vet",
];

/// Flags that turn an allowed read-only command into a writer or an executor.
const DANGEROUS_FLAGS: &[(&str, &[&str])] = &[
    (
        "find",
        &[
            "-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf",
            "-fls",
        ],
    ),
    ("sort", &["-o", "--output"]),
    (
        "git",
        &[
            "--output",
            "--ext-diff",
            "-c",
            "--exec-path",
            "--upload-pack",
        ],
    ),
    ("rg", &["--pre"]),
];

impl CommandProfile {
    /// An allow-list from strings like `"git status"`.
    pub fn allow_list<I, S>(prefixes: I) -> Result<Self, ExecError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        prefixes
            .into_iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(Self::AllowList)
    }

    fn builtin(&self) -> Option<Vec<CommandPrefix>> {
        let lists: &[&[&str]] = match self {
            Self::ReadOnly => &[READ_ONLY],
            Self::SafeDefault => &[READ_ONLY, BUILD_AND_TEST],
            Self::AllowList(_) => return None,
        };
        Some(
            lists
                .iter()
                .flat_map(|l| l.iter())
                .filter_map(|s| s.parse().ok())
                .collect(),
        )
    }

    /// Checks an argv; `Ok` means it may run.
    pub fn check(&self, argv: &[String]) -> Result<(), ExecError> {
        let Some(cmd) = argv.first() else {
            return Err(ExecError::EmptyCommand);
        };
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(ExecError::CommandNotAllowed(
                "NUL byte in an argument".into(),
            ));
        }
        let allowed = match self {
            Self::AllowList(list) => list.iter().any(|p| p.matches(argv)),
            _ => self
                .builtin()
                .unwrap_or_default()
                .iter()
                .any(|p| p.matches(argv)),
        };
        if !allowed {
            return Err(ExecError::CommandNotAllowed(format!(
                "`{}` is not on the command profile",
                display_argv(argv)
            )));
        }
        if !matches!(self, Self::AllowList(_))
            && let Some((_, flags)) = DANGEROUS_FLAGS.iter().find(|(c, _)| c == cmd)
            && let Some(bad) = argv[1..].iter().find(|a| {
                flags
                    .iter()
                    .any(|f| *a == f || (f.starts_with("--") && a.starts_with(&format!("{f}="))))
            })
        {
            return Err(ExecError::CommandNotAllowed(format!(
                "`{cmd} {bad}` can write files or run programs"
            )));
        }
        Ok(())
    }
}

fn display_argv(argv: &[String]) -> String {
    argv.iter().take(4).cloned().collect::<Vec<_>>().join(" ")
}

/// Settings of `run_command`.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    /// Action id (default `run_command`).
    pub action_id: String,
    /// The root every working directory is confined to.
    pub root: Root,
    /// Which commands may run.
    pub profile: CommandProfile,
    /// Isolation.
    pub sandbox: SandboxMode,
    /// Whether the root is writable inside the sandbox (build tools need it).
    pub writable_root: bool,
    /// Limits (timeout, caps).
    pub limits: Limits,
    /// Host environment keys passed through (besides `PATH`, `LANG`, `HOME`).
    pub env_allow: Vec<String>,
}

impl ShellOptions {
    /// Defaults: safe profile, sandbox `auto`, root writable, 20 s, 20 000-byte previews.
    pub fn new(root: Root) -> Self {
        Self {
            action_id: "run_command".into(),
            root,
            profile: CommandProfile::SafeDefault,
            sandbox: SandboxMode::Auto,
            writable_root: true,
            limits: Limits {
                timeout: Duration::from_secs(20),
                ..Limits::default()
            },
            env_allow: vec!["CARGO_HOME".into(), "RUSTUP_HOME".into(), "TERM".into()],
        }
    }
}

/// Input of `run_command`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandInput {
    /// Program and arguments, e.g. `["git", "status", "-s"]`. No shell parses them.
    #[schemars(length(min = 1, max = 256))]
    pub argv: Vec<String>,
    /// Working directory relative to the workspace root (default: the root).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Timeout in milliseconds (capped by the host's limit).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Where oversized output of a call goes: the execution's private area.
pub(crate) fn output_dir(root: &Root, ctx: &ActionContext, what: &str) -> PathBuf {
    root.path()
        .join(agentry_workspace::files::RESERVED_DIR)
        .join("files")
        .join(ctx.execution_id().as_str())
        .join(what)
}

/// The JSON a process result becomes.
pub(crate) fn output_json(root: &Root, out: &ProcessOutput, isolation: IsolationLevel) -> Value {
    let files: Vec<Value> = [("stdout", &out.stdout), ("stderr", &out.stderr)]
        .iter()
        .filter_map(|(stream, c)| {
            c.spill_path.as_ref().map(|p| {
                json!({"stream": stream, "path": root.rel_of(p), "bytes": c.total_bytes, "complete": !c.spill_truncated})
            })
        })
        .collect();
    json!({
        "exit_code": out.exit_code,
        "timed_out": out.timed_out,
        "stdout": out.stdout.text(),
        "stderr": out.stderr.text(),
        "stdout_truncated": out.stdout.truncated,
        "stderr_truncated": out.stderr.truncated,
        "stdout_bytes": out.stdout.total_bytes,
        "stderr_bytes": out.stderr.total_bytes,
        "output_files": files,
        "isolation": isolation.as_str(),
        "duration_ms": out.duration_ms,
    })
}

/// Turns a finished process into the action's result: success for exit 0, an
/// error carrying the whole result otherwise.
pub(crate) fn finish(out: &ProcessOutput, data: Value) -> Result<Value, ActionFailure> {
    if out.timed_out {
        Err(ExecError::Timeout(out.duration_ms).into_failure_with(Some(data)))
    } else if out.exit_code != 0 {
        Err(ExecError::NonZeroExit(out.exit_code).into_failure_with(Some(data)))
    } else {
        Ok(data)
    }
}

/// The runtime from the call's resource, or a fresh one when the action runs
/// outside a resource manager (direct host use).
pub(crate) fn runtime_of(
    ctx: &ActionContext,
    kind: &str,
    fallback: &RuntimeProvider,
) -> Result<Arc<ExecRuntime>, ExecError> {
    match ctx.resource::<ExecRuntime>(kind) {
        Some(rt) => Ok(rt),
        None => fallback.runtime().map(Arc::new),
    }
}

/// Runs one checked command (what the action does, without the action wrapper).
pub(crate) async fn run_command(
    opts: &ShellOptions,
    rt: &ExecRuntime,
    spill_dir: PathBuf,
    input: CommandInput,
) -> Result<Value, ActionFailure> {
    opts.profile
        .check(&input.argv)
        .map_err(ExecError::into_failure)?;
    let shown = input.workdir.clone().unwrap_or_else(|| ".".into());
    let workdir = opts.root.dir(&shown).map_err(|e| match e {
        ExecError::NotFound(_) => e.into_failure(),
        other => ExecError::WorkdirOutsideRoot {
            path: shown.clone(),
            reason: other.to_string(),
        }
        .into_failure(),
    })?;
    let level = rt
        .sandbox
        .level_for(opts.sandbox)
        .map_err(ExecError::into_failure)?;
    let root_dir = vec![opts.root.path().to_path_buf()];
    let (writable, readable) = if opts.writable_root {
        (root_dir, Vec::new())
    } else {
        (Vec::new(), root_dir)
    };
    // Build tools may write the root, never the Workspace's own store.
    let reserved = opts
        .root
        .path()
        .join(agentry_workspace::files::RESERVED_DIR);
    let protected = if opts.writable_root && reserved.is_dir() {
        vec![reserved]
    } else {
        Vec::new()
    };
    let layout = SandboxLayout {
        writable,
        readable,
        protected,
        network: false,
        chdir: Some(workdir.as_path().to_path_buf()),
    };
    let argv: Vec<OsString> = input.argv.iter().map(OsString::from).collect();
    let argv = rt
        .sandbox
        .wrap(level, &layout, argv)
        .map_err(ExecError::into_failure)?;
    let mut limits = opts.limits;
    if let Some(ms) = input.timeout_ms {
        limits.timeout = limits.timeout.min(Duration::from_millis(ms.max(1)));
    }
    let spec = ProcessSpec::new(argv, &workdir)
        .limits(limits)
        .spill_dir(spill_dir)
        .allow_env(&opts.env_allow)
        .env("HOME", opts.root.path())
        // Repository config must not turn a read command into code execution.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .env("GIT_CONFIG_COUNT", "3")
        .env("GIT_CONFIG_KEY_0", "core.fsmonitor")
        .env("GIT_CONFIG_VALUE_0", "false")
        .env("GIT_CONFIG_KEY_1", "core.hooksPath")
        .env("GIT_CONFIG_VALUE_1", "/dev/null")
        .env("GIT_CONFIG_KEY_2", "diff.external")
        .env("GIT_CONFIG_VALUE_2", "");
    let out = process::run(spec).await.map_err(ExecError::into_failure)?;
    let mut data = output_json(&opts.root, &out, level);
    if let Some(o) = data.as_object_mut() {
        o.insert("argv".into(), json!(input.argv));
        o.insert("workdir".into(), json!(workdir.relative()));
    }
    finish(&out, data)
}

/// The `run_command` action and its resource requirement.
///
/// The `shell` resource it declares needs the profile's `exec` capability, except
/// with [`CommandProfile::ReadOnly`], which only admits read-only diagnostics.
pub fn command_action(opts: ShellOptions) -> FnAction {
    let id = opts.action_id.clone();
    let mut requirement = ResourceSpec::new("shell").scope(ResourceScope::Agent);
    if opts.profile != CommandProfile::ReadOnly {
        requirement = requirement.needs(Capability::Exec);
    }
    let opts = Arc::new(opts);
    let fallback = RuntimeProvider::shell();
    typed::<CommandInput, _, _>(
        &id,
        "Run one program with arguments (argv array, no shell: `;`, `|`, `&&`, `$()` are not interpreted) in a working directory under the workspace root. Allowed: read-only diagnostics (ls, cat, grep, find, git status/log/diff/show) and build/test tools (cargo test, make, pytest, npm test) unless the host configured another list.",
        move |ctx, input| {
            let opts = opts.clone();
            let fallback = fallback.clone();
            async move {
                let rt = runtime_of(&ctx, "shell", &fallback).map_err(ExecError::into_failure)?;
                let spill = output_dir(&opts.root, &ctx, "shell-output");
                run_command(&opts, &rt, spill, input).await
            }
        },
    )
    .side_effect(SideEffect::Exec)
    .sandboxed(true)
    .tag("shell")
    .resource(requirement.to_requirement())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn prefixes_match_tokens_not_strings() {
        let p = CommandProfile::allow_list(["git status"]).unwrap();
        assert!(p.check(&argv(&["git", "status", "-s"])).is_ok());
        assert!(p.check(&argv(&["git", "push"])).is_err());
        assert!(p.check(&argv(&["git"])).is_err());
        assert!(p.check(&argv(&["gitx", "status"])).is_err());
    }

    #[test]
    fn safe_profile_refuses_writers_and_paths() {
        let p = CommandProfile::SafeDefault;
        assert!(p.check(&argv(&["ls", "-la"])).is_ok());
        assert!(p.check(&argv(&["cargo", "test"])).is_ok());
        assert!(p.check(&argv(&["cargo", "install", "x"])).is_err());
        assert!(p.check(&argv(&["rm", "-rf", "/"])).is_err());
        assert!(p.check(&argv(&["find", ".", "-delete"])).is_err());
        assert!(
            p.check(&argv(&["find", ".", "-exec", "rm", "{}", ";"]))
                .is_err()
        );
        assert!(p.check(&argv(&["git", "diff", "--output=x"])).is_err());
        assert!(p.check(&argv(&["./ls"])).is_err());
        assert!(p.check(&argv(&["/tmp/evil/ls"])).is_err());
        assert!(p.check(&[]).is_err());
        assert!(p.check(&argv(&["echo", "a\0b"])).is_err());
        assert!(CommandProfile::ReadOnly.check(&argv(&["make"])).is_err());
    }
}
