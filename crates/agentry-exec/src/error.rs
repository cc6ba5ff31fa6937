//! [`ExecError`]: every way an execution resource or built-in action can refuse or
//! fail, each with a stable dotted code.
//!
//! Refusals caused by the *input* (a path out of the root, a command not on the
//! allow-list, a write in read-only mode) are [`ExecError::is_blocked`]: the action did
//! not run because a rule forbids it, which the runtime reports as `blocked`, not as an
//! execution error. Everything else is an error.
use agentry_actions::ActionFailure;
use agentry_core::ErrorCode;
use serde_json::{Value, json};

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// A path leaves the root (`..`, absolute, symlink escape).
    #[error("path `{path}` is outside the root: {reason}")]
    PathOutsideRoot {
        /// The path as given (NUL shown as `\0`).
        path: String,
        /// Why.
        reason: String,
    },
    /// A path is malformed (empty, NUL byte, reserved area).
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file or directory does not exist.
    #[error("`{0}` does not exist")]
    NotFound(String),
    /// The path is not a regular file (directory, device …).
    #[error("`{0}` is not a regular file")]
    NotAFile(String),
    /// The command is not allowed by the shell profile or allow-list.
    #[error("command not allowed: {0}")]
    CommandNotAllowed(String),
    /// The shell working directory is outside the root.
    #[error("working directory `{path}` is outside the root: {reason}")]
    WorkdirOutsideRoot {
        /// The workdir as given.
        path: String,
        /// Why.
        reason: String,
    },
    /// An empty argv.
    #[error("the command is empty")]
    EmptyCommand,
    /// Isolation was required and is not available on this machine.
    #[error("sandbox required but unavailable: {0}")]
    SandboxUnavailable(String),
    /// The interpreter (python3, node, sqlite) is not installed.
    #[error("interpreter `{0}` not found")]
    InterpreterMissing(String),
    /// The process could not be started.
    #[error("could not start `{program}`: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        message: String,
    },
    /// The process exceeded its wall-clock limit and was killed.
    #[error("timed out after {0} ms; the process group was killed")]
    Timeout(u64),
    /// The command ran and exited with a non-zero status.
    #[error("exited with status {0}")]
    NonZeroExit(i32),
    /// Any other I/O failure.
    #[error("I/O error: {0}")]
    Io(String),
    /// Writing is not granted for this package or profile.
    #[error("writing is not granted: {0}")]
    WriteNotGranted(String),
    /// No provider is registered for a resource kind.
    #[error("no resource provider for kind `{0}`")]
    ProviderMissing(String),
    /// The permission profile forbids the resource or capability.
    #[error("permission profile `{profile}` does not allow {what}")]
    PermissionDenied {
        /// The profile in force.
        profile: &'static str,
        /// What was asked for.
        what: String,
    },
    /// The resource needs approval that is pending.
    #[error("resource `{0}` is waiting for approval")]
    ResourceApprovalRequired(String),
    /// Approval for the resource was denied.
    #[error("resource `{kind}` was denied: {reason}")]
    ResourceApprovalDenied {
        /// Resource kind.
        kind: String,
        /// Why.
        reason: String,
    },
    /// A provider failed to create a resource.
    #[error("resource `{kind}` could not be made ready: {message}")]
    ResourceFailed {
        /// Resource kind.
        kind: String,
        /// Why.
        message: String,
    },
    /// A provider failed to release a resource (it stays quarantined).
    #[error("resource `{kind}` could not be released: {message}")]
    ReleaseFailed {
        /// Resource kind.
        kind: String,
        /// Why.
        message: String,
    },
    /// A resource requirement's configuration is malformed.
    #[error("invalid resource requirement: {0}")]
    InvalidRequirement(String),
    /// The SQL statement would write and the database is read-only.
    #[error("the statement writes and the database is read-only")]
    SqliteWriteBlocked,
    /// The SQL statement ran past its time limit and was interrupted.
    #[error("the statement was interrupted after {0} ms")]
    SqliteTimeout(u64),
    /// SQLite reported an error.
    #[error("SQLite: {0}")]
    Sqlite(String),
    /// A regex or glob pattern is invalid.
    #[error("invalid pattern `{pattern}`: {message}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// A coding action needs the file to have been read first.
    #[error("`{0}` has not been read through these actions; read it first or pass expected_sha256")]
    FileNotRead(String),
    /// The file changed on disk since it was read (or differs from expected_sha256).
    #[error("`{path}` changed since it was read (expected sha256 {expected}, found {found})")]
    FileChanged {
        /// The path.
        path: String,
        /// The sha256 the caller knew.
        expected: String,
        /// The sha256 on disk now.
        found: String,
    },
    /// `old_string` was not found.
    #[error("old_string not found in `{0}`")]
    EditNoMatch(String),
    /// `old_string` occurs several times and `replace_all` was not set.
    #[error(
        "old_string occurs {count} times in `{path}`; pass replace_all or a longer, unique old_string"
    )]
    EditNotUnique {
        /// The path.
        path: String,
        /// Occurrences.
        count: usize,
    },
    /// The patch text could not be parsed.
    #[error("invalid patch: {0}")]
    PatchInvalid(String),
    /// A hunk does not apply to the current content.
    #[error("patch does not apply to `{path}`: {message}")]
    PatchDoesNotApply {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
    /// The patch touches files other than `expected_files`.
    #[error("patch touches {actual:?}, expected {expected:?}")]
    PatchFilesMismatch {
        /// Files in the patch.
        actual: Vec<String>,
        /// Files the caller expected.
        expected: Vec<String>,
    },
    /// The file exists and overwriting was not asked for.
    #[error("`{0}` already exists")]
    AlreadyExists(String),
    /// The code's `result` could not be read back as JSON.
    #[error("the result value is not valid JSON: {0}")]
    ResultNotJson(String),
    /// An `--enable` list names an unknown package.
    #[error("unknown package `{0}` (expected shell, python, node, sqlite, files, coding)")]
    UnknownPackage(String),
    /// An option value is malformed (`--sandbox`, profile names …).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Registering an action failed (duplicate id …).
    #[error("could not register actions: {0}")]
    Registration(String),
}

impl ErrorCode for ExecError {
    fn code(&self) -> &'static str {
        use ExecError::*;
        match self {
            PathOutsideRoot { .. } => "workspace.path_outside_root",
            InvalidPath { .. } => "workspace.invalid_path",
            NotFound(_) => "files.not_found",
            NotAFile(_) => "files.not_a_file",
            CommandNotAllowed(_) => "shell.command_not_allowed",
            WorkdirOutsideRoot { .. } => "shell.workdir_outside_root",
            EmptyCommand => "shell.empty_command",
            SandboxUnavailable(_) => "sandbox.unavailable",
            InterpreterMissing(_) => "exec.interpreter_missing",
            Spawn { .. } => "process.spawn_failed",
            Timeout(_) => "process.timeout",
            NonZeroExit(_) => "process.exit_nonzero",
            Io(_) => "exec.io",
            WriteNotGranted(_) => "files.write_not_granted",
            ProviderMissing(_) => "resource.provider_missing",
            PermissionDenied { .. } => "resource.permission_denied",
            ResourceApprovalRequired(_) => "resource.approval_required",
            ResourceApprovalDenied { .. } => "resource.approval_denied",
            ResourceFailed { .. } => "resource.failed",
            ReleaseFailed { .. } => "resource.release_failed",
            InvalidRequirement(_) => "resource.invalid_requirement",
            SqliteWriteBlocked => "sqlite.write_blocked",
            SqliteTimeout(_) => "sqlite.timeout",
            Sqlite(_) => "sqlite.error",
            InvalidPattern { .. } => "files.invalid_pattern",
            FileNotRead(_) => "coding.file_not_read",
            FileChanged { .. } => "coding.file_changed",
            EditNoMatch(_) => "coding.edit_no_match",
            EditNotUnique { .. } => "coding.edit_not_unique",
            PatchInvalid(_) => "coding.patch_invalid",
            PatchDoesNotApply { .. } => "coding.patch_does_not_apply",
            PatchFilesMismatch { .. } => "coding.patch_files_mismatch",
            AlreadyExists(_) => "files.already_exists",
            ResultNotJson(_) => "exec.result_not_json",
            UnknownPackage(_) => "exec.unknown_package",
            InvalidOption(_) => "exec.invalid_option",
            Registration(_) => "exec.registration_failed",
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, ExecError::Timeout(_) | ExecError::SqliteTimeout(_))
    }
}

impl ExecError {
    /// Whether a rule refused the request before anything ran (reported as
    /// `blocked`), as opposed to a failure while running.
    pub fn is_blocked(&self) -> bool {
        use ExecError::*;
        matches!(
            self,
            PathOutsideRoot { .. }
                | CommandNotAllowed(_)
                | WorkdirOutsideRoot { .. }
                | SandboxUnavailable(_)
                | WriteNotGranted(_)
                | PermissionDenied { .. }
                | ResourceApprovalDenied { .. }
                | SqliteWriteBlocked
                | FileNotRead(_)
                | FileChanged { .. }
                | PatchFilesMismatch { .. }
        )
    }

    /// The action failure this error becomes (code = [`ErrorCode::code`]).
    ///
    /// Use this rather than `?` inside action bodies: `ActionFailure`'s blanket
    /// `From<E: Error>` would erase the code to `action.execution.failed`.
    pub fn into_failure(self) -> ActionFailure {
        self.into_failure_with(None)
    }

    /// The action failure this error becomes, with `extra` merged into its data.
    ///
    /// The data always carries `status` (`blocked` or `error`) and `reason` (the
    /// code), so a host can tell a rule's refusal from a failure even where the
    /// record status is `error`.
    pub fn into_failure_with(self, extra: Option<Value>) -> ActionFailure {
        let status = if self.is_blocked() {
            "blocked"
        } else {
            "error"
        };
        let mut data = json!({"status": status, "reason": self.code()});
        if let (Some(Value::Object(extra)), Some(obj)) = (extra, data.as_object_mut()) {
            for (k, v) in extra {
                obj.insert(k, v);
            }
        }
        let failure = if self.is_blocked() {
            ActionFailure::blocked(self.code(), self.to_string())
        } else {
            ActionFailure::new(self.code(), self.to_string())
        };
        failure.with_data(data)
    }
}

impl From<std::io::Error> for ExecError {
    fn from(e: std::io::Error) -> Self {
        ExecError::Io(e.to_string())
    }
}

impl From<rusqlite::Error> for ExecError {
    fn from(e: rusqlite::Error) -> Self {
        ExecError::Sqlite(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dotted_and_blocked_is_marked() {
        let e = ExecError::CommandNotAllowed("git push".into());
        assert_eq!(e.code(), "shell.command_not_allowed");
        assert!(e.is_blocked());
        let f = e.into_failure();
        assert_eq!(f.code, "shell.command_not_allowed");
        assert_eq!(f.data.unwrap()["status"], "blocked");
        let t = ExecError::Timeout(10);
        assert!(!t.is_blocked());
        assert!(t.retryable());
        assert!(t.code().contains('.'));
    }
}
