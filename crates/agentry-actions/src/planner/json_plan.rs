//! The JSON-plan protocol for models without native tool calls.
//!
//! The model is shown the available actions in a system message and answers with one
//! JSON object:
//! `{"next_action": "execute" | "response", "execution_commands": [{"purpose", "action_id", "action_input"}]}`.
//! Results of each round go back as a user message holding JSON. Parsing is lenient
//! about wrapping (code fences, prose around the object) and strict about meaning: a
//! command without an action id is dropped with a diagnostic, and text that holds no
//! JSON object ends planning with `action_runtime.json_plan.unparseable`.
use std::fmt::Write as _;

use agentry_core::{Diagnostic, Severity};
use agentry_model::{Message, ModelRequest, ToolSpec};
use serde_json::{Map, Value, json};

use super::Plan;
use crate::codes;
use crate::dispatch::PlannedCall;
use crate::record::ActionRecord;

/// The system text that explains the protocol and lists the actions.
pub fn system_prompt(tools: &[ToolSpec], round: u32, max_rounds: u32) -> String {
    let mut s = String::from(
        "Before you answer, you may run actions to look things up or to act. \
         Each of your replies in this phase must be exactly one JSON object and nothing else:\n\
         {\"next_action\": \"execute\" or \"response\", \
         \"execution_commands\": [{\"purpose\": \"why you run it\", \"action_id\": \"an id listed below\", \
         \"action_input\": {\"...\": \"arguments matching the action's input schema\"}}]}\n\
         Use \"execute\" with one or more commands to run actions now. All commands of one reply run in the \
         same round, so a command that needs another command's result belongs in a later reply. \
         Use \"response\" with an empty list once you can answer; you will then be asked for the answer itself. \
         Only the action ids listed below exist.\n\nActions:\n",
    );
    for t in tools {
        let _ = writeln!(
            s,
            "- {}: {}\n  input schema: {}",
            t.name, t.description, t.parameters
        );
    }
    let _ = write!(
        s,
        "\nThis is planning round {} of at most {}.",
        round + 1,
        max_rounds
    );
    s
}

/// The planning request: protocol system message, then the conversation.
pub fn request(
    messages: &[Message],
    tools: &[ToolSpec],
    round: u32,
    max_rounds: u32,
) -> ModelRequest {
    let mut all = Vec::with_capacity(messages.len() + 1);
    all.push(Message::system(system_prompt(tools, round, max_rounds)));
    all.extend_from_slice(messages);
    ModelRequest::new(all)
}

/// The user message reporting a round's results.
pub fn results_message(round: u32, records: &[ActionRecord]) -> Message {
    let results: Vec<Value> = records
        .iter()
        .filter(|r| r.expose_to_model)
        .map(|r| {
            let mut v = r.model_view();
            if let Some(o) = v.as_object_mut() {
                o.insert("purpose".into(), Value::String(r.purpose.clone()));
            }
            v
        })
        .collect();
    Message::user(format!(
        "Results of round {} (JSON):\n{}\nReply with the next JSON plan.",
        round + 1,
        Value::Array(results)
    ))
}

/// Finds the JSON object in a reply: the whole text, a fenced block, or the span from
/// the first `{` to the last `}`.
pub fn extract_object(text: &str) -> Option<Map<String, Value>> {
    let t = text.trim();
    let mut candidates = vec![t];
    if let Some(start) = t.find("```") {
        let rest = &t[start + 3..];
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        if let Some(end) = rest.find("```") {
            candidates.push(rest[..end].trim());
        }
    }
    if let (Some(a), Some(b)) = (t.find('{'), t.rfind('}'))
        && a < b
    {
        candidates.push(&t[a..=b]);
    }
    candidates
        .into_iter()
        .find_map(|c| match serde_json::from_str::<Value>(c) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
}

fn first<'a>(m: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| m.get(*k))
}

/// Parses a reply into a plan.
pub fn parse(text: &str) -> Plan {
    let assistant = Message::assistant(text);
    let mut diagnostics = Vec::new();
    let Some(obj) = extract_object(text) else {
        diagnostics.push(
            Diagnostic::new(
                codes::JSON_PLAN_UNPARSEABLE,
                Severity::Warning,
                "the planning reply holds no JSON object; planning ends",
            )
            .with_detail(json!({"planning_protocol": "json_plan", "reply_preview": text.chars().take(200).collect::<String>()})),
        );
        return Plan {
            calls: Vec::new(),
            diagnostics,
            assistant,
        };
    };
    let commands: Vec<Value> = match first(
        &obj,
        &[
            "execution_commands",
            "action_calls",
            "tool_commands",
            "commands",
        ],
    ) {
        Some(Value::Array(a)) => a.clone(),
        Some(v @ Value::Object(_)) => vec![v.clone()],
        _ => Vec::new(),
    };
    let next = first(&obj, &["next_action"])
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let execute = match next.as_deref() {
        Some("response") | Some("respond") | Some("answer") => false,
        _ => !commands.is_empty(),
    };
    let mut calls = Vec::new();
    if execute {
        for (i, c) in commands.iter().enumerate() {
            let id = c
                .as_object()
                .and_then(|m| first(m, &["action_id", "tool_name", "name"]))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let Some(id) = id else {
                diagnostics.push(
                    Diagnostic::new(
                        codes::JSON_PLAN_COMMAND_INVALID,
                        Severity::Warning,
                        "a command has no action_id; dropped",
                    )
                    .with_detail(json!({"command_index": i})),
                );
                continue;
            };
            let m = c.as_object();
            let input = m
                .and_then(|m| first(m, &["action_input", "tool_kwargs", "arguments", "input"]))
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            let purpose = m
                .and_then(|m| first(m, &["purpose"]))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            calls.push(PlannedCall::from_json_plan(id, input, purpose));
        }
    }
    Plan {
        calls,
        diagnostics,
        assistant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::PlannedArguments;

    #[test]
    fn parses_plain_and_fenced_plans() {
        let p = parse(
            r#"{"next_action":"execute","execution_commands":[{"purpose":"sum","action_id":"add","action_input":{"a":1}}]}"#,
        );
        assert_eq!(p.calls.len(), 1);
        assert_eq!(p.calls[0].purpose(), "sum");
        let p = parse(
            "Sure:\n```json\n{\"next_action\":\"execute\",\"execution_commands\":[{\"action_id\":\"add\"}]}\n```",
        );
        assert_eq!(p.calls[0].purpose(), "Use add");
        assert_eq!(p.calls[0].arguments(), &PlannedArguments::Json(json!({})));
    }

    #[test]
    fn response_ends_planning() {
        assert!(
            parse(r#"{"next_action":"response","execution_commands":[{"action_id":"x"}]}"#)
                .calls
                .is_empty()
        );
        let p = parse("I think the answer is 4");
        assert!(p.calls.is_empty());
        assert_eq!(p.diagnostics[0].code, codes::JSON_PLAN_UNPARSEABLE);
    }

    #[test]
    fn commands_without_ids_are_dropped() {
        let p = parse(r#"{"execution_commands":[{"purpose":"?"},{"action_id":"ok"}]}"#);
        assert_eq!(p.calls.len(), 1);
        assert_eq!(p.diagnostics[0].code, codes::JSON_PLAN_COMMAND_INVALID);
    }

    #[test]
    fn prompt_lists_actions() {
        let t = ToolSpec {
            name: "add".into(),
            description: "Adds.".into(),
            parameters: json!({"type":"object"}),
        };
        let s = system_prompt(&[t], 0, 10);
        assert!(s.contains("- add: Adds."));
        assert!(s.contains("round 1 of at most 10"));
    }
}
