//! What `run_python` and `run_node` share: a scratch directory per call, limits
//! set by the launcher itself (Python's `resource` module) or through `prlimit(1)`
//! in the argv (Node.js) — no `unsafe` `pre_exec` — bubblewrap when
//! available or required, and a `result` value read back from a file in the
//! scratch dir (never mixed into stdout).
use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use agentry_actions::ActionFailure;
use serde_json::{Value, json};

use crate::error::ExecError;
use crate::process::{self, Limits, ProcessSpec};
use crate::sandbox::{ExecRuntime, SandboxLayout, SandboxMode, find_in_path};

/// Settings shared by the code runners.
#[derive(Debug, Clone)]
pub struct CodeOptions {
    /// Action id.
    pub action_id: String,
    /// Interpreter name or path (`python3`, `node`).
    pub program: String,
    /// Isolation.
    pub sandbox: SandboxMode,
    /// Where per-call scratch directories are created (default: the system temp dir).
    pub scratch_base: PathBuf,
    /// Where oversized output is spilled (default: the scratch base).
    pub output_dir: Option<PathBuf>,
    /// Time and output limits.
    pub limits: Limits,
    /// Address-space limit in bytes (Python; Node.js gets a heap limit instead).
    pub memory_bytes: u64,
    /// Largest file the code may write, in bytes.
    pub max_file_bytes: u64,
    /// Process limit (`RLIMIT_NPROC`). Off by default: the limit counts every process
    /// of the host user, not only the sandbox's; under bubblewrap the pid namespace
    /// and the timeout contain fork storms instead.
    pub max_processes: Option<u64>,
    /// Largest `result` read back, in bytes.
    pub result_cap: usize,
}

impl CodeOptions {
    pub(crate) fn new(action_id: &str, program: &str) -> Self {
        Self {
            action_id: action_id.into(),
            program: program.into(),
            sandbox: SandboxMode::Auto,
            scratch_base: std::env::temp_dir(),
            output_dir: None,
            limits: Limits {
                timeout: Duration::from_secs(10),
                ..Limits::default()
            },
            memory_bytes: 1 << 30,
            max_file_bytes: 64 << 20,
            max_processes: None,
            result_cap: 1 << 20,
        }
    }
}

/// A language's launcher: how to run a source file and write its `result`.
pub(crate) struct Launcher {
    pub file_name: &'static str,
    /// Arguments after the interpreter, before the source path and result path.
    pub args: fn(&CodeOptions) -> Vec<OsString>,
    pub limit_address_space: bool,
    /// The launcher applies the limits itself (they follow the result path as
    /// `address_space file_size processes|-1`), saving the `prlimit` exec.
    pub self_limits: bool,
}

const RESULT_FILE: &str = ".agentry-result.json";

/// Runs code; returns the action result.
pub(crate) async fn run_code(
    opts: &CodeOptions,
    rt: &ExecRuntime,
    launcher: &Launcher,
    code: &str,
    timeout_ms: Option<u64>,
) -> Result<Value, ActionFailure> {
    let level = rt
        .sandbox
        .level_for(opts.sandbox)
        .map_err(ExecError::into_failure)?;
    let interpreter = rt
        .interpreter
        .clone()
        .ok_or_else(|| ExecError::InterpreterMissing(opts.program.clone()).into_failure())?;
    std::fs::create_dir_all(&opts.scratch_base).map_err(|e| ExecError::from(e).into_failure())?;
    let scratch = tempfile::Builder::new()
        .prefix("agentry-code-")
        .tempdir_in(&opts.scratch_base)
        .map_err(|e| ExecError::from(e).into_failure())?;
    let dir = scratch.path().to_path_buf();
    let src = dir.join(launcher.file_name);
    std::fs::write(&src, code).map_err(|e| ExecError::from(e).into_failure())?;
    let result_path = dir.join(RESULT_FILE);

    let mut argv: Vec<OsString> = Vec::new();
    let limits_applied = json!({
        "memory_bytes": launcher.limit_address_space.then_some(opts.memory_bytes),
        "max_file_bytes": opts.max_file_bytes,
        "max_processes": opts.max_processes,
    });
    let mut limits_applied = Some(limits_applied);
    if !launcher.self_limits {
        match find_in_path("prlimit") {
            Some(prlimit) => {
                argv.push(prlimit.into_os_string());
                if launcher.limit_address_space {
                    argv.push(format!("--as={}", opts.memory_bytes).into());
                }
                argv.push(format!("--fsize={}", opts.max_file_bytes).into());
                argv.push("--core=0".into());
                if let Some(n) = opts.max_processes {
                    argv.push(format!("--nproc={n}").into());
                }
                argv.push("--".into());
            }
            None => limits_applied = None,
        }
    }
    argv.push(interpreter.into_os_string());
    argv.extend((launcher.args)(opts));
    argv.push(src.clone().into_os_string());
    argv.push(result_path.clone().into_os_string());
    if launcher.self_limits {
        let address_space = if launcher.limit_address_space {
            opts.memory_bytes
        } else {
            u64::MAX
        };
        argv.push(address_space.min(i64::MAX as u64).to_string().into());
        argv.push(opts.max_file_bytes.to_string().into());
        argv.push(
            opts.max_processes
                .map_or_else(|| "-1".to_owned(), |n| n.to_string())
                .into(),
        );
    }
    let layout = SandboxLayout {
        writable: vec![dir.clone()],
        readable: Vec::new(),
        protected: Vec::new(),
        network: false,
        chdir: Some(dir.clone()),
    };
    let argv = rt
        .sandbox
        .wrap(level, &layout, argv)
        .map_err(ExecError::into_failure)?;
    let mut limits = opts.limits;
    if let Some(ms) = timeout_ms {
        limits.timeout = limits.timeout.min(Duration::from_millis(ms.max(1)));
    }
    let spill = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| opts.scratch_base.join("agentry-output"));
    let spec = ProcessSpec::in_dir(argv, dir.clone())
        .limits(limits)
        .spill_dir(spill)
        .env("HOME", &dir)
        .env("TMPDIR", &dir);
    let out = process::run(spec).await.map_err(ExecError::into_failure)?;
    let (result, result_error) = read_result(&result_path, opts.result_cap);
    let files: Vec<Value> = [("stdout", &out.stdout), ("stderr", &out.stderr)]
        .iter()
        .filter_map(|(s, c)| {
            c.spill_path.as_ref().map(|p| json!({"stream": s, "path": p, "bytes": c.total_bytes, "complete": !c.spill_truncated}))
        })
        .collect();
    let data = json!({
        "exit_code": out.exit_code,
        "timed_out": out.timed_out,
        "stdout": out.stdout.text(),
        "stderr": out.stderr.text(),
        "stdout_truncated": out.stdout.truncated,
        "stderr_truncated": out.stderr.truncated,
        "stdout_bytes": out.stdout.total_bytes,
        "stderr_bytes": out.stderr.total_bytes,
        "output_files": files,
        "result": result,
        "result_error": result_error,
        "isolation": level.as_str(),
        "limits": limits_applied.unwrap_or(Value::Null),
        "duration_ms": out.duration_ms,
    });
    drop(scratch);
    crate::shell::finish(&out, data)
}

fn read_result(path: &std::path::Path, cap: usize) -> (Value, Value) {
    let Ok(f) = std::fs::File::open(path) else {
        return (Value::Null, Value::Null);
    };
    let mut buf = Vec::new();
    if f.take(cap as u64 + 1).read_to_end(&mut buf).is_err() {
        return (Value::Null, json!("could not read the result file"));
    }
    if buf.len() > cap {
        return (
            Value::Null,
            json!(format!("the result is larger than {cap} bytes")),
        );
    }
    match serde_json::from_slice(&buf) {
        Ok(v) => (v, Value::Null),
        Err(e) => (
            Value::Null,
            json!(ExecError::ResultNotJson(e.to_string()).to_string()),
        ),
    }
}
