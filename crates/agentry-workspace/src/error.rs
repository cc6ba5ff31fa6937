//! The one error type of this crate.
//!
//! Every failure a host or a flow may want to react to has its own variant and a
//! stable dotted code (see [`ErrorCode`]). Backend errors are classified at the edge
//! of the store modules, so callers never match on SQLite or PostgreSQL codes.
use agentry_core::ErrorCode;

use crate::types::{FencingToken, StateVersion};

/// Errors raised by the Workspace, its files and its stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    /// A path resolved outside the workspace root (`..`, an absolute path, or a
    /// symlink that escapes).
    #[error("path `{path}` is outside the workspace root: {reason}")]
    PathOutsideRoot {
        /// The path as the caller gave it.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A path was malformed (empty, NUL byte).
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath {
        /// The path as the caller gave it (NUL shown as `\0`).
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A caller path pointed into the reserved `.agentry/` area.
    #[error("path `{0}` is inside the reserved `.agentry/` area")]
    ReservedPath(String),
    /// Writing an existing external file needs `read_write` mode or a grant.
    #[error("writing `{0}` needs read_write mode or a write grant")]
    WriteDenied(String),
    /// A file or record was not found.
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// What was looked up (`record`, `file`, `snapshot` …).
        kind: &'static str,
        /// Its id or path.
        id: String,
    },
    /// An argument was out of range or malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A compare-and-set on a state version lost.
    #[error("state version conflict on `{run_id}`: expected {expected}, current is {current}")]
    CasConflict {
        /// The run whose snapshot was written.
        run_id: String,
        /// The version the writer expected.
        expected: StateVersion,
        /// The version the store holds.
        current: StateVersion,
    },
    /// Another owner holds an unexpired lease.
    #[error("lease `{key}` is held by `{owner}`")]
    LeaseHeld {
        /// The lease key.
        key: String,
        /// The current holder.
        owner: String,
    },
    /// A write or heartbeat carried a fencing token that is no longer current.
    #[error("lease `{key}`: token {presented} is stale (current {current})")]
    LeaseStaleToken {
        /// The lease key.
        key: String,
        /// The token the writer presented.
        presented: FencingToken,
        /// The store's current token.
        current: FencingToken,
    },
    /// The lease expired (by the store's clock) before the heartbeat or write.
    #[error("lease `{0}` has expired")]
    LeaseExpired(String),
    /// There is no active lease for the key (never claimed, or released).
    #[error("lease `{0}` is not active")]
    LeaseNotActive(String),
    /// The run is leased and the write carried no fencing token.
    #[error("run `{0}` is leased; writes must carry its fencing token")]
    LeaseRequired(String),
    /// An idempotency key was reused with a different payload.
    #[error(
        "idempotency key `{key}` of execution `{execution_id}` was used with a different payload"
    )]
    IdempotencyConflict {
        /// The execution.
        execution_id: String,
        /// The reused key.
        key: String,
    },
    /// The stored schema is newer than this code understands; nothing was changed.
    #[error("store schema version {found} is newer than supported version {supported}")]
    SchemaTooNew {
        /// Version found in the store.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A snapshot was written by a newer schema than the reader accepts.
    #[error("snapshot schema version {found} is newer than supported {supported}")]
    SnapshotSchemaTooNew {
        /// Version found.
        found: u32,
        /// Newest version the caller accepts.
        supported: u32,
    },
    /// The database file is not a database or is damaged.
    #[error("workspace database `{path}` is corrupt: {detail}")]
    CorruptDatabase {
        /// The file.
        path: String,
        /// What SQLite reported.
        detail: String,
    },
    /// The database file is a valid database that belongs to something else.
    #[error("`{0}` is not an Agentry workspace database; refusing to touch it")]
    ForeignDatabase(String),
    /// The disk (or the configured size quota) is full; the write was rolled back.
    #[error("disk full while writing the workspace store: {0}")]
    DiskFull(String),
    /// The location cannot be written (read-only directory or file system).
    #[error("workspace location `{path}` is not writable: {detail}")]
    ReadOnlyLocation {
        /// The path that could not be written.
        path: String,
        /// The OS error.
        detail: String,
    },
    /// The store was opened read-only.
    #[error("the store is read-only")]
    StoreReadOnly,
    /// The database is busy beyond the busy timeout.
    #[error("the store is busy: {0}")]
    Busy(String),
    /// No backend is registered for a URL scheme or name.
    #[error("no store backend registered for `{0}`")]
    UnknownBackend(String),
    /// A backend with that name is already registered.
    #[error("a store backend named `{0}` is already registered")]
    DuplicateBackend(String),
    /// Stored data could not be decoded.
    #[error("stored data is malformed: {0}")]
    Decode(String),
    /// The backend could not be reached or the connection broke.
    #[error("store connection failed: {0}")]
    Connection(String),
    /// Any other backend error.
    #[error("store backend error: {0}")]
    Backend(String),
    /// A file system error.
    #[error("i/o error on `{path}`: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store's background writer stopped.
    #[error("the store is closed")]
    Closed,
}

impl WorkspaceError {
    /// Maps an I/O error on `path`, recognising read-only locations and full disks.
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        let path = path.as_ref().display().to_string();
        match source.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                WorkspaceError::ReadOnlyLocation {
                    path,
                    detail: source.to_string(),
                }
            }
            std::io::ErrorKind::StorageFull => WorkspaceError::DiskFull(source.to_string()),
            _ => WorkspaceError::Io { path, source },
        }
    }
}

impl ErrorCode for WorkspaceError {
    fn code(&self) -> &'static str {
        use WorkspaceError::*;
        match self {
            PathOutsideRoot { .. } => "workspace.path_outside_root",
            InvalidPath { .. } => "workspace.invalid_path",
            ReservedPath(_) => "workspace.reserved_path",
            WriteDenied(_) => "workspace.write_denied",
            NotFound { .. } => "workspace.not_found",
            InvalidInput(_) => "workspace.invalid_input",
            CasConflict { .. } => "workspace.cas_conflict",
            LeaseHeld { .. } => "workspace.lease_held",
            LeaseStaleToken { .. } => "workspace.lease_stale_token",
            LeaseExpired(_) => "workspace.lease_expired",
            LeaseNotActive(_) => "workspace.lease_not_active",
            LeaseRequired(_) => "workspace.lease_required",
            IdempotencyConflict { .. } => "workspace.idempotency_conflict",
            SchemaTooNew { .. } => "workspace.schema_too_new",
            SnapshotSchemaTooNew { .. } => "workspace.snapshot_schema_too_new",
            CorruptDatabase { .. } => "workspace.corrupt_database",
            ForeignDatabase(_) => "workspace.foreign_database",
            DiskFull(_) => "workspace.disk_full",
            ReadOnlyLocation { .. } => "workspace.read_only_location",
            StoreReadOnly => "workspace.store_read_only",
            Busy(_) => "workspace.busy",
            UnknownBackend(_) => "workspace.unknown_backend",
            DuplicateBackend(_) => "workspace.duplicate_backend",
            Decode(_) => "workspace.decode",
            Connection(_) => "workspace.connection",
            Backend(_) => "workspace.backend",
            Io { .. } => "workspace.io",
            Closed => "workspace.closed",
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            WorkspaceError::Busy(_)
                | WorkspaceError::Connection(_)
                | WorkspaceError::CasConflict { .. }
                | WorkspaceError::LeaseHeld { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dotted_and_stable() {
        let e = WorkspaceError::CasConflict {
            run_id: "r".into(),
            expected: StateVersion(1),
            current: StateVersion(2),
        };
        assert_eq!(e.code(), "workspace.cas_conflict");
        assert!(e.retryable());
        assert_eq!(
            e.error_info().code.as_deref(),
            Some("workspace.cas_conflict")
        );
        let io = WorkspaceError::io(
            "/x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(io.code(), "workspace.read_only_location");
    }
}
