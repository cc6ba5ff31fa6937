use agentry_actions::*;
use agentry_model::Message;

use crate::common::*;

fn json_opts() -> LoopOptions {
    LoopOptions {
        protocol: PlanningProtocol::JsonPlan,
        ..Default::default()
    }
}

#[tokio::test]
async fn json_plan_round_trip() {
    let env = Env::new();
    let script = Script::new(vec![
        r(text(
            r#"{"next_action":"execute","execution_commands":[{"purpose":"sum it","action_id":"add","action_input":{"a":2,"b":3}},{"action_id":"add","action_input":{"a":1,"b":1,"c":9}}]}"#,
        )),
        r(text(
            "```json\n{\"next_action\":\"response\",\"execution_commands\":[]}\n```",
        )),
        r(text("2+3 is 5")),
    ]);
    let out = lp_with(registry(vec![add_action()]), json_opts())
        .run(env.input(&script, "What is 2+3?"))
        .await
        .unwrap();
    assert_eq!(out.rounds, 1);
    assert_eq!(out.records.len(), 2);
    assert_eq!(out.records[0].purpose, "sum it");
    assert_eq!(out.records[1].purpose, "Use add");
    assert_eq!(out.records[0].source, CallSource::JsonPlan);
    assert!(out.records[1].has_diagnostic(codes::UNEXPECTED_KEYS_STRIPPED));
    let reqs = script.requests();
    // Planning requests: protocol system message, no native tools.
    assert!(reqs[0].1.tools.is_empty());
    assert!(
        matches!(&reqs[0].1.messages[0], Message::System { content } if content.contains("- add: Adds two integers."))
    );
    // Round results come back as a user message with JSON.
    let Message::User { content } = reqs[1].1.messages.last().unwrap() else {
        panic!()
    };
    assert!(content.contains("\"data\":5"), "{content}");
    // The answer request asks for prose, not a plan, and has no protocol system message.
    assert_eq!(reqs[2].0, CallPurpose::Answer);
    assert!(!matches!(&reqs[2].1.messages[0], Message::System { .. }));
    assert!(
        matches!(reqs[2].1.messages.last().unwrap(), Message::User { content } if content.contains("final answer"))
    );
    assert_eq!(out.final_response.text, "2+3 is 5");
}

#[tokio::test]
async fn unparseable_plan_ends_planning_with_a_note() {
    let env = Env::new();
    let script = Script::new(vec![r(text("I would rather just chat.")), r(text("hello"))]);
    let out = lp_with(registry(vec![add_action()]), json_opts())
        .run(env.input(&script, "hi"))
        .await
        .unwrap();
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].status, ActionStatus::Skipped);
    assert_eq!(
        out.records[0].error_code(),
        Some(codes::JSON_PLAN_UNPARSEABLE)
    );
    assert_eq!(out.final_response.text, "hello");
}

#[tokio::test]
async fn json_plan_hallucinated_action() {
    let env = Env::new();
    let script = Script::new(vec![
        r(text(
            r#"{"next_action":"execute","execution_commands":[{"action_id":"fly","action_input":{}},{"purpose":"no id"}]}"#,
        )),
        r(text(r#"{"next_action":"response"}"#)),
    ]);
    let out = lp_with(registry(vec![add_action()]), json_opts())
        .run(env.input(&script, "hi"))
        .await
        .unwrap();
    assert_eq!(out.records[0].error_code(), Some(codes::UNKNOWN_ACTION));
    assert!(
        out.diagnostics
            .iter()
            .any(|d| d.code == codes::JSON_PLAN_COMMAND_INVALID)
    );
}
