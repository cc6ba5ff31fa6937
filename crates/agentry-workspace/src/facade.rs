//! The [`Workspace`] facade: a file root with a write policy, plus a lazily opened
//! [`Store`].
//!
//! Binding a Workspace creates nothing on disk; the first write creates
//! `<root>/.agentry/`. Clones (and views made with
//! [`with_write_grant`](Workspace::with_write_grant)) share the same store, so
//! several agents, flow executions or workers bound to one Workspace see the same
//! data; two Workspaces built separately never share anything implicitly.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentry_core::ExecutionId;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::WorkspaceError;
use crate::files::{self, FileContent, FileLocation, FileRef, RESERVED_DIR};
use crate::recall::{Budget, ContextPackage, KeywordRetriever, RecallScope, Retriever};
use crate::registry::StoreRegistry;
use crate::sink::WorkspaceEventSink;
use crate::store::Store;
use crate::types::*;

/// Whether external files may be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceMode {
    /// External files are read-only; new files go to the execution's fallback area.
    #[default]
    ReadOnly,
    /// External files may be created and changed anywhere under the root.
    ReadWrite,
}

#[derive(Debug, Clone)]
enum StoreChoice {
    DefaultSqlite,
    Url(String),
    Given(Arc<dyn Store>),
}

/// Builds a [`Workspace`].
#[derive(Debug, Clone)]
pub struct WorkspaceBuilder {
    root: PathBuf,
    mode: WorkspaceMode,
    grants: Vec<String>,
    store: StoreChoice,
    registry: Option<StoreRegistry>,
}

impl WorkspaceBuilder {
    /// Sets the mode (default `read_only`).
    pub fn mode(mut self, mode: WorkspaceMode) -> Self {
        self.mode = mode;
        self
    }
    /// Grants writes under a relative path prefix even in `read_only` mode.
    pub fn grant_write(mut self, prefix: impl Into<String>) -> Self {
        self.grants.push(prefix.into());
        self
    }
    /// Selects the store by URL (`sqlite:…`, `postgres://…`, or a registered name).
    pub fn store_url(mut self, url: impl Into<String>) -> Self {
        self.store = StoreChoice::Url(url.into());
        self
    }
    /// Uses an already opened store.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = StoreChoice::Given(store);
        self
    }
    /// Uses a registry with custom backends.
    pub fn registry(mut self, registry: StoreRegistry) -> Self {
        self.registry = Some(registry);
        self
    }
    /// Checks the root (it must be an existing directory) and the grants. Creates nothing.
    pub fn build(self) -> Result<Workspace, WorkspaceError> {
        let root = self
            .root
            .canonicalize()
            .map_err(|e| WorkspaceError::io(&self.root, e))?;
        if !root.is_dir() {
            return Err(WorkspaceError::InvalidInput(format!(
                "workspace root {} is not a directory",
                root.display()
            )));
        }
        let grants = self
            .grants
            .iter()
            .map(|g| files::normalize(g))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Workspace {
            shared: Arc::new(Shared {
                root,
                mode: self.mode,
                choice: self.store,
                registry: self.registry.unwrap_or_default(),
                store: OnceCell::new(),
            }),
            grants: grants.into(),
        })
    }
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    mode: WorkspaceMode,
    choice: StoreChoice,
    registry: StoreRegistry,
    store: OnceCell<Arc<dyn Store>>,
}

/// A Workspace: a contained file root and a durable store.
///
/// ```
/// use agentry_workspace::{Content, NewRecord, RecordQuery, Workspace};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentry_workspace::WorkspaceError> {
/// let dir = tempfile::tempdir().unwrap();
/// let ws = Workspace::open(dir.path()).build()?;
/// assert!(!ws.is_materialized()); // binding creates nothing
///
/// let rec = ws
///     .put(NewRecord::new("notes", Content::Text("the cache is warm".into())).kind("finding"))
///     .await?;
/// let hits = ws.search(RecordQuery::new().text("cache")).await?;
/// assert_eq!(hits[0].id, rec.id);
/// assert!(dir.path().join(".agentry/workspace.db").exists());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Workspace {
    shared: Arc<Shared>,
    grants: Arc<[PathBuf]>,
}

/// A retrieved record: its reference and a bounded excerpt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieved {
    /// The record.
    pub reference: RecordRef,
    /// The first bytes of its body (whole characters for text).
    pub excerpt: BoundedRead,
}

/// What a Workspace offers, for hosts and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    /// The canonical root.
    pub root: PathBuf,
    /// The mode.
    pub mode: WorkspaceMode,
    /// Write grants (relative prefixes).
    pub write_grants: Vec<String>,
    /// Whether `.agentry/` exists.
    pub materialized: bool,
    /// The store's capabilities, when it is open.
    pub store: Option<Capabilities>,
}

impl Workspace {
    /// Starts building a Workspace rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> WorkspaceBuilder {
        WorkspaceBuilder {
            root: root.as_ref().to_path_buf(),
            mode: WorkspaceMode::default(),
            grants: Vec::new(),
            store: StoreChoice::DefaultSqlite,
            registry: None,
        }
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The mode.
    pub fn mode(&self) -> WorkspaceMode {
        self.shared.mode
    }

    /// The reserved area `<root>/.agentry`.
    pub fn reserved_dir(&self) -> PathBuf {
        self.shared.root.join(RESERVED_DIR)
    }

    /// Whether anything was written yet.
    pub fn is_materialized(&self) -> bool {
        self.reserved_dir().exists()
    }

    /// Whether two handles share the same underlying Workspace.
    pub fn same_as(&self, other: &Workspace) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// A view of the same Workspace with an extra write grant (for an approved file
    /// action); the store and data are shared.
    pub fn with_write_grant(&self, prefix: &str) -> Result<Workspace, WorkspaceError> {
        let mut grants = self.grants.to_vec();
        grants.push(files::normalize(prefix)?);
        Ok(Workspace {
            shared: self.shared.clone(),
            grants: grants.into(),
        })
    }

    /// Mode, grants and capabilities.
    pub fn info(&self) -> WorkspaceInfo {
        WorkspaceInfo {
            root: self.shared.root.clone(),
            mode: self.shared.mode,
            write_grants: self
                .grants
                .iter()
                .map(|g| g.display().to_string())
                .collect(),
            materialized: self.is_materialized(),
            store: self.shared.store.get().map(|s| s.capabilities()),
        }
    }

    /// The store, opening it on first use (for the default SQLite store this
    /// creates `.agentry/workspace.db`).
    pub async fn store(&self) -> Result<Arc<dyn Store>, WorkspaceError> {
        self.shared
            .store
            .get_or_try_init(|| async {
                match &self.shared.choice {
                    StoreChoice::Given(s) => Ok(s.clone()),
                    StoreChoice::Url(url) => {
                        self.shared
                            .registry
                            .open(url, Some(self.shared.root.clone()))
                            .await
                    }
                    StoreChoice::DefaultSqlite => {
                        self.shared
                            .registry
                            .open("sqlite", Some(self.shared.root.clone()))
                            .await
                    }
                }
            })
            .await
            .cloned()
    }

    /// The store if reading it cannot create anything: an already open store, a
    /// non-default backend, or an existing default database.
    async fn store_for_read(&self) -> Result<Option<Arc<dyn Store>>, WorkspaceError> {
        if let Some(s) = self.shared.store.get() {
            return Ok(Some(s.clone()));
        }
        if matches!(self.shared.choice, StoreChoice::DefaultSqlite)
            && !self.reserved_dir().join("workspace.db").exists()
        {
            return Ok(None);
        }
        self.store().await.map(Some)
    }

    // ----- files ---------------------------------------------------------------

    fn fallback_dir(&self, execution: &ExecutionId) -> Result<PathBuf, WorkspaceError> {
        let e = execution.as_str();
        if e == "." || e == ".." || e.contains(['/', '\\']) {
            return Err(WorkspaceError::InvalidInput(format!(
                "execution id `{e}` cannot name a directory"
            )));
        }
        Ok(self.reserved_dir().join("files").join(e))
    }

    fn may_write_external(&self, rel: &Path) -> bool {
        self.shared.mode == WorkspaceMode::ReadWrite
            || self.grants.iter().any(|g| rel.starts_with(g))
    }

    fn file_ref(&self, path: &str, stored: &Path, bytes: &[u8], location: FileLocation) -> FileRef {
        FileRef {
            path: path.to_owned(),
            stored_path: stored
                .strip_prefix(&self.shared.root)
                .unwrap_or(stored)
                .display()
                .to_string(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            location,
        }
    }

    /// Resolves a caller path to its real location under the root (no I/O beyond
    /// metadata; nothing is created).
    pub fn resolve(&self, path: &str) -> Result<PathBuf, WorkspaceError> {
        let rel = files::normalize(path)?;
        files::contain(&self.shared.root, &rel, path)
    }

    /// Reads a file: the external file if it exists, else this execution's
    /// fallback copy.
    pub async fn read_file(
        &self,
        path: &str,
        execution: Option<&ExecutionId>,
    ) -> Result<FileContent, WorkspaceError> {
        self.read_file_bounded(path, execution, u64::MAX).await
    }

    /// Like [`read_file`](Self::read_file) but reads at most `max_bytes`; the
    /// digest and size then describe the bytes returned.
    pub async fn read_file_bounded(
        &self,
        path: &str,
        execution: Option<&ExecutionId>,
        max_bytes: u64,
    ) -> Result<FileContent, WorkspaceError> {
        let rel = files::normalize(path)?;
        let external = files::contain(&self.shared.root, &rel, path)?;
        let (target, location) = if external.is_file() {
            (external, FileLocation::External)
        } else {
            let fb = match execution {
                Some(e) => Some((self.fallback_dir(e)?.join(&rel), e.to_string())),
                None => None,
            };
            match fb {
                Some((p, e)) if p.is_file() => (p, FileLocation::Fallback { execution_id: e }),
                _ => {
                    return Err(WorkspaceError::NotFound {
                        kind: "file",
                        id: path.to_owned(),
                    });
                }
            }
        };
        let t = target.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&t).map_err(|e| WorkspaceError::io(&t, e))?;
            let mut buf = Vec::new();
            f.take(max_bytes)
                .read_to_end(&mut buf)
                .map_err(|e| WorkspaceError::io(&t, e))?;
            Ok::<_, WorkspaceError>(buf)
        })
        .await
        .map_err(|e| WorkspaceError::Backend(e.to_string()))??;
        Ok(FileContent {
            file_ref: self.file_ref(path, &target, &bytes, location),
            bytes,
        })
    }

    /// Writes a file. In place when the Workspace is `read_write` or the path is
    /// granted; otherwise a *new* file goes to `.agentry/files/<execution>/<path>`
    /// and an existing external file is refused (never shadowed).
    pub async fn write_file(
        &self,
        path: &str,
        bytes: &[u8],
        execution: &ExecutionId,
    ) -> Result<FileRef, WorkspaceError> {
        let rel = files::normalize(path)?;
        let external = files::contain(&self.shared.root, &rel, path)?;
        let (target, location) = if self.may_write_external(&rel) {
            (external, FileLocation::External)
        } else if external.symlink_metadata().is_ok() {
            return Err(WorkspaceError::WriteDenied(path.to_owned()));
        } else {
            let dir = self.fallback_dir(execution)?;
            (
                dir.join(&rel),
                FileLocation::Fallback {
                    execution_id: execution.to_string(),
                },
            )
        };
        let t = target.clone();
        let data = bytes.to_vec();
        tokio::task::spawn_blocking(move || files::atomic_write(&t, &data))
            .await
            .map_err(|e| WorkspaceError::Backend(e.to_string()))??;
        Ok(self.file_ref(path, &target, bytes, location))
    }

    // ----- records and the store -----------------------------------------------

    /// Stores a record.
    pub async fn put(&self, record: NewRecord) -> Result<RecordRef, WorkspaceError> {
        self.store().await?.put(record).await
    }

    /// A record with its body.
    pub async fn get(&self, id: &RecordId) -> Result<StoredRecord, WorkspaceError> {
        match self.store_for_read().await? {
            Some(s) => s.get(id).await,
            None => Err(WorkspaceError::NotFound {
                kind: "record",
                id: id.to_string(),
            }),
        }
    }

    /// A record's decoded body.
    pub async fn get_data(&self, id: &RecordId) -> Result<serde_json::Value, WorkspaceError> {
        self.get(id).await?.data()
    }

    /// Searches records (empty before anything was stored).
    pub async fn search(&self, query: RecordQuery) -> Result<Vec<RecordRef>, WorkspaceError> {
        match self.store_for_read().await? {
            Some(s) => s.search(query).await,
            None => {
                query.validate()?;
                Ok(Vec::new())
            }
        }
    }

    /// Records matching `query`, each with a bounded, character-safe excerpt of its
    /// body (at most `max_bytes`), for callers that want content without loading
    /// large payloads.
    pub async fn retrieve(
        &self,
        query: RecordQuery,
        max_bytes: u64,
    ) -> Result<Vec<Retrieved>, WorkspaceError> {
        let Some(store) = self.store_for_read().await? else {
            query.validate()?;
            return Ok(Vec::new());
        };
        let refs = store.search(query).await?;
        let mut out = Vec::with_capacity(refs.len());
        for reference in refs {
            let excerpt = store
                .read_bounded(&reference.id, 0, max_bytes.max(1))
                .await?;
            out.push(Retrieved { reference, excerpt });
        }
        Ok(out)
    }

    /// Records for listings (the CLI's `workspace records`).
    pub async fn list_records(&self, query: RecordQuery) -> Result<Vec<RecordRef>, WorkspaceError> {
        self.search(query).await
    }

    /// Events of an execution (the CLI's `workspace events`).
    pub async fn list_events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, WorkspaceError> {
        match self.store_for_read().await? {
            Some(s) => s.query_events(query).await,
            None => Ok(Vec::new()),
        }
    }

    /// Executions that have events, most recent first.
    pub async fn list_event_logs(
        &self,
        limit: Option<u32>,
    ) -> Result<Vec<EventLogHead>, WorkspaceError> {
        match self.store_for_read().await? {
            Some(s) => s.list_event_logs(limit).await,
            None => Ok(Vec::new()),
        }
    }

    /// Snapshot heads of every run (the CLI's `workspace snapshots`).
    pub async fn list_snapshots(
        &self,
        limit: Option<u32>,
    ) -> Result<Vec<SnapshotHead>, WorkspaceError> {
        match self.store_for_read().await? {
            Some(s) => s.list_snapshot_heads(limit).await,
            None => Ok(Vec::new()),
        }
    }

    /// Leases (the CLI's `workspace leases`).
    pub async fn list_leases(&self, limit: Option<u32>) -> Result<Vec<Lease>, WorkspaceError> {
        match self.store_for_read().await? {
            Some(s) => s.list_leases(limit).await,
            None => Ok(Vec::new()),
        }
    }

    /// A bounded context package for `goal` from records and files, using the
    /// keyword retriever.
    pub async fn build_context(
        &self,
        goal: &str,
        scope: &RecallScope,
        budget: Budget,
    ) -> Result<ContextPackage, WorkspaceError> {
        self.build_context_with(&KeywordRetriever, goal, scope, budget)
            .await
    }

    /// [`build_context`](Self::build_context) with a custom retriever.
    pub async fn build_context_with(
        &self,
        retriever: &dyn Retriever,
        goal: &str,
        scope: &RecallScope,
        budget: Budget,
    ) -> Result<ContextPackage, WorkspaceError> {
        crate::recall::build_context(self, retriever, goal, scope, budget).await
    }

    /// A [`Hook`](agentry_core::Hook) persisting RuntimeEvents into this Workspace.
    pub fn event_sink(&self) -> WorkspaceEventSink {
        WorkspaceEventSink::for_workspace(self.clone())
    }
}
