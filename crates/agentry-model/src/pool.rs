use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::ModelError;
use crate::provider::ModelProvider;

/// Named models, so later layers pick by key (`default`, `planner`, …) rather than
/// by provider.
///
/// ```
/// use std::sync::Arc;
/// use agentry_model::{ModelPool, TestModel};
/// let mut pool = ModelPool::new();
/// pool.insert("default", Arc::new(TestModel::new()));
/// assert!(pool.get("default").is_ok());
/// assert!(pool.get("planner").is_err());
/// assert!(pool.get_or_default("planner").is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ModelPool {
    models: BTreeMap<String, Arc<dyn ModelProvider>>,
}

impl ModelPool {
    /// The key used when a caller names no model.
    pub const DEFAULT: &'static str = "default";

    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a model under `key`.
    pub fn insert(&mut self, key: impl Into<String>, model: Arc<dyn ModelProvider>) {
        self.models.insert(key.into(), model);
    }

    /// The model under `key`.
    pub fn get(&self, key: &str) -> Result<Arc<dyn ModelProvider>, ModelError> {
        self.models
            .get(key)
            .cloned()
            .ok_or_else(|| ModelError::UnknownModel(key.to_owned()))
    }

    /// The model under `key`, or the `default` model when `key` is not registered.
    pub fn get_or_default(&self, key: &str) -> Result<Arc<dyn ModelProvider>, ModelError> {
        self.models
            .get(key)
            .or_else(|| self.models.get(Self::DEFAULT))
            .cloned()
            .ok_or_else(|| ModelError::UnknownModel(key.to_owned()))
    }

    /// The registered keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}
