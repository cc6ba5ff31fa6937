//! `run_python`: Python code in a `python3 -I` subprocess, in a scratch directory,
//! with time, memory, file-size and output limits, isolated by bubblewrap when
//! available (network off, read-only system) — the isolation in force is in the
//! result's `isolation` field.
//!
//! The value of a top-level `result` variable comes back as JSON in `result`
//! (written by a small launcher to a file in the scratch dir, so stdout stays the
//! program's own).
use std::ffi::OsString;
use std::sync::Arc;

use agentry_actions::{FnAction, SideEffect};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::code::{CodeOptions, Launcher, run_code};
use crate::error::ExecError;
use crate::files::typed;
use crate::resource::{Capability, ResourceScope, ResourceSpec};
use crate::sandbox::RuntimeProvider;
use crate::shell::runtime_of;

pub use crate::code::CodeOptions as PythonOptions;

/// Input of `run_python`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PythonInput {
    /// Python source. Assign a JSON-serializable value to `result` to return it.
    pub code: String,
    /// Timeout in milliseconds (capped by the host's limit).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Lowers its own hard limits (address space, file size, core dumps, optionally
/// processes) so the user code cannot raise them, runs the file, then writes
/// `result` (if defined) as JSON to the result path. `-I` isolates from the user's
/// site-packages and `PYTHON*` variables. `json` is imported only when needed.
const LAUNCHER: &str = r#"import sys, resource
_p, _r, _as, _fs, _np = sys.argv[1:6]
_lim = [(resource.RLIMIT_AS, int(_as)), (resource.RLIMIT_FSIZE, int(_fs)), (resource.RLIMIT_CORE, 0)]
if int(_np) >= 0:
    _lim.append((resource.RLIMIT_NPROC, int(_np)))
for _k, _v in _lim:
    resource.setrlimit(_k, (_v, _v))
sys.argv = ["main.py"]
_g = {"__name__": "__main__", "__file__": "main.py"}
with open(_p, encoding="utf-8") as _f:
    _src = _f.read()
exec(compile(_src, "main.py", "exec"), _g)
if "result" in _g:
    import json
    with open(_r, "w", encoding="utf-8") as _f:
        json.dump(_g["result"], _f, default=repr)
"#;

fn args(_: &CodeOptions) -> Vec<OsString> {
    vec!["-I".into(), "-c".into(), LAUNCHER.into()]
}

static PYTHON: Launcher = Launcher {
    file_name: "main.py",
    args,
    limit_address_space: true,
    self_limits: true,
};

/// Default options for `run_python`.
pub fn default_options() -> CodeOptions {
    CodeOptions::new("run_python", "python3")
}

/// The `run_python` action.
pub fn python_action(opts: CodeOptions) -> FnAction {
    let id = opts.action_id.clone();
    let fallback = RuntimeProvider::python(opts.program.clone());
    let opts = Arc::new(opts);
    typed::<PythonInput, _, _>(
        &id,
        "Run Python 3 code in a fresh sandboxed process (no network, scratch directory only, time and memory limits). Print to stdout, or assign a JSON-serializable value to `result` to return it.",
        move |ctx, input| {
            let opts = opts.clone();
            let fallback = fallback.clone();
            async move {
                let rt = runtime_of(&ctx, "python", &fallback).map_err(ExecError::into_failure)?;
                run_code(&opts, &rt, &PYTHON, &input.code, input.timeout_ms).await
            }
        },
    )
    .side_effect(SideEffect::Exec)
    .sandboxed(true)
    .tag("python")
    .tag("code")
    .resource(
        ResourceSpec::new("python")
            .scope(ResourceScope::Agent)
            .needs(Capability::Exec)
            .to_requirement(),
    )
}
