//! Configuration shared by the OpenAI-compatible providers.
//!
//! One [`OpenAiConfig`] describes an endpoint, a model, credentials, timeouts and
//! the retry policy. Both [`OpenAiChat`](crate::OpenAiChat) and
//! [`OpenAiResponses`](crate::OpenAiResponses) take it, so switching wire protocol
//! is a one-line change.
use std::fmt;
use std::time::Duration;

use reqwest::Url;

use crate::error::ModelError;

/// An API key. It is kept out of every `Debug` and `Display` output (both print
/// `***`) so that logging a config or a provider never leaks it.
///
/// ```
/// use agentry_model::ApiKey;
/// let key = ApiKey::new("sk-secret-123");
/// assert_eq!(format!("{key} {key:?}"), "*** ***");
/// assert_eq!(key.expose(), "sk-secret-123");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Reads a key from an environment variable; `None` when unset or empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(Self)
    }

    /// The key itself. Named so that call sites which reveal it are easy to find.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for ApiKey {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for ApiKey {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Time limits of one request. `None` means unlimited.
///
/// Every limit names the stage it guards, so a stall error tells the host where
/// the time went:
/// - `first_event` → `response_first_event` (from sending the request until the
///   first meaningful stream event; SSE keep-alive comments do not count),
/// - `stream_idle` → `response_stream` (the longest gap between meaningful events),
/// - `request` → `response_materialization` (the whole non-streamed exchange).
///
/// ```
/// use std::time::Duration;
/// use agentry_model::Timeouts;
/// let t = Timeouts::default();
/// assert_eq!(t.first_event, Some(Duration::from_secs(60)));
/// let fast = Timeouts::uniform(Duration::from_millis(300));
/// assert_eq!(fast.stream_idle, Some(Duration::from_millis(300)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP/TLS connect limit (default 10 s).
    pub connect: Duration,
    /// Limit until the first meaningful event of a streamed response (default 60 s).
    pub first_event: Option<Duration>,
    /// Longest gap between meaningful events of a streamed response (default 60 s).
    pub stream_idle: Option<Duration>,
    /// Bound on a whole non-streamed request, body included (default 600 s).
    pub request: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_event: Some(Duration::from_secs(60)),
            stream_idle: Some(Duration::from_secs(60)),
            request: Some(Duration::from_secs(600)),
        }
    }
}

impl Timeouts {
    /// The same limit for every stage; handy in tests.
    pub fn uniform(limit: Duration) -> Self {
        Self {
            connect: limit,
            first_event: Some(limit),
            stream_idle: Some(limit),
            request: Some(limit),
        }
    }
}

/// How transient failures before any output are retried.
///
/// The delay before attempt `n + 1` is `initial_backoff · 2^(n-1)` capped at
/// `max_backoff`, with "equal jitter" (between half and all of it) derived
/// deterministically from the request body, so concurrent different requests
/// spread out while a given request always waits the same. A `Retry-After`
/// (or `retry-after-ms`) header replaces the computed delay, capped at
/// `max_backoff` so a server cannot park the client.
///
/// ```
/// use std::time::Duration;
/// use agentry_model::RetryPolicy;
/// let p = RetryPolicy::default();
/// assert_eq!((p.max_attempts, p.initial_backoff), (3, Duration::from_millis(250)));
/// assert_eq!(RetryPolicy::none().max_attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (default 3; must be ≥ 1).
    pub max_attempts: u32,
    /// Delay before the second attempt (default 250 ms).
    pub initial_backoff: Duration,
    /// Largest delay between attempts (default 8 s).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay after failed attempt `attempt` (1-based). `seed` picks the jitter.
    pub(crate) fn backoff(&self, attempt: u32, seed: u64) -> Duration {
        let shift = attempt.saturating_sub(1).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff);
        let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        let r = splitmix64(seed ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let jitter = if half == 0 { 0 } else { r % (half + 1) };
        Duration::from_nanos(nanos - half + jitter)
    }
}

/// A small, well-mixed deterministic hash step (public-domain SplitMix64).
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Configuration of an OpenAI-compatible provider.
///
/// ```
/// use std::time::Duration;
/// use agentry_model::{OpenAiChat, OpenAiConfig, RetryPolicy};
/// let cfg = OpenAiConfig::new("http://127.0.0.1:11434/v1", "llama3.2")
///     .api_key("sk-local")
///     .stream(true)
///     .first_event_timeout(Some(Duration::from_secs(30)))
///     .retry(RetryPolicy::none())
///     .header("X-Team", "agents");
/// assert_eq!(format!("{:?}", cfg.api_key), "Some(***)");
/// let model = OpenAiChat::new(cfg).unwrap();
/// # let _ = model;
/// assert!(OpenAiChat::new(OpenAiConfig::new("not a url", "m")).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// API base URL including the version segment, e.g. `https://api.openai.com/v1`
    /// or `http://127.0.0.1:11434/v1`. The provider appends `/chat/completions` or
    /// `/responses`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set; local servers need none.
    pub api_key: Option<ApiKey>,
    /// The model name sent in every request.
    pub model: String,
    /// Stream responses over SSE (default `true`).
    pub stream: bool,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Retry policy for failures before any output.
    pub retry: RetryPolicy,
    /// Extra request headers (name, value), e.g. an organisation id.
    pub headers: Vec<(String, String)>,
    /// Ask Chat Completions for a final usage chunk (`stream_options.include_usage`,
    /// default `true`). Turn off for servers that reject `stream_options`.
    pub include_usage: bool,
}

impl OpenAiConfig {
    /// A config for `model` at `base_url` with default timeouts and retries.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            stream: true,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            headers: Vec::new(),
            include_usage: true,
        }
    }

    /// Sets the API key.
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Streams (`true`) or asks for one JSON body (`false`).
    pub fn stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Replaces all timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.timeouts.connect = limit;
        self
    }

    /// Sets the first-event limit (`None`: unlimited).
    pub fn first_event_timeout(mut self, limit: Option<Duration>) -> Self {
        self.timeouts.first_event = limit;
        self
    }

    /// Sets the stream-idle limit (`None`: unlimited).
    pub fn stream_idle_timeout(mut self, limit: Option<Duration>) -> Self {
        self.timeouts.stream_idle = limit;
        self
    }

    /// Sets the bound on non-streamed requests (`None`: unlimited).
    pub fn request_timeout(mut self, limit: Option<Duration>) -> Self {
        self.timeouts.request = limit;
        self
    }

    /// Replaces the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets `stream_options.include_usage` for Chat Completions.
    pub fn include_usage(mut self, include: bool) -> Self {
        self.include_usage = include;
        self
    }

    /// Checks the config and resolves `{base_url}/{path}`.
    pub(crate) fn validate(&self, path: &str) -> Result<Url, ModelError> {
        if self.model.trim().is_empty() {
            return Err(ModelError::Config("the model name is empty".into()));
        }
        if self.retry.max_attempts == 0 {
            return Err(ModelError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return Err(ModelError::Config(
                "retry.initial_backoff is larger than retry.max_backoff".into(),
            ));
        }
        for (name, limit) in [
            ("first_event", self.timeouts.first_event),
            ("stream_idle", self.timeouts.stream_idle),
            ("request", self.timeouts.request),
            ("connect", Some(self.timeouts.connect)),
        ] {
            if limit == Some(Duration::ZERO) {
                return Err(ModelError::Config(format!(
                    "timeouts.{name} is zero; use None for unlimited"
                )));
            }
        }
        let base = self.base_url.trim();
        let url = Url::parse(&format!("{}/{path}", base.trim_end_matches('/')))
            .map_err(|e| ModelError::Config(format!("base_url is not a valid URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ModelError::Config(
                "base_url must be an http:// or https:// URL with a host".into(),
            ));
        }
        if let Some(key) = &self.api_key
            && key.expose().trim().is_empty()
        {
            return Err(ModelError::Config("the API key is empty".into()));
        }
        Ok(url)
    }
}

/// The URL as shown in logs and errors: scheme, host, port and path only.
pub(crate) fn display_endpoint(url: &Url) -> String {
    let mut shown = url.clone();
    // Setting these can only fail for URLs that cannot carry credentials, which
    // then have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_deterministic() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for attempt in 1..12 {
            let base = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(30))
                .min(Duration::from_millis(1000));
            for seed in [0u64, 1, 42, u64::MAX] {
                let d = p.backoff(attempt, seed);
                assert!(d <= base, "{d:?} > {base:?}");
                assert!(d >= base / 2, "{d:?} < half of {base:?}");
                assert_eq!(d, p.backoff(attempt, seed));
            }
        }
        // Different seeds spread out.
        let spread: std::collections::BTreeSet<_> = (0..20).map(|s| p.backoff(3, s)).collect();
        assert!(spread.len() > 10);
        // Huge attempt numbers do not overflow.
        assert!(p.backoff(u32::MAX, 7) <= Duration::from_millis(1000));
    }

    #[test]
    fn zero_backoff_is_zero() {
        let p = RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        };
        assert_eq!(p.backoff(1, 9), Duration::ZERO);
    }

    #[test]
    fn validation() {
        let ok = OpenAiConfig::new("http://127.0.0.1:1/v1/", "m");
        assert_eq!(
            ok.validate("chat/completions").unwrap().as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        assert!(OpenAiConfig::new("http://h/v1", " ").validate("x").is_err());
        assert!(OpenAiConfig::new("ftp://h/v1", "m").validate("x").is_err());
        assert!(OpenAiConfig::new("h/v1", "m").validate("x").is_err());
        let zero = OpenAiConfig::new("http://h/v1", "m").retry(RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        });
        assert!(matches!(zero.validate("x"), Err(ModelError::Config(_))));
        let zero_t =
            OpenAiConfig::new("http://h/v1", "m").first_event_timeout(Some(Duration::ZERO));
        assert!(zero_t.validate("x").is_err());
        assert!(
            OpenAiConfig::new("http://h/v1", "m")
                .api_key("")
                .validate("x")
                .is_err()
        );
    }

    #[test]
    fn endpoint_hides_credentials_and_query() {
        let url = Url::parse("https://user:pw@example.com:8443/v1/responses?key=s").unwrap();
        assert_eq!(
            display_endpoint(&url),
            "https://example.com:8443/v1/responses"
        );
    }
}
