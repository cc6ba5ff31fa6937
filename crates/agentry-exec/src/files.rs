//! Path containment ([`Root`], [`ContainedPath`]) and the workspace file actions
//! (`list_files`, `search_files`, `read_file`, `write_file`, `export_file`).
//!
//! Every caller path goes through [`Root::resolve`]: lexical checks (no NUL, no
//! `..`, not absolute unless it already lies inside the root, not into the reserved
//! `.agentry/` area) by `agentry_workspace::files::normalize`, then resolution
//! against the canonical root following symlinks by
//! `agentry_workspace::files::contain`. A [`ContainedPath`] can only come out of
//! that function, so code that takes one cannot be handed an unchecked path. Writes
//! open the final component with `O_NOFOLLOW`, so a symlink planted after the check
//! is refused rather than followed.
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentry_actions::{ActionFailure, ActionRegistry, FnAction, SideEffect};
use agentry_core::ErrorCode;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::ExecError;

/// A directory every file action is confined to (canonical, existing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    canonical: Arc<Path>,
}

/// A path proven to lie inside a [`Root`] (after following symlinks). Only
/// [`Root::resolve`] and [`Root::dir`] build one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainedPath {
    abs: PathBuf,
    rel: String,
}

impl ContainedPath {
    /// The absolute, resolved path.
    pub fn as_path(&self) -> &Path {
        &self.abs
    }
    /// The path relative to the root (`.` for the root), `/`-separated.
    pub fn relative(&self) -> &str {
        &self.rel
    }
}

impl Root {
    /// Opens an existing directory as a root (canonicalized once).
    pub fn new(path: impl AsRef<Path>) -> Result<Root, ExecError> {
        let p = path.as_ref();
        let canonical = p
            .canonicalize()
            .map_err(|e| ExecError::NotFound(format!("{} ({e})", p.display())))?;
        if !canonical.is_dir() {
            return Err(ExecError::InvalidPath {
                path: p.display().to_string(),
                reason: "the root is not a directory".into(),
            });
        }
        Ok(Root {
            canonical: canonical.into(),
        })
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Resolves a caller path (relative to the root; `.` or empty is the root
    /// itself; an absolute path is accepted only if it already lies inside).
    pub fn resolve(&self, path: &str) -> Result<ContainedPath, ExecError> {
        let shown = path.replace('\0', "\\0");
        if path.contains('\0') {
            return Err(ExecError::InvalidPath {
                path: shown,
                reason: "NUL byte".into(),
            });
        }
        let trimmed = path.trim();
        let rel_str: &str = match Path::new(trimmed).strip_prefix(&*self.canonical) {
            Ok(inside) if Path::new(trimmed).is_absolute() => inside.to_str().unwrap_or(trimmed),
            _ => trimmed,
        };
        let rel_str = rel_str.trim_start_matches("./");
        if rel_str.is_empty() || rel_str == "." {
            return Ok(ContainedPath {
                abs: self.canonical.to_path_buf(),
                rel: ".".into(),
            });
        }
        let rel = agentry_workspace::files::normalize(rel_str).map_err(|e| map_ws(e, &shown))?;
        let abs = agentry_workspace::files::contain(&self.canonical, &rel, &shown)
            .map_err(|e| map_ws(e, &shown))?;
        let rel = abs
            .strip_prefix(&*self.canonical)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| rel.to_string_lossy().into_owned());
        Ok(ContainedPath { abs, rel })
    }

    /// Resolves an existing directory.
    pub fn dir(&self, path: &str) -> Result<ContainedPath, ExecError> {
        let p = self.resolve(path)?;
        if !p.abs.is_dir() {
            return Err(ExecError::NotFound(format!("directory `{}`", p.rel)));
        }
        Ok(p)
    }

    /// A root-relative display path for an absolute path under the root.
    pub(crate) fn rel_of(&self, abs: &Path) -> String {
        abs.strip_prefix(&*self.canonical)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| abs.display().to_string())
    }
}

fn map_ws(e: agentry_workspace::WorkspaceError, shown: &str) -> ExecError {
    let reason = e.to_string();
    match e.code() {
        "workspace.path_outside_root" => ExecError::PathOutsideRoot {
            path: shown.to_owned(),
            reason,
        },
        _ => ExecError::InvalidPath {
            path: shown.to_owned(),
            reason,
        },
    }
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Settings of the file actions.
#[derive(Debug, Clone)]
pub struct FilesOptions {
    /// The root.
    pub root: Root,
    /// Register `write_file` (and `export_file` with `export`).
    pub write: bool,
    /// Register `export_file` (only with `write`).
    pub export: bool,
    /// Default and maximum bytes `read_file` returns.
    pub max_file_bytes: usize,
    /// Files larger than this are skipped by searches.
    pub max_search_file_bytes: u64,
}

impl FilesOptions {
    /// Read-only actions over `root` with the default bounds.
    pub fn read_only(root: Root) -> Self {
        Self {
            root,
            write: false,
            export: false,
            max_file_bytes: 20_000,
            max_search_file_bytes: 200_000,
        }
    }
}

/// Shared file operations (used by both packages).
#[derive(Debug, Clone)]
pub(crate) struct FileOps {
    pub(crate) opts: Arc<FilesOptions>,
}

/// Input of `list_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListInput {
    /// Directory to list, relative to the root.
    #[serde(default = "dot")]
    pub path: String,
    /// Glob the relative path or file name must match (`*.rs`, `src/**/*.py`).
    #[serde(default = "star")]
    pub pattern: String,
    /// At most this many paths.
    #[serde(default = "two_hundred")]
    pub max_results: usize,
    /// Include dot-files and dot-directories.
    #[serde(default)]
    pub include_hidden: bool,
}

/// Input of `search_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchInput {
    /// Text to find (case-insensitive substring).
    pub query: String,
    /// Directory to search.
    #[serde(default = "dot")]
    pub path: String,
    /// Glob filter on file paths.
    #[serde(default = "star")]
    pub pattern: String,
    /// At most this many matches.
    #[serde(default = "fifty")]
    pub max_results: usize,
    /// Include dot-files.
    #[serde(default)]
    pub include_hidden: bool,
}

/// Input of `read_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadInput {
    /// File to read, relative to the root.
    pub path: String,
    /// Bytes to return at most (bounded by the package maximum).
    #[serde(default)]
    pub max_bytes: Option<usize>,
    /// Byte offset to start at.
    #[serde(default)]
    pub offset: u64,
}

/// Input of `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteInput {
    /// File to write, relative to the root; parents are created.
    pub path: String,
    /// The content.
    pub content: String,
    /// Append instead of replacing.
    #[serde(default)]
    pub append: bool,
}

/// Input of `export_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportInput {
    /// Existing file to export.
    pub source_path: String,
    /// Where the copy goes, relative to the root.
    pub output_path: String,
    /// Replace an existing output.
    #[serde(default)]
    pub overwrite: bool,
}

fn dot() -> String {
    ".".into()
}
fn star() -> String {
    "*".into()
}
fn two_hundred() -> usize {
    200
}
fn fifty() -> usize {
    50
}

/// A walk over regular files under `dir`, sorted, not following symlinks, skipping
/// `.agentry/` and (unless asked) hidden entries.
pub(crate) fn walk(
    root: &Root,
    dir: &ContainedPath,
    include_hidden: bool,
) -> impl Iterator<Item = PathBuf> {
    let reserved = root.path().join(agentry_workspace::files::RESERVED_DIR);
    ignore::WalkBuilder::new(dir.as_path())
        .standard_filters(false)
        .hidden(!include_hidden)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| e.path() != reserved)
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(|e| e.into_path())
}

/// A glob matching either the relative path or the file name.
pub(crate) struct NameGlob {
    set: globset::GlobMatcher,
}

impl NameGlob {
    pub(crate) fn new(pattern: &str) -> Result<Self, ExecError> {
        let pattern = if pattern.is_empty() || pattern == "**" {
            "*"
        } else {
            pattern
        };
        let g = globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .build()
            .map_err(|e| ExecError::InvalidPattern {
                pattern: pattern.into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            set: g.compile_matcher(),
        })
    }
    pub(crate) fn matches(&self, rel: &str) -> bool {
        self.set.is_match(rel)
            || Path::new(rel)
                .file_name()
                .is_some_and(|n| self.set.is_match(n))
    }
}

pub(crate) fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

impl FileOps {
    pub(crate) fn new(opts: FilesOptions) -> Self {
        Self {
            opts: Arc::new(opts),
        }
    }

    fn root(&self) -> &Root {
        &self.opts.root
    }

    pub(crate) fn list(&self, i: ListInput) -> Result<Value, ExecError> {
        let dir = self.root().resolve(&i.path)?;
        if !dir.as_path().exists() {
            return Ok(json!({"path": dir.relative(), "files": [], "truncated": false}));
        }
        let glob = NameGlob::new(&i.pattern)?;
        let max = i.max_results.clamp(1, 5000);
        let mut files = Vec::new();
        let mut truncated = false;
        for p in walk(self.root(), &dir, i.include_hidden) {
            let rel = self.root().rel_of(&p);
            if !glob.matches(&rel) {
                continue;
            }
            if files.len() == max {
                truncated = true;
                break;
            }
            files.push(rel);
        }
        Ok(json!({"path": dir.relative(), "files": files, "truncated": truncated}))
    }

    pub(crate) fn search(&self, i: SearchInput) -> Result<Value, ExecError> {
        let dir = self.root().resolve(&i.path)?;
        let glob = NameGlob::new(&i.pattern)?;
        let needle = i.query.to_lowercase();
        if needle.is_empty() {
            return Err(ExecError::InvalidPattern {
                pattern: i.query,
                message: "empty query".into(),
            });
        }
        let max = i.max_results.clamp(1, 1000);
        let mut matches = Vec::new();
        let mut skipped = 0usize;
        let mut truncated = false;
        'files: for p in walk(self.root(), &dir, i.include_hidden) {
            let rel = self.root().rel_of(&p);
            if !glob.matches(&rel) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if meta.len() > self.opts.max_search_file_bytes {
                skipped += 1;
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            if is_binary(&bytes) {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            for (n, line) in text.lines().enumerate() {
                if line.to_lowercase().contains(&needle) {
                    if matches.len() == max {
                        truncated = true;
                        break 'files;
                    }
                    matches.push(json!({"path": rel, "line": n + 1, "text": bounded(line, 240)}));
                }
            }
        }
        Ok(
            json!({"query": i.query, "matches": matches, "truncated": truncated, "skipped_large_files": skipped}),
        )
    }

    /// Reads a bounded range; returns the JSON result and, for a full read, the
    /// whole file's sha256.
    pub(crate) fn read(
        &self,
        i: ReadInput,
    ) -> Result<(Value, Option<(PathBuf, String)>), ExecError> {
        let p = self.root().resolve(&i.path)?;
        let meta = std::fs::metadata(p.as_path())
            .map_err(|_| ExecError::NotFound(p.relative().to_owned()))?;
        if !meta.is_file() {
            return Err(ExecError::NotAFile(p.relative().to_owned()));
        }
        let max = i
            .max_bytes
            .unwrap_or(self.opts.max_file_bytes)
            .clamp(1, self.opts.max_file_bytes.max(1));
        let mut f = std::fs::File::open(p.as_path())?;
        let total = meta.len();
        let full = i.offset == 0 && total <= max as u64;
        // A full read hashes exactly what it returns.
        let mut buf = Vec::with_capacity(max.min(total as usize));
        f.seek(SeekFrom::Start(i.offset))?;
        f.take(max as u64).read_to_end(&mut buf)?;
        let end = i.offset + buf.len() as u64;
        let truncated = end < total;
        let sha = full.then(|| sha256_hex(&buf));
        let content = String::from_utf8_lossy(&buf).into_owned();
        let mut v = json!({
            "path": p.relative(),
            "content": content,
            "offset": i.offset,
            "bytes": total,
            "returned_bytes": buf.len(),
            "truncated": truncated,
        });
        if let (Some(sha), Some(obj)) = (&sha, v.as_object_mut()) {
            obj.insert("sha256".into(), Value::String(sha.clone()));
        }
        Ok((v, sha.map(|s| (p.as_path().to_path_buf(), s))))
    }

    pub(crate) fn write(
        &self,
        path: &ContainedPath,
        content: &[u8],
        append: bool,
    ) -> Result<Value, ExecError> {
        if !self.opts.write {
            return Err(ExecError::WriteNotGranted(path.relative().to_owned()));
        }
        write_contained(path, content, append)?;
        let now = std::fs::read(path.as_path())?;
        Ok(json!({
            "path": path.relative(),
            "bytes": content.len(),
            "file_bytes": now.len(),
            "sha256": sha256_hex(&now),
            "mode": if append { "append" } else { "write" },
        }))
    }

    pub(crate) fn export(&self, i: ExportInput) -> Result<Value, ExecError> {
        if !(self.opts.write && self.opts.export) {
            return Err(ExecError::WriteNotGranted(i.output_path));
        }
        let src = self.root().resolve(&i.source_path)?;
        if !src.as_path().is_file() {
            return Err(ExecError::NotFound(src.relative().to_owned()));
        }
        let dst = self.root().resolve(&i.output_path)?;
        if dst.as_path().exists() && !i.overwrite {
            return Err(ExecError::AlreadyExists(dst.relative().to_owned()));
        }
        let bytes = std::fs::read(src.as_path())?;
        write_contained(&dst, &bytes, false)?;
        Ok(
            json!({"source_path": src.relative(), "path": dst.relative(), "bytes": bytes.len(), "sha256": sha256_hex(&bytes)}),
        )
    }
}

/// Writes (or appends) to a contained path: parents created, final component
/// opened with `O_NOFOLLOW`, replacement written to a sibling temp file and renamed
/// so a reader never sees half a file.
pub(crate) fn write_contained(
    path: &ContainedPath,
    content: &[u8],
    append: bool,
) -> Result<(), ExecError> {
    let abs = path.as_path();
    let parent = abs.parent().ok_or_else(|| ExecError::InvalidPath {
        path: path.relative().into(),
        reason: "no parent directory".into(),
    })?;
    std::fs::create_dir_all(parent)?;
    if abs.is_dir() {
        return Err(ExecError::NotAFile(path.relative().into()));
    }
    if append {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(abs)
            .map_err(|e| symlink_refusal(e, path))?;
        f.write_all(content)?;
        return Ok(());
    }
    if abs
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(ExecError::PathOutsideRoot {
            path: path.relative().into(),
            reason: "the target became a symlink".into(),
        });
    }
    let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
    tmp.write_all(content)?;
    // The replacement keeps the original's mode (an edited script stays executable).
    if let Ok(meta) = std::fs::metadata(abs) {
        std::fs::set_permissions(tmp.path(), meta.permissions())?;
    }
    tmp.persist(abs).map_err(|e| ExecError::Io(e.to_string()))?;
    Ok(())
}

fn symlink_refusal(e: std::io::Error, path: &ContainedPath) -> ExecError {
    if e.raw_os_error() == Some(nix::libc::ELOOP) {
        ExecError::PathOutsideRoot {
            path: path.relative().into(),
            reason: "the target is a symlink".into(),
        }
    } else {
        e.into()
    }
}

pub(crate) fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Runs blocking file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ExecError> + Send + 'static,
) -> Result<T, ActionFailure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ExecError::into_failure),
        Err(e) => Err(ActionFailure::msg(format!("file task failed: {e}"))),
    }
}

/// Builds an action whose input is decoded into `I` (schema derived from `I`).
pub(crate) fn typed<I, F, Fut>(id: &str, description: &str, f: F) -> FnAction
where
    I: serde::de::DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(agentry_actions::ActionContext, I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Value, ActionFailure>> + Send + 'static,
{
    let f = Arc::new(f);
    FnAction::new(
        id,
        description,
        agentry_actions::schema_for::<I>(),
        move |ctx, input| {
            let f = f.clone();
            async move {
                let input: I = serde_json::from_value(input).map_err(|e| {
                    ActionFailure::new(
                        agentry_actions::codes::INPUT_TYPE_ERROR,
                        format!("input does not fit the action: {e}"),
                    )
                })?;
                f(ctx, input).await
            }
        },
    )
    .executor_kind("agentry_exec")
}

/// Registers `list_files`, `search_files`, `read_file`, and with write granted
/// `write_file` (plus `export_file` when `export`). Returns the ids.
pub fn register_workspace_file_actions(
    registry: &mut ActionRegistry,
    options: FilesOptions,
) -> Result<Vec<String>, ExecError> {
    let ops = FileOps::new(options);
    let mut actions = vec![list_action(&ops), search_action(&ops)];
    let o = ops.clone();
    actions.push(
        typed::<ReadInput, _, _>(
            "read_file",
            "Read a text file under the workspace root (bounded; `truncated` says whether more remains; page with `offset`).",
            move |_ctx, i| {
                let o = o.clone();
                async move { blocking(move || o.read(i).map(|(v, _)| v)).await }
            },
        )
        .tag("files"),
    );
    if ops.opts.write {
        let o = ops.clone();
        actions.push(
            typed::<WriteInput, _, _>(
                "write_file",
                "Write (or append to) a text file under the workspace root; parent directories are created.",
                move |_ctx, i| {
                    let o = o.clone();
                    async move {
                        blocking(move || {
                            let p = o.root().resolve(&i.path)?;
                            o.write(&p, i.content.as_bytes(), i.append)
                        })
                        .await
                    }
                },
            )
            .side_effect(SideEffect::Write)
            .tag("files"),
        );
        if ops.opts.export {
            let o = ops.clone();
            actions.push(
                typed::<ExportInput, _, _>(
                    "export_file",
                    "Copy a workspace file to another path under the root (refuses to overwrite unless asked).",
                    move |_ctx, i| {
                        let o = o.clone();
                        async move { blocking(move || o.export(i)).await }
                    },
                )
                .side_effect(SideEffect::Write)
                .tag("files"),
            );
        }
    }
    register(registry, actions)
}

pub(crate) fn list_action(ops: &FileOps) -> FnAction {
    let o = ops.clone();
    typed::<ListInput, _, _>(
        "list_files",
        "List files under a directory of the workspace root, filtered by a glob.",
        move |_ctx, i| {
            let o = o.clone();
            async move { blocking(move || o.list(i)).await }
        },
    )
    .tag("files")
}

pub(crate) fn search_action(ops: &FileOps) -> FnAction {
    let o = ops.clone();
    typed::<SearchInput, _, _>(
        "search_files",
        "Find lines containing a text (case-insensitive) in files under the workspace root; returns path, line and a bounded snippet.",
        move |_ctx, i| {
            let o = o.clone();
            async move { blocking(move || o.search(i)).await }
        },
    )
    .tag("files")
}

/// Registers actions in order; on the first failure none of the later ones are
/// registered and the error names the id.
pub(crate) fn register(
    registry: &mut ActionRegistry,
    actions: Vec<FnAction>,
) -> Result<Vec<String>, ExecError> {
    let mut ids = Vec::with_capacity(actions.len());
    for a in actions {
        let id = a.spec_ref().id.clone();
        registry
            .register_fn(a)
            .map_err(|e| ExecError::Registration(format!("{id}: {e}")))?;
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../b", "a\0b"] {
            let e = root.resolve(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    ExecError::PathOutsideRoot { .. } | ExecError::InvalidPath { .. }
                ),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(root.resolve(".").unwrap().relative(), ".");
        assert_eq!(root.resolve("a/b.txt").unwrap().relative(), "a/b.txt");
        let inside = root.path().join("x.txt");
        assert_eq!(
            root.resolve(inside.to_str().unwrap()).unwrap().relative(),
            "x.txt"
        );
        assert!(root.resolve(".agentry/workspace.db").is_err());
    }

    #[test]
    fn globs_match_names_and_paths() {
        let g = NameGlob::new("*.rs").unwrap();
        assert!(g.matches("src/lib.rs"));
        assert!(!g.matches("src/lib.py"));
        let g = NameGlob::new("src/**/*.py").unwrap();
        assert!(g.matches("src/a/b.py"));
        assert!(NameGlob::new("[").is_err());
    }

    #[test]
    fn bounded_cuts_at_char_boundary() {
        assert_eq!(bounded("héllo", 2), "h…");
        assert_eq!(bounded("abc", 5), "abc");
    }
}
