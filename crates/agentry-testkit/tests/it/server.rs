//! Server behaviour: routing, recording, rules, keep-alive, concurrency, shutdown.

use std::time::Duration;

use agentry_testkit::{Fault, MockServer, MockToolCall, Reply, Rule, Scenario};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{chat_body, client, frames, json_frames, post, raw_exchange, responses_body};

#[tokio::test]
async fn models_list_and_errors_for_unknown_paths() {
    let server = MockServer::start(Scenario::new()).await.unwrap();
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    assert!(server.base_url().ends_with("/v1"));
    assert!(server.addr().ip().is_loopback());
    assert_ne!(server.addr().port(), 0);

    let resp = client()
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["id"], "mock-model");
    assert_eq!(body["data"][0]["object"], "model");

    let resp = post(&server, "/embeddings", json!({"input": "x"})).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].is_string());

    let resp = client()
        .get(format!("{}/chat/completions", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);

    // Clients that drop the /v1 prefix still reach the endpoints.
    let body: Value = client()
        .post(format!("http://{}/chat/completions", server.addr()))
        .json(&chat_body("x", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "mock answer");
    assert_eq!(server.request_count(), 4);
}

#[tokio::test]
async fn records_every_request_with_headers_and_body() {
    let server = MockServer::start(Scenario::new()).await.unwrap();
    let body = json!({
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hello"}],
        "tools": [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    });
    client()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("sk-secret")
        .header("X-Trace", "t-1")
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    client()
        .post(format!("{}/responses?debug=1", server.base_url()))
        .body("not json")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.header("Authorization"), Some("Bearer sk-secret"));
    assert_eq!(first.header("x-trace"), Some("t-1"));
    assert_eq!(first.body, body);
    assert_eq!(first.tool_names(), ["get_time"]);
    assert_eq!(first.last_user_message().as_deref(), Some("hello"));
    assert_eq!(first.model(), Some("gpt-test"));
    let second = &requests[1];
    assert_eq!(second.path, "/v1/responses?debug=1");
    assert_eq!(second.path_without_query(), "/v1/responses");
    assert_eq!(second.body, Value::Null);
    assert_eq!(second.raw_body, "not json");
}

#[tokio::test]
async fn tool_loop_rules_for_chat_and_responses() {
    let scenario = Scenario::new()
        .rule(Rule::when_tool_results().reply(Reply::text("It is sunny.")))
        .rule(
            Rule::when_user_contains("weather")
                .and(Rule::when_no_tool_results())
                .reply(Reply::tool_calls(vec![MockToolCall::new(
                    "call_w",
                    "weather",
                    json!({"city": "Oslo"}),
                )])),
        )
        .fallback(Reply::text("no idea"));
    let server = MockServer::start(scenario).await.unwrap();

    let first: Value = post(
        &server,
        "/chat/completions",
        chat_body("weather in Oslo?", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        first["choices"][0]["message"]["tool_calls"][0]["id"],
        "call_w"
    );
    let second: Value = post(
        &server,
        "/chat/completions",
        json!({"model": "m", "messages": [
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": first["choices"][0]["message"]["tool_calls"]},
            {"role": "tool", "tool_call_id": "call_w", "content": "sunny"}
        ]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], "It is sunny.");

    let first: Value = post(
        &server,
        "/responses",
        json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(first["output"][0]["type"], "function_call");
    let second: Value = post(
        &server,
        "/responses",
        json!({"model": "m", "input": [
            {"role": "user", "content": "weather?"},
            first["output"][0],
            {"type": "function_call_output", "call_id": "call_w", "output": "sunny"}
        ]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(second["output"][0]["content"][0]["text"], "It is sunny.");

    let other: Value = post(&server, "/chat/completions", chat_body("stocks?", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["choices"][0]["message"]["content"], "no idea");
}

#[tokio::test]
async fn path_rules_json_object_and_raw_sse() {
    let server = MockServer::start(
        Scenario::new()
            .rule(
                Rule::when_path("/v1/embeddings")
                    .reply(Reply::json_object(json!({"data": [{"embedding": [0.5]}]}))),
            )
            .rule(Rule::when_path("/v1/models").reply(Reply::failing(Fault::status(401))))
            .rule(
                Rule::when_user_contains("raw")
                    .reply(Reply::raw_sse(["data: {\"custom\":1}", "data: [DONE]"])),
            )
            .rule(
                Rule::when(|r| r.header("x-mode") == Some("json"))
                    .reply(Reply::json_object(json!({"fixed": true}))),
            ),
    )
    .await
    .unwrap();
    let body: Value = post(&server, "/embeddings", json!({"input": "x"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"][0]["embedding"][0], 0.5);
    let resp = client()
        .get(format!("{}/models", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let text = post(&server, "/chat/completions", chat_body("raw please", true))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text, "data: {\"custom\":1}\n\ndata: [DONE]\n\n");
    let body: Value = client()
        .post(format!("{}/responses", server.base_url()))
        .header("x-mode", "json")
        .json(&responses_body("x", true))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"fixed": true}));
}

/// Reads one HTTP response (Content-Length or chunked) from a raw stream; returns head and body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (String, String) {
    async fn more(stream: &mut TcpStream, buf: &mut Vec<u8>) {
        let mut tmp = [0u8; 4096];
        let n = stream.read(&mut tmp).await.unwrap();
        assert!(n > 0, "unexpected EOF");
        buf.extend_from_slice(&tmp[..n]);
    }
    let find = |buf: &[u8], pat: &[u8]| buf.windows(pat.len()).position(|w| w == pat);
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p;
        }
        more(stream, buf).await;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    buf.drain(..head_end + 4);
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if lower.contains("transfer-encoding: chunked") {
        loop {
            let line_end = loop {
                if let Some(p) = find(buf, b"\r\n") {
                    break p;
                }
                more(stream, buf).await;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                more(stream, buf).await;
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
    } else {
        let length: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        while buf.len() < length {
            more(stream, buf).await;
        }
        body.extend(buf.drain(..length));
    }
    (head, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn keep_alive_pipelining_and_chunked_request_bodies() {
    let server = MockServer::start(
        Scenario::new().rule(Rule::when_user_contains("second").reply(Reply::text("two"))),
    )
    .await
    .unwrap();
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let first = chat_body("first", true).to_string();
    let second = chat_body("second", false).to_string();
    // Two pipelined requests: one Content-Length body, one chunked body split in two chunks.
    let (a, b) = second.split_at(10);
    let wire = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{first}\
         POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        first.len(),
        a.len(),
        b.len()
    );
    stream.write_all(wire.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (head, body) = read_response(&mut stream, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"));
    assert!(!head.to_ascii_lowercase().contains("connection: close"));
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert_eq!(
        json_frames(&body)[1]["choices"][0]["delta"]["content"],
        "mock"
    );
    let (_, body) = read_response(&mut stream, &mut buf).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "two");
    assert_eq!(
        server.requests()[1].last_user_message().as_deref(),
        Some("second")
    );

    // A third request on the same connection, asking to close afterwards.
    stream
        .write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut stream, &mut buf).await;
    assert!(head.to_ascii_lowercase().contains("connection: close"));
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(server.request_count(), 3);
}

#[tokio::test]
async fn malformed_request_gets_400() {
    let server = MockServer::start(Scenario::new()).await.unwrap();
    let (got, _) = raw_exchange(
        server.addr(),
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_and_atomic_times() {
    let server = MockServer::start(
        Scenario::new()
            .rule(
                Rule::always()
                    .times(5)
                    .reply(Reply::failing(Fault::status(503))),
            )
            .fallback(Reply::text("streamed answer with several words")),
    )
    .await
    .unwrap();
    let client = client();
    let url = format!("{}/chat/completions", server.base_url());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let client = client.clone();
        let url = url.clone();
        tasks.spawn(async move {
            let resp = client
                .post(&url)
                .json(&chat_body(&format!("q{i}"), true))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (status, text)
        });
    }
    let mut failures = 0;
    let mut successes = 0;
    while let Some(result) = tasks.join_next().await {
        let (status, text) = result.unwrap();
        if status == 503 {
            failures += 1;
        } else {
            assert_eq!(status, 200);
            assert!(text.ends_with("data: [DONE]\n\n"));
            assert_eq!(frames(&text).len(), 1 + 5 + 1 + 1);
            successes += 1;
        }
    }
    assert_eq!(
        failures, 5,
        "times(5) is honoured exactly under concurrency"
    );
    assert_eq!(successes, 295);
    assert_eq!(server.request_count(), 300);
}

#[tokio::test]
async fn slow_streams_do_not_block_other_connections() {
    let server = MockServer::start(
        Scenario::new()
            .rule(
                Rule::when_user_contains("slow")
                    .reply(Reply::text("x").first_token_delay(Duration::from_secs(5))),
            )
            .rule(Rule::when_user_contains("hang").reply(Reply::failing(Fault::Hang))),
    )
    .await
    .unwrap();
    let url = format!("{}/chat/completions", server.base_url());
    let slow = tokio::spawn(client().post(&url).json(&chat_body("slow", true)).send());
    let hang = tokio::spawn(client().post(&url).json(&chat_body("hang", false)).send());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let quick = tokio::time::timeout(Duration::from_secs(2), async {
        post(&server, "/chat/completions", chat_body("fast", false))
            .await
            .json::<Value>()
            .await
            .unwrap()
    })
    .await
    .expect("a fast request is not blocked by slow or hung ones");
    assert_eq!(quick["choices"][0]["message"]["content"], "mock answer");
    slow.abort();
    hang.abort();
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_server() {
    let server = MockServer::start(Scenario::new()).await.unwrap();
    let addr = server.addr();
    post(&server, "/chat/completions", chat_body("x", false))
        .await
        .bytes()
        .await
        .unwrap();
    server.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );

    let server = MockServer::start(Scenario::new()).await.unwrap();
    let addr = server.addr();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener closed after drop"
    );
}

/// A blocking HTTP exchange with std sockets, as a CLI subprocess or a sync test would do.
fn blocking_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).unwrap();
    got
}

#[test]
fn start_blocking_serves_synchronous_tests() {
    let server =
        MockServer::start_blocking(Scenario::new().fallback(Reply::text("sync ok"))).unwrap();
    let got = blocking_exchange(
        server.addr(),
        &crate::raw_post("/v1/chat/completions", &chat_body("x", false)),
    );
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.contains("sync ok"));
    assert_eq!(server.request_count(), 1);
    let addr = server.addr();
    drop(server);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "dropped server stops listening"
    );
}

#[tokio::test]
async fn start_blocking_answers_while_a_current_thread_test_blocks() {
    let server = MockServer::start_blocking(Scenario::new()).unwrap();
    // This blocks the only runtime thread; a server started with `start` here could not answer.
    let got = blocking_exchange(
        server.addr(),
        &crate::raw_post("/v1/responses", &responses_body("x", true)),
    );
    assert!(got.contains("event: response.completed"));
    // The async API works from this runtime too.
    let body: Value = post(&server, "/chat/completions", chat_body("x", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "mock answer");
    let addr = server.addr();
    server.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}
