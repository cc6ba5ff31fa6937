//! Small deserialization helpers shared by the wire decoders.
//!
//! Servers that call themselves OpenAI-compatible disagree on details (content as
//! a string or as an array of parts, arguments as a string or an object, fields
//! that are sometimes `null`). These helpers accept the variants instead of failing
//! the whole chunk, so only data that is really not JSON becomes a protocol error.
use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;

/// A string borrowed from the input when it has no escapes. Used for ids, model
/// names and finish reasons that arrive in every chunk but are kept only once.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Text<'_> {
    /// The text, owned.
    pub(crate) fn into_string(self) -> String {
        self.0.into_owned()
    }
}

/// Text from a value that should be a string: strings as is, arrays of content
/// parts (`[{"type":"text","text":…}]`) joined, `null` and anything else dropped.
pub(crate) fn text_of(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Value::String(s) => out.push_str(&s),
                    Value::Object(map) => {
                        if let Some(Value::String(s)) = map.get("text") {
                            out.push_str(s);
                        }
                    }
                    _ => {}
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// Tool-call arguments as text: strings as is, JSON objects re-encoded, `null` empty.
pub(crate) fn arguments_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Deserializes only the first element of an array (and `null` as `None`) without
/// allocating a vector; providers send one choice because we ask for one.
pub(crate) fn first_of<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct First<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for First<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array or null")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<T>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    deserializer.deserialize_any(First(std::marker::PhantomData))
}

/// An unsigned count that tolerates `null`, floats and negative noise.
pub(crate) fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    })
}

/// A short excerpt of data that failed to parse, for protocol errors.
pub(crate) fn data_excerpt(data: &str) -> String {
    crate::http::bound_chars(data.trim(), 80)
}

/// Text that should be a string, without building a `Value` on the common path:
/// strings as is, arrays of content parts joined, `null` and other shapes `None`.
pub(crate) fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;

    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("text")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            let parts = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Ok(text_of(parts))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IgnoredAny::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok(None)
        }
    }

    d.deserialize_any(V)
}

/// Tool-call arguments: a string as is; an object or array (some servers send
/// parsed arguments) re-encoded as JSON text; `null` as `None`.
pub(crate) fn lenient_arguments<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Option::<ArgumentsValue>::deserialize(d)? {
        Some(ArgumentsValue(Value::Null)) | None => None,
        Some(ArgumentsValue(v)) => Some(arguments_of(v)),
    })
}

/// A `Value` that takes strings without the generic `Value` visitor detour.
struct ArgumentsValue(Value);

impl<'de> Deserialize<'de> for ArgumentsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(ArgumentsValue)
    }
}
