//! Output contracts: rendering the schema into the prompt and reading the answer
//! back when the streaming parser cannot (a last-resort extraction).
use serde_json::Value;

/// The instruction appended to the system prompt when an output schema is set.
pub(crate) fn contract_instruction(schema: &Value) -> String {
    let rendered = serde_json::to_string_pretty(schema).unwrap_or_else(|_| schema.to_string());
    format!(
        "Your reply must be a single JSON value that conforms to the JSON Schema below. \
         Write only the JSON: no explanations before or after it.\n\nJSON Schema:\n{rendered}"
    )
}

/// Finds the JSON value in an answer: the whole text, a fenced block, or the span
/// from the first `{`/`[` to the matching last `}`/`]`.
pub(crate) fn extract_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Some(v);
    }
    if let Some(start) = trimmed.find("```") {
        let after = &trimmed[start + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(0);
        let body = &after[body_start..];
        if let Some(end) = body.find("```")
            && let Ok(v) = serde_json::from_str::<Value>(body[..end].trim())
        {
            return Some(v);
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(s), Some(e)) = (trimmed.find(open), trimmed.rfind(close))
            && s < e
            && let Ok(v) = serde_json::from_str::<Value>(&trimmed[s..=e])
        {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_from_fences_and_prose() {
        assert_eq!(extract_json("{\"a\":1}"), Some(json!({"a": 1})));
        assert_eq!(
            extract_json("Here:\n```json\n{\"a\":2}\n```\nbye"),
            Some(json!({"a": 2}))
        );
        assert_eq!(extract_json("sure {\"a\":3} ok"), Some(json!({"a": 3})));
        assert_eq!(extract_json("no json here"), None);
    }
}
