//! Execution resources and built-in actions for Agentry: run commands, Python and
//! Node.js code, SQLite queries and file operations on behalf of a model, **safe by
//! default**.
//!
//! | module | what it holds |
//! |---|---|
//! | [`enable()`] | the host entry point: `--enable shell,python,…` → registered actions + [`ResourceManager`] |
//! | [`resource`] | [`ResourceManager`] (implements `agentry_actions::ResourceResolver`), providers, scopes, permission profiles |
//! | [`process`] | the bounded runner: argv only, process group, env allow-list, timeout, output caps and spill, kill on drop |
//! | [`sandbox`] | bubblewrap detection (probed, never assumed) and argv; [`IsolationLevel`] |
//! | [`shell`] | `run_command` with command profiles / allow-lists |
//! | [`python`], [`node`] | `run_python`, `run_node` in scratch dirs with limits |
//! | [`sqlite`] | `sqlite_query`, read-only by default |
//! | [`files`] | path containment ([`files::Root`], [`files::ContainedPath`]) and the workspace file actions |
//! | [`coding`] | coding-agent actions with read-before-write hashes and `apply_patch` |
//! | [`error`] | [`ExecError`] and its stable codes |
//!
//! # Wiring into a run
//!
//! ```
//! use std::sync::Arc;
//! use agentry_actions::{ActionLoop, ActionPolicy, ActionRegistry};
//! use agentry_exec::enable::{enable, EnableSet, ExecOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut registry = ActionRegistry::new();
//! let enabled = enable(&mut registry, &"shell,coding".parse::<EnableSet>()?, &ExecOptions::new(dir.path()))?;
//! let action_loop = ActionLoop::with_defaults(registry, &ActionPolicy::new())
//!     .with_resources(Arc::new(enabled.resources.clone()));
//! # let _ = action_loop;
//! # Ok(()) }
//! ```
//!
//! # Refusals
//!
//! A rule's refusal (path outside the root, command not allowed, write not granted,
//! sandbox required but missing, SQL write in read-only mode, stale file) fails the
//! action with the rule's code and `data.status = "blocked"`; see
//! [`ExecError::is_blocked`].
#![deny(missing_docs)]

mod code;
pub mod coding;
pub mod enable;
pub mod error;
pub mod files;
pub mod node;
pub mod process;
pub mod python;
pub mod resource;
pub mod sandbox;
pub mod shell;
pub mod sqlite;

pub use code::CodeOptions;
pub use enable::{EnableSet, Enabled, ExecOptions, Package, enable};
pub use error::ExecError;
pub use files::{ContainedPath, Root};
pub use resource::{PermissionProfile, ResourceManager, ResourceScope, ResourceSpec};
pub use sandbox::{IsolationLevel, SandboxMode};
