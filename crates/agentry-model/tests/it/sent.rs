//! What the providers put on the wire.
use agentry_model::{Message, OutputSchema, ToolArguments, ToolCall, ToolChoice, ToolSpec};
use agentry_testkit::Reply;
use serde_json::json;

use crate::common::{Api, BOTH, ask, config, provider, run, serve};

fn tool() -> ToolSpec {
    ToolSpec {
        name: "search".into(),
        description: "Search the web".into(),
        parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
    }
}

#[tokio::test]
async fn tools_schema_and_options_are_sent() {
    for api in BOTH {
        let server = serve(Reply::text("ok")).await;
        let model = provider(api, config(&server).header("X-Team", "agents"));
        let mut req = ask("find things");
        req.tools.push(tool());
        req.tool_choice = Some(ToolChoice::Auto);
        req.output_schema = Some(OutputSchema {
            name: "answer".into(),
            schema: json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            strict: true,
        });
        req.temperature = Some(0.25);
        req.max_output_tokens = Some(64);
        req.extra.insert("seed".into(), json!(7));
        run(model.as_ref(), req).await.ok();
        let sent = &server.requests()[0];
        let b = &sent.body;
        assert_eq!(b["model"], "mock-model");
        assert_eq!(b["temperature"], 0.25);
        assert_eq!(b["seed"], 7);
        assert_eq!(b["tool_choice"], "auto");
        assert_eq!(sent.header("x-team"), Some("agents"));
        assert_eq!(sent.header("content-type"), Some("application/json"));
        assert!(sent.header("authorization").is_none(), "no key, no header");
        assert!(
            sent.header("user-agent")
                .is_some_and(|ua| ua.starts_with("agentry/"))
        );
        match api {
            Api::Chat => {
                assert_eq!(
                    b["messages"][0],
                    json!({"role": "system", "content": "You are terse."})
                );
                assert_eq!(b["tools"][0]["type"], "function");
                assert_eq!(b["tools"][0]["function"]["name"], "search");
                assert_eq!(
                    b["tools"][0]["function"]["parameters"]["required"],
                    json!(["q"])
                );
                assert_eq!(b["response_format"]["type"], "json_schema");
                assert_eq!(b["response_format"]["json_schema"]["name"], "answer");
                assert_eq!(b["response_format"]["json_schema"]["strict"], true);
                assert_eq!(b["max_tokens"], 64);
                assert_eq!(b["stream_options"], json!({"include_usage": true}));
            }
            Api::Responses => {
                assert_eq!(b["instructions"], "You are terse.");
                assert_eq!(b["input"][0]["role"], "user");
                assert_eq!(b["tools"][0]["name"], "search");
                assert_eq!(b["tools"][0]["type"], "function");
                assert_eq!(b["text"]["format"]["type"], "json_schema");
                assert_eq!(b["text"]["format"]["schema"]["type"], "object");
                assert_eq!(b["max_output_tokens"], 64);
            }
        }
    }
}

#[tokio::test]
async fn authorization_only_with_a_key() {
    for api in BOTH {
        let server = serve(Reply::text("ok")).await;
        let model = provider(api, config(&server).api_key("sk-abc-123456"));
        run(model.as_ref(), ask("x")).await.ok();
        assert_eq!(
            server.requests()[0].header("authorization"),
            Some("Bearer sk-abc-123456")
        );
        // The key is not in Debug output of the provider.
        assert!(!format!("{model:?}").contains("sk-abc-123456"));
    }
}

#[tokio::test]
async fn conversation_with_tool_results_round_trips() {
    for api in BOTH {
        let server = serve(Reply::text("done")).await;
        let model = provider(api, config(&server));
        let mut req = ask("add 1 and 2");
        req.tools.push(tool());
        req.messages.push(Message::Assistant {
            content: None,
            tool_calls: vec![ToolCall {
                id: "call_9".into(),
                name: "search".into(),
                arguments: ToolArguments::Json(json!({"q": "1+2"})),
            }],
        });
        req.messages.push(Message::tool_result("call_9", "3"));
        run(model.as_ref(), req).await.ok();
        let b = &server.requests()[0].body;
        match api {
            Api::Chat => {
                let m = &b["messages"];
                assert_eq!(
                    m[2]["tool_calls"][0]["function"]["arguments"],
                    "{\"q\":\"1+2\"}"
                );
                assert_eq!(
                    m[3],
                    json!({"role": "tool", "tool_call_id": "call_9", "content": "3"})
                );
            }
            Api::Responses => {
                let input = &b["input"];
                assert_eq!(input[1]["type"], "function_call");
                assert_eq!(input[1]["call_id"], "call_9");
                assert_eq!(
                    input[2],
                    json!({"type": "function_call_output", "call_id": "call_9", "output": "3"})
                );
            }
        }
    }
}

#[tokio::test]
async fn include_usage_can_be_turned_off() {
    let server = serve(Reply::text("ok")).await;
    let model = provider(Api::Chat, config(&server).include_usage(false));
    run(model.as_ref(), ask("x")).await.ok();
    assert!(server.requests()[0].body.get("stream_options").is_none());
}
