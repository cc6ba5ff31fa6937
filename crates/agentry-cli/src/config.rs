//! `agentry.toml`, environment variables and flags, resolved into models and limits.
//!
//! Precedence: flags, then environment (`OPENAI_BASE_URL`, `OPENAI_API_KEY`,
//! `AGENTRY_MODEL`), then the file. Keys are never stored in the file: a model names
//! the environment variable that holds its key (`api_key_env`).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentry::Limits;
use agentry::model::{
    ApiKey, ModelProvider, OpenAiChat, OpenAiConfig, OpenAiResponses, RetryPolicy, TestModel,
};
use serde::{Deserialize, Serialize};

/// A configuration problem: printed as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped fields.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// Something is missing or inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// The `agentry.toml` file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Which model key `agentry run` uses when `--model` is not given.
    #[serde(default)]
    pub default_model: Option<String>,
    /// Named models.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
    /// Default limits.
    #[serde(default)]
    pub limits: Limits,
    /// MCP servers (`[mcp.servers.NAME]`).
    #[serde(default)]
    pub mcp: agentry_mcp::McpServersConfig,
}

/// Loads the configuration file alone (for commands that need no model).
pub fn load_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    match path {
        Some(p) => parse_file(p),
        None => {
            let p = PathBuf::from("agentry.toml");
            if p.is_file() {
                parse_file(&p)
            } else {
                Ok(FileConfig::default())
            }
        }
    }
}

/// Kinds of provider a model entry can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI-compatible Chat Completions (OpenAI, Ollama, vLLM, LM Studio …).
    #[default]
    OpenaiChat,
    /// The OpenAI Responses API.
    OpenaiResponses,
    /// The built-in deterministic test model.
    Test,
}

/// One `[models.NAME]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Provider kind.
    #[serde(default)]
    pub provider: ProviderKind,
    /// Base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Model name sent to the server.
    #[serde(default)]
    pub model: Option<String>,
    /// Environment variable holding the API key (default `OPENAI_API_KEY`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Stream responses (default true).
    #[serde(default)]
    pub stream: Option<bool>,
    /// Seconds to wait for the first streamed event.
    #[serde(default)]
    pub first_event_timeout_seconds: Option<f64>,
    /// Longest gap between streamed events, in seconds.
    #[serde(default)]
    pub stream_idle_timeout_seconds: Option<f64>,
    /// Attempts per request for transient failures before output.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// Flags that influence configuration.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_path: Option<PathBuf>,
    pub model: Option<String>,
    pub base_url: Option<String>,
}

/// Environment values that influence configuration (read once, passed in so tests
/// need not mutate the process environment).
#[derive(Debug, Default, Clone)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().filter(|(_, v)| !v.is_empty()).collect(),
        }
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

/// A model ready to be put in the pool.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub key: String,
    pub provider: Arc<dyn ModelProvider>,
    /// Printable description (never the key).
    pub description: String,
    pub api_key_present: Option<bool>,
    pub secret: Option<String>,
}

/// Everything `agentry run` needs from configuration.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub source: Option<PathBuf>,
    pub mcp: agentry_mcp::McpServersConfig,
    pub selected: String,
    pub models: Vec<ResolvedModel>,
    pub limits: Limits,
}

fn parse_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: parse_message(&text, &e),
    })
}

/// One line for a TOML error: where it is, then what is wrong. The error's own
/// `Display` quotes the offending source lines under a caret, which a one-line
/// message would flatten into noise.
fn parse_message(text: &str, error: &toml::de::Error) -> String {
    let what = one_line(error.message());
    let Some(start) = error.span().map(|span| span.start) else {
        return what;
    };
    let before = text.get(..start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {what}")
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn seconds(field: &str, v: Option<f64>) -> Result<Option<Duration>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(ConfigError::Invalid(format!(
            "{field} = {s}: must be a positive number of seconds"
        ))),
    }
}

fn build_model(key: &str, cfg: &ModelConfig, env: &Env) -> Result<ResolvedModel, ConfigError> {
    match cfg.provider {
        ProviderKind::Test => Ok(ResolvedModel {
            key: key.to_owned(),
            provider: Arc::new(TestModel::new()),
            description: "built-in test model".into(),
            api_key_present: None,
            secret: None,
        }),
        kind @ (ProviderKind::OpenaiChat | ProviderKind::OpenaiResponses) => {
            let base_url = cfg.base_url.clone().ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "model `{key}` has no base_url: set base_url in [models.{key}] or OPENAI_BASE_URL"
                ))
            })?;
            let model = cfg.model.clone().ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "model `{key}` has no model name: set model in [models.{key}] or AGENTRY_MODEL"
                ))
            })?;
            let key_env = cfg
                .api_key_env
                .clone()
                .unwrap_or_else(|| "OPENAI_API_KEY".into());
            let secret = env.get(&key_env).map(str::to_owned);
            let mut oc = OpenAiConfig::new(base_url.clone(), model.clone());
            if let Some(s) = &secret {
                oc = oc.api_key(ApiKey::new(s.clone()));
            }
            if let Some(stream) = cfg.stream {
                oc = oc.stream(stream);
            }
            if let Some(d) = seconds(
                "first_event_timeout_seconds",
                cfg.first_event_timeout_seconds,
            )? {
                oc.timeouts.first_event = Some(d);
            }
            if let Some(d) = seconds(
                "stream_idle_timeout_seconds",
                cfg.stream_idle_timeout_seconds,
            )? {
                oc.timeouts.stream_idle = Some(d);
            }
            if let Some(n) = cfg.max_attempts {
                oc.retry = RetryPolicy {
                    max_attempts: n,
                    ..oc.retry
                };
            }
            let (provider, label): (Arc<dyn ModelProvider>, &str) = match kind {
                ProviderKind::OpenaiResponses => (
                    Arc::new(
                        OpenAiResponses::new(oc)
                            .map_err(|e| ConfigError::Invalid(format!("model `{key}`: {e}")))?,
                    ),
                    "openai_responses",
                ),
                _ => (
                    Arc::new(
                        OpenAiChat::new(oc)
                            .map_err(|e| ConfigError::Invalid(format!("model `{key}`: {e}")))?,
                    ),
                    "openai_chat",
                ),
            };
            Ok(ResolvedModel {
                key: key.to_owned(),
                provider,
                description: format!("{label} {model} at {base_url} (key from {key_env})"),
                api_key_present: Some(secret.is_some()),
                secret,
            })
        }
    }
}

/// Loads and resolves configuration.
pub fn resolve(overrides: &Overrides, env: &Env) -> Result<Resolved, ConfigError> {
    let (file, source) = match &overrides.config_path {
        Some(p) => (parse_file(p)?, Some(p.clone())),
        None => {
            let p = PathBuf::from("agentry.toml");
            if p.is_file() {
                (parse_file(&p)?, Some(p))
            } else {
                (FileConfig::default(), None)
            }
        }
    };
    file.limits
        .validate()
        .map_err(|e| ConfigError::Invalid(format!("[limits]: {e}")))?;

    let mut models = file.models.clone();
    // Environment and flags refine the `default` entry (creating it from the
    // environment alone when the file has none).
    let base_url = overrides
        .base_url
        .clone()
        .or_else(|| env.get("OPENAI_BASE_URL").map(str::to_owned));
    if base_url.is_some() || models.contains_key("default") {
        let entry = models.entry("default".into()).or_default();
        if let Some(url) = &base_url {
            entry.base_url = Some(url.clone());
        }
    }

    let requested = overrides
        .model
        .clone()
        .or_else(|| env.get("AGENTRY_MODEL").map(str::to_owned))
        .or_else(|| file.default_model.clone());
    let selected = match requested {
        Some(name) if name == "test" && !models.contains_key("test") => {
            models.insert(
                "test".into(),
                ModelConfig {
                    provider: ProviderKind::Test,
                    ..ModelConfig::default()
                },
            );
            name
        }
        Some(name) if models.contains_key(&name) => name,
        Some(name) => {
            // Not a configured key: a model name for the default endpoint.
            let Some(default) = models.get_mut("default") else {
                return Err(ConfigError::Invalid(format!(
                    "model `{name}` is not configured: use --model test, or set OPENAI_BASE_URL (and OPENAI_API_KEY), or add [models.{name}] to agentry.toml"
                )));
            };
            default.model = Some(name);
            "default".into()
        }
        None if models.contains_key("default") => "default".into(),
        None => {
            return Err(ConfigError::Invalid(
                "no model configured: use --model test for the built-in test model, or set OPENAI_BASE_URL and AGENTRY_MODEL, or add [models.default] to agentry.toml".into(),
            ));
        }
    };
    if selected == "default"
        && let Some(default) = models.get_mut("default")
        && default.model.is_none()
    {
        default.model = env.get("AGENTRY_MODEL").map(str::to_owned);
    }

    // Build the selected model first so its errors come first; others only when valid.
    let mut resolved = Vec::new();
    let selected_cfg = models
        .get(&selected)
        .ok_or_else(|| ConfigError::Invalid(format!("model `{selected}` is not configured")))?;
    resolved.push(build_model(&selected, selected_cfg, env)?);
    for (key, cfg) in &models {
        if key != &selected {
            resolved.push(build_model(key, cfg, env)?);
        }
    }
    Ok(Resolved {
        source,
        mcp: file.mcp,
        selected,
        models: resolved,
        limits: file.limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_error(text: &str) -> String {
        match toml::from_str::<FileConfig>(text) {
            Ok(_) => String::from("parsed"),
            Err(e) => parse_message(text, &e),
        }
    }

    #[test]
    fn toml_errors_are_one_line_with_a_position() {
        assert_eq!(
            toml_error("# models\ndefault_model = 3\n"),
            "line 2, column 17: invalid type: integer `3`, expected a string"
        );
        let unknown = toml_error("[limits]\nmax_secondz = 3\n");
        assert!(
            unknown.starts_with("line 2, column 1: unknown field `max_secondz`"),
            "{unknown}"
        );
        let syntax = toml_error("default_model = \"a");
        assert!(syntax.starts_with("line 1, column "), "{syntax}");
        assert!(
            !syntax.contains('\n') && !syntax.contains(" | "),
            "{syntax}"
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn overrides(model: Option<&str>) -> Overrides {
        Overrides {
            config_path: Some(PathBuf::from("/nonexistent/none.toml")),
            model: model.map(Into::into),
            base_url: None,
        }
    }

    #[test]
    fn missing_file_named_explicitly_is_an_error() {
        let err = resolve(&overrides(Some("test")), &Env::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn test_model_needs_no_config() {
        let o = Overrides {
            config_path: None,
            model: Some("test".into()),
            base_url: None,
        };
        let r = resolve(&o, &Env::default()).unwrap();
        assert_eq!(r.selected, "test");
    }

    #[test]
    fn env_alone_configures_default() {
        let o = Overrides {
            config_path: None,
            model: None,
            base_url: None,
        };
        let r = resolve(
            &o,
            &env(&[
                ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
                ("AGENTRY_MODEL", "llama3"),
                ("OPENAI_API_KEY", "sk-x"),
            ]),
        )
        .unwrap();
        assert_eq!(r.selected, "default");
        assert_eq!(r.models[0].api_key_present, Some(true));
        assert!(r.models[0].description.contains("llama3"));
    }

    #[test]
    fn nothing_configured_is_actionable() {
        let o = Overrides {
            config_path: None,
            model: None,
            base_url: None,
        };
        let err = resolve(&o, &Env::default()).unwrap_err().to_string();
        assert!(err.contains("--model test"), "{err}");
    }

    #[test]
    fn broken_toml_gives_one_line() {
        let dir = std::env::temp_dir().join(format!("agentry-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("agentry.toml");
        std::fs::write(&p, "[models.default]\nprovider = \"nope\"\n").unwrap();
        let o = Overrides {
            config_path: Some(p),
            model: None,
            base_url: None,
        };
        let err = resolve(&o, &Env::default()).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("agentry.toml"), "{err}");
    }
}
