//! Isolation: detecting bubblewrap and building the argv that runs a program inside it.
//!
//! Isolation is *proven, not assumed*: [`Sandbox::detect`] does not trust that a
//! `bwrap` binary exists, it runs a tiny probe through it (user/pid/net namespaces
//! may be forbidden in containers). The level in force is reported as an
//! [`IsolationLevel`] on every result, and `required` fails closed with
//! `sandbox.unavailable` when the probe failed.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::ExecError;

/// The isolation a process actually ran under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// bubblewrap: read-only system, writable scratch only, no network, own pid namespace.
    Bubblewrap,
    /// A plain subprocess (own process group, cleared environment, limits) — no
    /// filesystem or network isolation.
    None,
}

impl IsolationLevel {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::Bubblewrap => "bubblewrap",
            IsolationLevel::None => "none",
        }
    }
}

/// What the host asks for (`--sandbox auto|required|off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Isolate when the machine can; otherwise run plainly and say so.
    #[default]
    Auto,
    /// Isolate or refuse (`sandbox.unavailable`).
    Required,
    /// Never isolate (trusted hosts, benchmarks).
    Off,
}

impl FromStr for SandboxMode {
    type Err = ExecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "required" => Ok(Self::Required),
            "off" | "none" => Ok(Self::Off),
            other => Err(ExecError::InvalidOption(format!(
                "sandbox mode `{other}` (expected auto, required or off)"
            ))),
        }
    }
}

/// Detected isolation capability of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    bwrap: Option<PathBuf>,
    reason: String,
}

/// What a sandboxed process may see and touch.
#[derive(Debug, Clone, Default)]
pub struct SandboxLayout {
    /// Directories bound read-write at the same path (scratch dir, workspace root
    /// for build tools). Everything else is read-only.
    pub writable: Vec<PathBuf>,
    /// Directories bound read-only again after the fresh `/tmp` is mounted (a
    /// workspace under `/tmp` would otherwise be hidden by it).
    pub readable: Vec<PathBuf>,
    /// Directories inside a writable one that stay read-only (the workspace's
    /// reserved `.agentry/` area under a writable root). Must exist.
    pub protected: Vec<PathBuf>,
    /// Keep the network namespace of the host (off by default).
    pub network: bool,
    /// Working directory inside the sandbox.
    pub chdir: Option<PathBuf>,
}

impl Sandbox {
    /// The machine's capability, probed once per process and cached.
    pub fn detect() -> Sandbox {
        static DETECTED: OnceLock<Sandbox> = OnceLock::new();
        DETECTED.get_or_init(Self::probe).clone()
    }

    /// A sandbox that never isolates (tests, `--sandbox off`).
    pub fn unavailable(reason: impl Into<String>) -> Sandbox {
        Sandbox {
            bwrap: None,
            reason: reason.into(),
        }
    }

    fn probe() -> Sandbox {
        let Some(bwrap) = find_in_path("bwrap") else {
            return Sandbox::unavailable("bwrap is not installed (Debian package `bubblewrap`)");
        };
        let mut argv = vec![bwrap.clone().into_os_string()];
        argv.extend(bwrap_args(&SandboxLayout::default()));
        argv.push("--".into());
        argv.push("true".into());
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", crate::process::SAFE_PATH)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output();
        match status {
            Ok(out) if out.status.success() => Sandbox {
                bwrap: Some(bwrap),
                reason: "bubblewrap probe succeeded".into(),
            },
            Ok(out) => Sandbox::unavailable(format!(
                "bwrap cannot create namespaces here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Sandbox::unavailable(format!("bwrap failed to start: {e}")),
        }
    }

    /// Whether bubblewrap works on this machine.
    pub fn available(&self) -> bool {
        self.bwrap.is_some()
    }

    /// Why isolation is (un)available, for records and errors.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The level a process will run under for `mode`, or `sandbox.unavailable`.
    pub fn level_for(&self, mode: SandboxMode) -> Result<IsolationLevel, ExecError> {
        match (mode, self.available()) {
            (SandboxMode::Off, _) => Ok(IsolationLevel::None),
            (_, true) => Ok(IsolationLevel::Bubblewrap),
            (SandboxMode::Auto, false) => Ok(IsolationLevel::None),
            (SandboxMode::Required, false) => {
                Err(ExecError::SandboxUnavailable(self.reason.clone()))
            }
        }
    }

    /// `argv` wrapped for `level`: unchanged for `None`, prefixed with `bwrap …
    /// --` for `Bubblewrap`.
    pub fn wrap(
        &self,
        level: IsolationLevel,
        layout: &SandboxLayout,
        argv: Vec<OsString>,
    ) -> Result<Vec<OsString>, ExecError> {
        match level {
            IsolationLevel::None => Ok(argv),
            IsolationLevel::Bubblewrap => {
                let bwrap = self
                    .bwrap
                    .as_ref()
                    .ok_or_else(|| ExecError::SandboxUnavailable(self.reason.clone()))?;
                let mut out = vec![bwrap.clone().into_os_string()];
                out.extend(bwrap_args(layout));
                out.push("--".into());
                out.extend(argv);
                Ok(out)
            }
        }
    }
}

/// The bubblewrap flags for a layout: the whole host read-only, fresh `/dev`,
/// `/proc` and `/tmp`, the writable directories bound back read-write, every
/// namespace unshared (network unless asked for), and death with the parent so a
/// killed runner leaves nothing behind.
fn bwrap_args(layout: &SandboxLayout) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::with_capacity(24);
    let mut push = |s: &str| a.push(OsString::from(s));
    push("--ro-bind");
    push("/");
    push("/");
    push("--dev");
    push("/dev");
    push("--proc");
    push("/proc");
    push("--tmpfs");
    push("/tmp");
    push("--unshare-pid");
    push("--unshare-ipc");
    push("--unshare-uts");
    push("--unshare-cgroup-try");
    if !layout.network {
        push("--unshare-net");
    }
    push("--die-with-parent");
    push("--new-session");
    for dir in &layout.readable {
        a.push("--ro-bind".into());
        a.push(dir.clone().into_os_string());
        a.push(dir.clone().into_os_string());
    }
    for dir in &layout.writable {
        a.push("--bind".into());
        a.push(dir.clone().into_os_string());
        a.push(dir.clone().into_os_string());
    }
    for dir in &layout.protected {
        a.push("--ro-bind".into());
        a.push(dir.clone().into_os_string());
        a.push(dir.clone().into_os_string());
    }
    if let Some(dir) = &layout.chdir {
        a.push("--chdir".into());
        a.push(dir.clone().into_os_string());
    }
    a
}

/// Finds an executable by name on the safe PATH (and the host PATH as a fallback,
/// for interpreters installed in user locations).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = Path::new(name);
        return is_executable(p).then(|| p.to_path_buf());
    }
    let host = std::env::var_os("PATH").unwrap_or_default();
    let safe = OsString::from(crate::process::SAFE_PATH);
    std::env::split_paths(&safe)
        .chain(std::env::split_paths(&host))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_required_fails_closed() {
        assert_eq!("auto".parse::<SandboxMode>().unwrap(), SandboxMode::Auto);
        assert!("maybe".parse::<SandboxMode>().is_err());
        let none = Sandbox::unavailable("test");
        assert_eq!(
            none.level_for(SandboxMode::Auto).unwrap(),
            IsolationLevel::None
        );
        let err = none.level_for(SandboxMode::Required).unwrap_err();
        assert_eq!(agentry_core::ErrorCode::code(&err), "sandbox.unavailable");
        assert!(
            none.wrap(
                IsolationLevel::Bubblewrap,
                &SandboxLayout::default(),
                vec![]
            )
            .is_err()
        );
    }

    #[test]
    fn network_is_off_unless_asked() {
        let args = bwrap_args(&SandboxLayout::default());
        assert!(args.iter().any(|a| a == "--unshare-net"));
        let args = bwrap_args(&SandboxLayout {
            network: true,
            ..Default::default()
        });
        assert!(!args.iter().any(|a| a == "--unshare-net"));
    }
}

/// The resource behind `run_command`, `run_python` and `run_node`: the machine's
/// isolation capability and, for code runners, the resolved interpreter.
///
/// Resolving an interpreter once (`sys.executable` for Python, so version-manager
/// shims that need the host environment are not run per call) and probing bubblewrap
/// once is what makes these resources worth reusing at agent scope.
#[derive(Debug, Clone)]
pub struct ExecRuntime {
    /// Isolation capability.
    pub sandbox: Sandbox,
    /// The interpreter, for code runners.
    pub interpreter: Option<PathBuf>,
}

/// Provides [`ExecRuntime`] resources for one kind (`shell`, `python`, `node`).
#[derive(Debug, Clone)]
pub struct RuntimeProvider {
    kind: &'static str,
    interpreter: Option<String>,
    sandbox: Option<Sandbox>,
}

impl RuntimeProvider {
    /// The `shell` provider.
    pub fn shell() -> Self {
        Self {
            kind: "shell",
            interpreter: None,
            sandbox: None,
        }
    }
    /// The `python` provider, running `program` (default `python3`).
    pub fn python(program: impl Into<String>) -> Self {
        Self {
            kind: "python",
            interpreter: Some(program.into()),
            sandbox: None,
        }
    }
    /// The `node` provider, running `program` (default `node`).
    pub fn node(program: impl Into<String>) -> Self {
        Self {
            kind: "node",
            interpreter: Some(program.into()),
            sandbox: None,
        }
    }
    /// Uses a fixed sandbox capability instead of probing (tests, `--sandbox off`).
    pub fn with_sandbox(mut self, sandbox: Sandbox) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// Builds the runtime now (what `ensure` does).
    pub fn runtime(&self) -> Result<ExecRuntime, ExecError> {
        let sandbox = self.sandbox.clone().unwrap_or_else(Sandbox::detect);
        let interpreter = match &self.interpreter {
            None => None,
            Some(name) => Some(resolve_interpreter(self.kind, name)?),
        };
        Ok(ExecRuntime {
            sandbox,
            interpreter,
        })
    }
}

/// Finds an interpreter and, for Python, asks it for its real executable (pyenv
/// and similar shims are scripts that need the host environment; the real binary
/// runs with a cleared one).
pub fn resolve_interpreter(kind: &str, name: &str) -> Result<PathBuf, ExecError> {
    let found = find_in_path(name).ok_or_else(|| ExecError::InterpreterMissing(name.into()))?;
    if kind != "python" {
        return Ok(found.canonicalize().unwrap_or(found));
    }
    let out = std::process::Command::new(&found)
        .args(["-I", "-c", "import sys; print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ExecError::InterpreterMissing(format!("{name}: {e}")))?;
    let real = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && real.is_absolute() && is_executable(&real) {
        Ok(real)
    } else {
        Ok(found)
    }
}

impl crate::resource::ResourceProvider for RuntimeProvider {
    fn kind(&self) -> &str {
        self.kind
    }
    fn ensure<'a>(
        &'a self,
        _request: &'a crate::resource::EnsureRequest,
    ) -> futures::future::BoxFuture<'a, Result<crate::resource::Resource, ExecError>> {
        Box::pin(async move {
            let me = self.clone();
            let rt = tokio::task::spawn_blocking(move || me.runtime())
                .await
                .map_err(|e| ExecError::ResourceFailed {
                    kind: self.kind.into(),
                    message: e.to_string(),
                })??;
            Ok(std::sync::Arc::new(rt) as crate::resource::Resource)
        })
    }
    fn health_check<'a>(
        &'a self,
        resource: &'a crate::resource::Resource,
    ) -> futures::future::BoxFuture<'a, bool> {
        Box::pin(async move {
            match resource.clone().downcast::<ExecRuntime>() {
                Ok(rt) => rt.interpreter.as_deref().is_none_or(is_executable),
                Err(_) => false,
            }
        })
    }
}
