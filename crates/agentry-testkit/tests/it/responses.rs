//! Responses API protocol shapes.

use agentry_testkit::{MockServer, MockToolCall, Reply, Scenario};
use serde_json::{Value, json};

use crate::{data, event, frames, post, responses_body};

fn events(text: &str) -> Vec<(String, Value)> {
    frames(text)
        .iter()
        .map(|f| {
            let name = event(f).unwrap().to_owned();
            let payload: Value = serde_json::from_str(data(f).unwrap()).unwrap();
            assert_eq!(payload["type"], name.as_str(), "event name matches type");
            (name, payload)
        })
        .collect()
}

#[tokio::test]
async fn streamed_text_events() {
    let server =
        MockServer::start(Scenario::new().fallback(Reply::text("Hi there you").with_usage(8, 3)))
            .await
            .unwrap();
    let resp = post(&server, "/responses", responses_body("hello", true)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = resp.text().await.unwrap();
    assert!(!text.contains("[DONE]"));
    let evs = events(&text);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (_, e)) in evs.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
    }
    assert_eq!(evs[0].1["response"]["status"], "in_progress");
    assert_eq!(evs[0].1["response"]["model"], "gpt-test");
    let added = &evs[2].1;
    assert_eq!(added["item"]["type"], "message");
    assert_eq!(added["item"]["role"], "assistant");
    let item_id = added["item"]["id"].as_str().unwrap();
    let deltas: String = evs
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, e)| {
            assert_eq!(e["item_id"], item_id);
            assert_eq!(e["output_index"], 0);
            assert_eq!(e["content_index"], 0);
            e["delta"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(deltas, "Hi there you");
    assert_eq!(evs[7].1["text"], "Hi there you");
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert!(done["id"].as_str().unwrap().starts_with("resp_mock_"));
    assert_eq!(done["object"], "response");
    assert_eq!(done["usage"]["input_tokens"], 8);
    assert_eq!(done["usage"]["output_tokens"], 3);
    assert_eq!(done["usage"]["total_tokens"], 11);
    assert_eq!(done["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hi there you");
}

#[tokio::test]
async fn streamed_function_calls_and_reasoning() {
    let reply = Reply::tool_calls(vec![
        MockToolCall::new("call_a", "search", json!({"query": "rust async"})),
        MockToolCall::new("call_b", "open", json!({"url": "https://example.invalid"})),
    ])
    .with_reasoning("Need to search first.");
    let server = MockServer::start(Scenario::new().fallback(reply))
        .await
        .unwrap();
    let text = post(&server, "/responses", responses_body("find", true))
        .await
        .text()
        .await
        .unwrap();
    let evs = events(&text);

    let reasoning: String = evs
        .iter()
        .filter(|(n, _)| n == "response.reasoning_summary_text.delta")
        .map(|(_, e)| {
            assert_eq!(e["summary_index"], 0);
            e["delta"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(reasoning, "Need to search first.");
    assert!(
        !evs.iter().any(|(n, _)| n == "response.output_text.delta"),
        "no message item when the reply only calls tools"
    );

    let added: Vec<&Value> = evs
        .iter()
        .filter(|(n, e)| n == "response.output_item.added" && e["item"]["type"] == "function_call")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0]["item"]["call_id"], "call_a");
    assert_eq!(added[0]["item"]["name"], "search");
    assert_eq!(added[0]["item"]["arguments"], "");
    assert_eq!(added[0]["output_index"], 1);
    assert_eq!(added[1]["output_index"], 2);
    for (k, call) in added.iter().enumerate() {
        let item_id = call["item"]["id"].as_str().unwrap();
        let deltas: Vec<String> = evs
            .iter()
            .filter(|(n, e)| {
                n == "response.function_call_arguments.delta" && e["item_id"] == item_id
            })
            .map(|(_, e)| e["delta"].as_str().unwrap().to_owned())
            .collect();
        assert!(deltas.len() >= 2, "arguments are fragmented");
        let done = evs
            .iter()
            .find(|(n, e)| n == "response.function_call_arguments.done" && e["item_id"] == item_id)
            .unwrap();
        assert_eq!(done.1["arguments"], deltas.concat());
        let expected = [
            r#"{"query":"rust async"}"#,
            r#"{"url":"https://example.invalid"}"#,
        ][k];
        assert_eq!(deltas.concat(), expected);
    }
    let completed = &evs.last().unwrap().1;
    assert_eq!(completed["type"], "response.completed");
    let output = completed["response"]["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[0]["summary"][0]["text"], "Need to search first.");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["call_id"], "call_a");
    assert_eq!(output[1]["name"], "search");
    assert_eq!(output[1]["arguments"], r#"{"query":"rust async"}"#);
    assert_eq!(output[2]["call_id"], "call_b");
}

#[tokio::test]
async fn non_stream_response_object() {
    let reply =
        Reply::tool_calls(vec![MockToolCall::new("call_x", "f", json!({}))]).with_text("Calling.");
    let server = MockServer::start(Scenario::new().fallback(reply))
        .await
        .unwrap();
    let resp = post(&server, "/responses", responses_body("go", false)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["output"][0]["type"], "message");
    assert_eq!(body["output"][0]["content"][0]["text"], "Calling.");
    assert_eq!(body["output"][1]["type"], "function_call");
    assert_eq!(body["output"][1]["call_id"], "call_x");
    assert_eq!(body["output"][1]["arguments"], "{}");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
}
