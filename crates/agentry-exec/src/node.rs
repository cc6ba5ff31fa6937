//! `run_node`: JavaScript in a `node` subprocess under the same rules as
//! [`python`](crate::python): scratch directory, limits, bubblewrap when available,
//! a `result` value read back from a file.
//!
//! Memory is bounded with V8's heap limit rather than `RLIMIT_AS`: V8 reserves far
//! more address space than it uses, so an address-space limit breaks Node.js.
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

/// Input of `run_node`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeInput {
    /// JavaScript source (CommonJS script; `require` is available). Assign a
    /// JSON-serializable value to a top-level `result` to return it.
    pub code: String,
    /// Timeout in milliseconds (capped by the host's limit).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Runs the file as a script in this context, and at exit writes `result` (a
/// top-level `var`, `let` or `const`) as JSON to the result path.
const LAUNCHER: &str = r#"(() => {
  const fs = require('fs'), vm = require('vm');
  const [p, r] = process.argv.slice(-2);
  globalThis.require = require;
  process.on('exit', () => {
    let v;
    try { v = vm.runInThisContext('typeof result === "undefined" ? undefined : result'); } catch (e) { return; }
    if (v !== undefined) { try { fs.writeFileSync(r, JSON.stringify(v) ?? 'null'); } catch (e) {} }
  });
  vm.runInThisContext(fs.readFileSync(p, 'utf8'), { filename: 'main.js' });
})();
"#;

fn args(opts: &CodeOptions) -> Vec<OsString> {
    let heap_mb = (opts.memory_bytes >> 20).max(16);
    vec![
        format!("--max-old-space-size={heap_mb}").into(),
        "-e".into(),
        LAUNCHER.into(),
    ]
}

static NODE: Launcher = Launcher {
    file_name: "main.js",
    args,
    limit_address_space: false,
    self_limits: false,
};

/// Default options for `run_node`.
pub fn default_options() -> CodeOptions {
    CodeOptions::new("run_node", "node")
}

/// The `run_node` action.
pub fn node_action(opts: CodeOptions) -> FnAction {
    let id = opts.action_id.clone();
    let fallback = RuntimeProvider::node(opts.program.clone());
    let opts = Arc::new(opts);
    typed::<NodeInput, _, _>(
        &id,
        "Run JavaScript (Node.js) in a fresh sandboxed process (no network, scratch directory only, time and memory limits). Print with console.log, or assign a JSON-serializable value to a top-level `result` to return it.",
        move |ctx, input| {
            let opts = opts.clone();
            let fallback = fallback.clone();
            async move {
                let rt = runtime_of(&ctx, "node", &fallback).map_err(ExecError::into_failure)?;
                run_code(&opts, &rt, &NODE, &input.code, input.timeout_ms).await
            }
        },
    )
    .side_effect(SideEffect::Exec)
    .sandboxed(true)
    .tag("node")
    .tag("code")
    .resource(
        ResourceSpec::new("node")
            .scope(ResourceScope::Agent)
            .needs(Capability::Exec)
            .to_requirement(),
    )
}
