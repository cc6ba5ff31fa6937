//! Execution resources and built-in actions (under construction).
#![deny(missing_docs)]

mod code;
pub mod error;
pub mod files;
pub mod node;
pub mod process;
pub mod python;
pub mod resource;
pub mod sandbox;
pub mod shell;

pub use code::CodeOptions;
pub use error::ExecError;
