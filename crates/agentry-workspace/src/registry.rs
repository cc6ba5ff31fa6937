//! Backends by name: a URL scheme (`sqlite:`, `postgres:`) or a name a host
//! registered selects the factory that opens the store.
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::error::WorkspaceError;
use crate::postgres::PgStore;
use crate::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{Store, StoreFuture};

/// What a factory is asked to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// The full URL (or the bare name when selected by config).
    pub url: String,
    /// The workspace root, for backends that keep files next to it.
    pub root: Option<PathBuf>,
}

/// A backend factory.
pub type StoreFactoryFn =
    Arc<dyn Fn(StoreSpec) -> StoreFuture<'static, Arc<dyn Store>> + Send + Sync>;

/// Backend factories by name. Clones share the same table.
#[derive(Clone)]
pub struct StoreRegistry {
    map: Arc<RwLock<BTreeMap<String, StoreFactoryFn>>>,
}

impl fmt::Debug for StoreRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreRegistry")
            .field("backends", &self.names())
            .finish()
    }
}

impl Default for StoreRegistry {
    fn default() -> Self {
        Self::with_builtins()
    }
}

/// The scheme of a URL (`postgres` in `postgres://…`, `sqlite` in `sqlite:x.db`).
pub fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.');
    ok.then_some(scheme)
}

/// The file path of a `sqlite:` URL: `sqlite:///abs.db`, `sqlite://rel.db`, `sqlite:rel.db`.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let rest = rest.split('?').next().unwrap_or(rest);
    (!rest.is_empty()).then(|| PathBuf::from(rest))
}

impl StoreRegistry {
    /// A registry with no backends.
    pub fn empty() -> Self {
        Self {
            map: Arc::new(RwLock::new(BTreeMap::new())),
        }
    }

    /// A registry with `sqlite`, `postgres` and `postgresql`.
    pub fn with_builtins() -> Self {
        let r = Self::empty();
        let sqlite: StoreFactoryFn = Arc::new(|spec: StoreSpec| {
            Box::pin(async move {
                let path = sqlite_path(&spec.url)
                    .or_else(|| {
                        spec.root
                            .map(|r| r.join(crate::files::RESERVED_DIR).join("workspace.db"))
                    })
                    .ok_or_else(|| {
                        WorkspaceError::InvalidInput(format!("no sqlite path in `{}`", spec.url))
                    })?;
                let mut options = SqliteOptions::new(path);
                options.read_only = spec.url.contains("read_only=true");
                Ok(Arc::new(SqliteStore::open(options).await?) as Arc<dyn Store>)
            })
        });
        let pg: StoreFactoryFn = Arc::new(|spec: StoreSpec| {
            Box::pin(
                async move { Ok(Arc::new(PgStore::connect(&spec.url).await?) as Arc<dyn Store>) },
            )
        });
        if let Ok(mut m) = r.map.write() {
            m.insert("sqlite".into(), sqlite);
            m.insert("postgres".into(), pg.clone());
            m.insert("postgresql".into(), pg);
        }
        r
    }

    /// Registers a backend; an existing name is an error (use [`replace`](Self::replace)).
    pub fn register(&self, name: &str, factory: StoreFactoryFn) -> Result<(), WorkspaceError> {
        if name.is_empty() {
            return Err(WorkspaceError::InvalidInput("empty backend name".into()));
        }
        let mut m = self
            .map
            .write()
            .map_err(|_| WorkspaceError::Backend("registry poisoned".into()))?;
        if m.contains_key(name) {
            return Err(WorkspaceError::DuplicateBackend(name.to_owned()));
        }
        m.insert(name.to_owned(), factory);
        Ok(())
    }

    /// Registers or replaces a backend.
    pub fn replace(&self, name: &str, factory: StoreFactoryFn) {
        if let Ok(mut m) = self.map.write() {
            m.insert(name.to_owned(), factory);
        }
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.map
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Opens the backend named by the URL's scheme, or by `url` itself when it is a
    /// bare registered name.
    pub async fn open(
        &self,
        url: &str,
        root: Option<PathBuf>,
    ) -> Result<Arc<dyn Store>, WorkspaceError> {
        let name = scheme_of(url).unwrap_or(url);
        let factory = self
            .map
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
            .ok_or_else(|| WorkspaceError::UnknownBackend(name.to_owned()))?;
        factory(StoreSpec {
            url: url.to_owned(),
            root,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        assert_eq!(scheme_of("postgres://u@h/db"), Some("postgres"));
        assert_eq!(scheme_of("memory"), None);
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(sqlite_path("sqlite:a.db?x=1"), Some(PathBuf::from("a.db")));
        assert_eq!(sqlite_path("sqlite:"), None);
    }

    #[tokio::test]
    async fn unknown_and_duplicate_backends() {
        let r = StoreRegistry::with_builtins();
        assert!(matches!(
            r.open("nope://x", None).await,
            Err(WorkspaceError::UnknownBackend(_))
        ));
        let f: StoreFactoryFn = Arc::new(|_| Box::pin(async { Err(WorkspaceError::Closed) }));
        assert!(matches!(
            r.register("sqlite", f.clone()),
            Err(WorkspaceError::DuplicateBackend(_))
        ));
        r.register("custom", f).unwrap();
        assert!(r.names().contains(&"custom".to_owned()));
        assert!(matches!(
            r.open("custom", None).await,
            Err(WorkspaceError::Closed)
        ));
    }
}
