//! Redaction of secrets from event payloads, applied once at emit time so that no
//! hook, sink or store ever sees a key, token or password.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

/// The placeholder written where a secret was.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered: replacing every `"ab"` in every
/// payload would destroy data without protecting anything.
const MIN_SECRET_LEN: usize = 4;

/// Default longest string kept in a payload, in bytes.
const DEFAULT_MAX_STRING_BYTES: usize = 64 * 1024;

/// Removes secrets from JSON values: values under sensitive keys (`api_key`,
/// `authorization`, `password`, `*_token` …) and every occurrence of a registered
/// secret value anywhere in a string. Also bounds long strings.
///
/// Cloning shares the registered secrets.
///
/// ```
/// use agentry_core::Redactor;
/// use serde_json::json;
///
/// let r = Redactor::default();
/// r.register_secret("sk-live-123456");
/// let mut v = json!({"api_key": "x", "note": "used sk-live-123456", "usage": {"total_tokens": 3}});
/// r.redact_value(&mut v);
/// assert_eq!(v, json!({"api_key": "[REDACTED]", "note": "used [REDACTED]", "usage": {"total_tokens": 3}}));
/// ```
#[derive(Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

/// Never prints the secrets themselves: a redactor often sits inside types that
/// hosts log with `{:?}`.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets = self.inner.secrets.read().map(|s| s.len()).unwrap_or(0);
        let keys = self.inner.extra_keys.read().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("Redactor")
            .field("registered_secrets", &secrets)
            .field("extra_sensitive_keys", &keys)
            .field("max_string_bytes", &self.inner.max_string_bytes)
            .finish()
    }
}

struct Inner {
    secrets: RwLock<Vec<String>>,
    extra_keys: RwLock<Vec<String>>,
    /// Lets the hot path skip the locks while nothing was registered.
    has_secrets: AtomicBool,
    has_extra_keys: AtomicBool,
    max_string_bytes: usize,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::with_max_string_bytes(DEFAULT_MAX_STRING_BYTES)
    }
}

fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Longest normalized key checked without allocating; longer keys take the slow path.
const FAST_KEY_LEN: usize = 64;

/// Normalizes an ASCII key into `buf` (lowercase, separators dropped) without
/// allocating. `None` for non-ASCII or very long keys.
fn normalize_ascii<'b>(key: &str, buf: &'b mut [u8; FAST_KEY_LEN]) -> Option<&'b str> {
    let mut n = 0;
    for b in key.bytes() {
        if !b.is_ascii() {
            return None;
        }
        if matches!(b, b'_' | b'-' | b'.' | b' ') {
            continue;
        }
        *buf.get_mut(n)? = b.to_ascii_lowercase();
        n += 1;
    }
    std::str::from_utf8(buf.get(..n)?).ok()
}

/// The last three letters of every built-in sensitive name (normalized).
const BUILTIN_ENDINGS: &[&[u8; 3]] = &[
    b"ion", b"kie", b"ord", b"swd", b"ase", b"ret", b"ial", b"als", b"key", b"ken",
];

/// Whether `key` can normalize to a built-in sensitive name, looking only at its
/// end: this runs for every key of every event, and most keys are settled here
/// without normalizing them. Non-ASCII near the end answers "maybe" (some
/// characters lowercase to ASCII letters).
fn may_be_builtin(key: &str) -> bool {
    let mut tail = [0u8; 3];
    let mut filled = 0;
    for b in key.bytes().rev() {
        if !b.is_ascii() {
            return true;
        }
        if matches!(b, b'_' | b'-' | b'.' | b' ') {
            continue;
        }
        filled += 1;
        match tail.get_mut(3 - filled) {
            Some(slot) => *slot = b.to_ascii_lowercase(),
            None => break,
        }
        if filled == 3 {
            break;
        }
    }
    filled == 3 && BUILTIN_ENDINGS.contains(&&tail)
}

fn builtin_sensitive(norm: &str) -> bool {
    const EXACT: &[&str] = &[
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "password",
        "passwd",
        "passphrase",
        "secret",
        "credential",
        "credentials",
        "privatekey",
        "token",
    ];
    const SUFFIXES: &[&str] = &[
        "apikey",
        "secret",
        "password",
        "token",
        "secretkey",
        "accesskey",
        "privatekey",
    ];
    EXACT.contains(&norm) || SUFFIXES.iter().any(|s| norm.ends_with(s))
}

impl Redactor {
    /// A redactor that truncates strings longer than `max` bytes.
    pub fn with_max_string_bytes(max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                secrets: RwLock::new(Vec::new()),
                extra_keys: RwLock::new(Vec::new()),
                has_secrets: AtomicBool::new(false),
                has_extra_keys: AtomicBool::new(false),
                max_string_bytes: max.max(64),
            }),
        }
    }

    /// Registers a secret value (an API key read from the environment, say) that
    /// must never appear in any event. Values shorter than 4 bytes are ignored.
    pub fn register_secret(&self, secret: impl Into<String>) {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        if let Ok(mut s) = self.inner.secrets.write()
            && !s.contains(&secret)
        {
            s.push(secret);
            // Longest first, so a secret containing another is replaced whole.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
            self.inner.has_secrets.store(true, Ordering::Release);
        }
    }

    /// Adds a key name whose values are always redacted (compared without case,
    /// `_`, `-` or `.`).
    pub fn register_sensitive_key(&self, key: &str) {
        if let Ok(mut k) = self.inner.extra_keys.write() {
            k.push(normalize_key(key));
            self.inner.has_extra_keys.store(true, Ordering::Release);
        }
    }

    /// Whether values under this key are redacted.
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        if !self.inner.has_extra_keys.load(Ordering::Acquire) && !may_be_builtin(key) {
            return false;
        }
        let mut buf = [0u8; FAST_KEY_LEN];
        let owned;
        let norm = match normalize_ascii(key, &mut buf) {
            Some(n) => n,
            None => {
                owned = normalize_key(key);
                owned.as_str()
            }
        };
        builtin_sensitive(norm)
            || (self.inner.has_extra_keys.load(Ordering::Acquire)
                && self
                    .inner
                    .extra_keys
                    .read()
                    .map(|k| k.iter().any(|x| x == norm))
                    .unwrap_or(false))
    }

    /// Runs `f` with the registered secrets, without copying them.
    fn with_secrets<R>(&self, f: impl FnOnce(&[String]) -> R) -> R {
        if !self.inner.has_secrets.load(Ordering::Acquire) {
            return f(&[]);
        }
        match self.inner.secrets.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Redacts a JSON value in place.
    pub fn redact_value(&self, value: &mut Value) {
        self.with_secrets(|secrets| self.walk(value, secrets));
    }

    /// Redacts every value of a JSON object in place.
    pub fn redact_map(&self, map: &mut Map<String, Value>) {
        self.with_secrets(|secrets| self.walk_map(map, secrets));
    }

    /// Returns the string with registered secrets replaced and its length bounded.
    pub fn redact_str(&self, s: &str) -> String {
        let mut out = s.to_owned();
        self.with_secrets(|secrets| self.scrub_string(&mut out, secrets));
        out
    }

    fn walk(&self, value: &mut Value, secrets: &[String]) {
        match value {
            Value::String(s) => self.scrub_string(s, secrets),
            Value::Array(items) => items.iter_mut().for_each(|v| self.walk(v, secrets)),
            Value::Object(map) => self.walk_map(map, secrets),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn walk_map(&self, map: &mut Map<String, Value>, secrets: &[String]) {
        for (key, v) in map.iter_mut() {
            if !v.is_null() && self.is_sensitive_key(key) {
                *v = Value::String(REDACTED.to_owned());
            } else {
                self.walk(v, secrets);
            }
        }
    }

    fn scrub_string(&self, s: &mut String, secrets: &[String]) {
        for secret in secrets {
            if s.contains(secret.as_str()) {
                *s = s.replace(secret.as_str(), REDACTED);
            }
        }
        let max = self.inner.max_string_bytes;
        if s.len() > max {
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            let dropped = s.len() - cut;
            s.truncate(cut);
            s.push_str(&format!("…[truncated {dropped} bytes]"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_keys_are_redacted_but_usage_counts_are_not() {
        let r = Redactor::default();
        let mut v = json!({
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k"},
            "OPENAI_API_KEY": "sk",
            "github_token": "t",
            "client_secret": "s",
            "password": "p",
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "max_tokens": 4},
            "tokenizer": "cl100k",
            "none": null,
        });
        r.redact_value(&mut v);
        assert_eq!(v["headers"]["Authorization"], REDACTED);
        assert_eq!(v["headers"]["X-Api-Key"], REDACTED);
        assert_eq!(v["OPENAI_API_KEY"], REDACTED);
        assert_eq!(v["github_token"], REDACTED);
        assert_eq!(v["client_secret"], REDACTED);
        assert_eq!(v["password"], REDACTED);
        assert_eq!(v["usage"]["total_tokens"], 3);
        assert_eq!(v["usage"]["max_tokens"], 4);
        assert_eq!(v["tokenizer"], "cl100k");
        assert_eq!(v["none"], Value::Null);
    }

    #[test]
    fn the_ending_check_never_hides_a_sensitive_name() {
        let r = Redactor::default();
        for key in [
            "authorization",
            "Proxy-Authorization",
            "cookie",
            "Set-Cookie",
            "password",
            "passwd",
            "passphrase",
            "secret",
            "credential",
            "credentials",
            "private_key",
            "token",
            "x-api-key",
            "AWS_SECRET_ACCESS_KEY",
            "refresh_token",
            "db_password",
            "client-secret",
            "secret_key",
            "access.key",
            "API_KEY_",
            "api key ",
            // U+212A KELVIN SIGN lowercases to an ASCII `k`.
            "api_\u{212A}ey",
        ] {
            assert!(r.is_sensitive_key(key), "{key} must be sensitive");
        }
        for key in [
            "delta",
            "chunk_index",
            "keys",
            "tokens",
            "session",
            "apikeys",
            "a",
            "",
        ] {
            assert!(!r.is_sensitive_key(key), "{key} must not be sensitive");
        }
    }

    #[test]
    fn registered_secrets_are_replaced_everywhere() {
        let r = Redactor::default();
        r.register_secret("hunter22");
        r.register_secret("ab"); // too short, ignored
        let mut v = json!(["say hunter22 twice hunter22", {"nested": ["ab hunter22"]}]);
        r.redact_value(&mut v);
        assert_eq!(
            v,
            json!(["say [REDACTED] twice [REDACTED]", {"nested": ["ab [REDACTED]"]}])
        );
    }

    #[test]
    fn long_strings_are_bounded_on_char_boundary() {
        let r = Redactor::with_max_string_bytes(64);
        let mut v = json!("é".repeat(100));
        r.redact_value(&mut v);
        let s = v.as_str().unwrap();
        assert!(s.starts_with("éé"));
        assert!(s.contains("[truncated"));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let r = Redactor::default();
        r.register_secret("sk-debug-leak-check");
        let shown = format!("{r:?}");
        assert!(!shown.contains("sk-debug-leak-check"), "{shown}");
        assert!(shown.contains("registered_secrets: 1"), "{shown}");
    }

    #[test]
    fn extra_keys() {
        let r = Redactor::default();
        r.register_sensitive_key("session-ticket");
        let mut v = json!({"session_ticket": "x"});
        r.redact_value(&mut v);
        assert_eq!(v["session_ticket"], REDACTED);
    }
}
