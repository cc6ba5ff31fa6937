//! Path containment for the Workspace file root.
//!
//! Caller paths are validated lexically first (no NUL, not absolute, no `..`, not
//! into `.agentry/`), then resolved against the canonical root following symlinks;
//! a path whose real location leaves the root is refused. The checks never create
//! anything.
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::WorkspaceError;

/// The name of the reserved directory under the root.
pub const RESERVED_DIR: &str = ".agentry";

/// Validates a caller path and returns it as a clean relative path.
pub fn normalize(path: &str) -> Result<PathBuf, WorkspaceError> {
    let shown = || path.replace('\0', "\\0");
    if path.is_empty() {
        return Err(WorkspaceError::InvalidPath {
            path: shown(),
            reason: "empty path",
        });
    }
    if path.contains('\0') {
        return Err(WorkspaceError::InvalidPath {
            path: shown(),
            reason: "NUL byte",
        });
    }
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(WorkspaceError::PathOutsideRoot {
                    path: shown(),
                    reason: "`..` component",
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(WorkspaceError::PathOutsideRoot {
                    path: shown(),
                    reason: "absolute path",
                });
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(WorkspaceError::InvalidPath {
            path: shown(),
            reason: "path names the root itself",
        });
    }
    if is_reserved(&out) {
        return Err(WorkspaceError::ReservedPath(shown()));
    }
    Ok(out)
}

fn is_reserved(rel: &Path) -> bool {
    rel.components()
        .next()
        .is_some_and(|c| c.as_os_str() == RESERVED_DIR)
}

/// Resolves a clean relative path under the canonical `root`, following symlinks
/// of the part that exists. Refuses a real location outside the root or inside the
/// reserved area.
pub fn contain(root: &Path, rel: &Path, shown: &str) -> Result<PathBuf, WorkspaceError> {
    let full = root.join(rel);
    // Find the deepest ancestor that exists (a dangling symlink counts as existing).
    let mut existing = full.clone();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if existing.symlink_metadata().is_ok() {
            break;
        }
        match (
            existing.file_name().map(|s| s.to_owned()),
            existing.parent().map(Path::to_path_buf),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => break,
        }
    }
    let canon = existing
        .canonicalize()
        .map_err(|_| WorkspaceError::PathOutsideRoot {
            path: shown.to_owned(),
            reason: "symlink target does not resolve",
        })?;
    let inside = canon
        .strip_prefix(root)
        .map_err(|_| WorkspaceError::PathOutsideRoot {
            path: shown.to_owned(),
            reason: "symlink escapes the root",
        })?;
    if is_reserved(inside) {
        return Err(WorkspaceError::ReservedPath(shown.to_owned()));
    }
    let mut out = canon;
    for name in rest.into_iter().rev() {
        out.push(name);
    }
    Ok(out)
}

/// Where a file lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileLocation {
    /// The ordinary file tree under the root.
    External,
    /// The execution's private area `.agentry/files/<execution-id>/`, used for new
    /// files when the external tree is not writable.
    Fallback {
        /// The execution that owns it.
        execution_id: String,
    },
}

/// A reference to a file version: what was read or written, and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// The logical path the caller used.
    pub path: String,
    /// Where it is stored, relative to the root.
    pub stored_path: String,
    /// Hex sha256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// External tree or fallback area.
    pub location: FileLocation,
}

/// A file read: its reference and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// The reference.
    pub file_ref: FileRef,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Writes `bytes` to `target` atomically (temp file in the same directory, then rename).
pub(crate) fn atomic_write(target: &Path, bytes: &[u8]) -> Result<(), WorkspaceError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| WorkspaceError::io(dir, e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes).map_err(|e| WorkspaceError::io(&tmp, e))?;
    std::fs::rename(&tmp, target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        WorkspaceError::io(target, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_rules() {
        assert!(normalize("a/./b.txt").is_ok());
        assert!(matches!(
            normalize("a/../b"),
            Err(WorkspaceError::PathOutsideRoot { .. })
        ));
        assert!(matches!(
            normalize("/etc/passwd"),
            Err(WorkspaceError::PathOutsideRoot { .. })
        ));
        assert!(matches!(
            normalize("a\0b"),
            Err(WorkspaceError::InvalidPath { .. })
        ));
        assert!(matches!(
            normalize(".agentry/workspace.db"),
            Err(WorkspaceError::ReservedPath(_))
        ));
        assert!(matches!(
            normalize("."),
            Err(WorkspaceError::InvalidPath { .. })
        ));
    }
}
