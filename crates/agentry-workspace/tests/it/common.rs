use std::path::PathBuf;
use std::sync::Arc;

use agentry_workspace::conformance::StoreFactory;
use agentry_workspace::{PgStore, SqliteStore, Store, StoreFuture, WorkspaceError};
use futures::future::BoxFuture;

pub fn pg_base_url() -> String {
    std::env::var("AGENTRY_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn skip_pg() -> bool {
    std::env::var("AGENTRY_SKIP_PG").as_deref() == Ok("1")
}

/// A unique schema URL for one test.
pub fn pg_test_url() -> String {
    format!(
        "{}?schema=agentry_t_{}",
        pg_base_url(),
        uuid::Uuid::new_v4().simple()
    )
}

pub struct SqliteFactory {
    pub dir: tempfile::TempDir,
}

impl SqliteFactory {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(".agentry").join("workspace.db")
    }
}

impl StoreFactory for SqliteFactory {
    fn open(&self) -> StoreFuture<'_, Arc<dyn Store>> {
        Box::pin(async move {
            Ok(Arc::new(SqliteStore::open_path(self.path()).await?) as Arc<dyn Store>)
        })
    }
}

pub fn sqlite_factory() -> BoxFuture<'static, Box<dyn StoreFactory>> {
    Box::pin(async {
        Box::new(SqliteFactory {
            dir: tempfile::tempdir().unwrap(),
        }) as Box<dyn StoreFactory>
    })
}

pub struct PgFactory {
    pub url: String,
    first: tokio::sync::OnceCell<PgStore>,
}

impl PgFactory {
    pub fn new() -> Self {
        Self {
            url: pg_test_url(),
            first: tokio::sync::OnceCell::new(),
        }
    }
}

impl StoreFactory for PgFactory {
    fn open(&self) -> StoreFuture<'_, Arc<dyn Store>> {
        Box::pin(async move {
            let s = PgStore::connect_with(&self.url, 4).await?;
            let _ = self.first.set(s.clone());
            Ok(Arc::new(s) as Arc<dyn Store>)
        })
    }
    fn skip_reason(&self) -> Option<String> {
        skip_pg().then(|| "AGENTRY_SKIP_PG=1".to_owned())
    }
    fn teardown(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match self.first.get() {
                Some(s) => s.drop_schema().await,
                None => Ok::<(), WorkspaceError>(()),
            }
        })
    }
}

pub fn pg_factory() -> BoxFuture<'static, Box<dyn StoreFactory>> {
    Box::pin(async { Box::new(PgFactory::new()) as Box<dyn StoreFactory> })
}

/// Connects to a fresh PostgreSQL schema, or returns None when skipping is asked for.
pub async fn pg_store() -> Option<PgStore> {
    if skip_pg() {
        eprintln!("AGENTRY_SKIP_PG=1: skipping a PostgreSQL test");
        return None;
    }
    Some(
        PgStore::connect(&pg_test_url())
            .await
            .expect("PostgreSQL must be reachable (or set AGENTRY_SKIP_PG=1)"),
    )
}
