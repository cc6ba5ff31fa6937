//! Every fault, observed from the client side.

use std::io;
use std::time::{Duration, Instant};

use agentry_testkit::{Fault, MockServer, Reply, Rule, Scenario};
use serde_json::{Value, json};

use crate::{
    chat_body, client, data, frames, json_frames, post, raw_exchange, raw_post, responses_body,
};

async fn server_with(reply: Reply) -> MockServer {
    MockServer::start(Scenario::new().fallback(reply))
        .await
        .unwrap()
}

fn is_reset(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::ConnectionReset
}

/// Walks the source chain of a reqwest error looking for an I/O error of `kind`.
fn has_io_kind(error: &(dyn std::error::Error + 'static), kind: io::ErrorKind) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == kind
        {
            return true;
        }
        current = e.source();
    }
    false
}

#[tokio::test]
async fn reset_before_first_token_really_resets() {
    let server = server_with(Reply::text("never").fault(Fault::ResetBeforeFirstToken)).await;
    let (got, error) = raw_exchange(
        server.addr(),
        &raw_post("/v1/chat/completions", &chat_body("x", true)),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(got, "", "no response byte before the reset");
    let error = error.expect("a reset, not a clean close");
    assert!(is_reset(&error), "got {error:?}");

    let error = client()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat_body("x", false))
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_timeout());
    assert!(
        has_io_kind(&error, io::ErrorKind::ConnectionReset),
        "got {error:?}"
    );
    assert_eq!(server.request_count(), 2, "faulted requests are recorded");
}

#[tokio::test]
async fn reset_after_chunks_sends_exactly_n_frames_then_resets() {
    let server =
        server_with(Reply::text("one two three four five").fault(Fault::ResetAfterChunks(3))).await;
    for (path, body) in [
        ("/v1/chat/completions", chat_body("x", true)),
        ("/v1/responses", responses_body("x", true)),
    ] {
        let (got, error) = raw_exchange(
            server.addr(),
            &raw_post(path, &body),
            Duration::from_secs(5),
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        let data_lines = got.lines().filter(|l| l.starts_with("data: ")).count();
        assert_eq!(data_lines, 3, "{path}: {got}");
        assert!(!got.contains("[DONE]"));
        assert!(!got.contains("0\r\n\r\n"), "no terminating chunk");
        let error = error.expect("a reset");
        assert!(is_reset(&error), "{path}: got {error:?}");
    }

    // Through reqwest: the frames arrive, then the body errors.
    let mut resp = post(&server, "/chat/completions", chat_body("x", true)).await;
    assert_eq!(resp.status(), 200);
    let mut received = String::new();
    let error = loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => received.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(None) => panic!("stream ended cleanly instead of resetting"),
            Err(e) => break e,
        }
    };
    assert_eq!(frames(&received).len(), 3);
    assert!(
        error.is_body() || error.is_decode() || error.is_request(),
        "{error:?}"
    );
}

#[tokio::test]
async fn http_status_faults() {
    let server = MockServer::start(
        Scenario::new()
            .rule(Rule::when_user_contains("429").reply(Reply::failing(Fault::status(429))))
            .rule(Rule::when_user_contains("retry").reply(Reply::failing(Fault::rate_limited(2))))
            .rule(Rule::when_user_contains("custom").reply(Reply::failing(Fault::HttpStatus {
                status: 400,
                body: r#"{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":null}}"#.into(),
            })))
            .fallback(Reply::failing(Fault::status(500))),
    )
    .await
    .unwrap();

    let resp = post(&server, "/chat/completions", chat_body("429", true)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    let resp = post(&server, "/responses", responses_body("retry", true)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");

    let resp = post(&server, "/chat/completions", chat_body("custom", false)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "messages");

    let resp = post(&server, "/chat/completions", chat_body("other", false)).await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
}

#[tokio::test]
async fn times_lets_the_retry_succeed() {
    let server = MockServer::start(
        Scenario::new()
            .rule(
                Rule::always()
                    .times(1)
                    .reply(Reply::failing(Fault::status(503))),
            )
            .fallback(Reply::text("recovered")),
    )
    .await
    .unwrap();
    let first = post(&server, "/chat/completions", chat_body("x", false)).await;
    assert_eq!(first.status(), 503);
    let second: Value = post(&server, "/chat/completions", chat_body("x", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], "recovered");
}

#[tokio::test]
async fn malformed_chunk_inside_valid_stream() {
    let server = server_with(Reply::text("a b c").fault(Fault::MalformedChunk)).await;
    let text = post(&server, "/chat/completions", chat_body("x", true))
        .await
        .text()
        .await
        .unwrap();
    let all = frames(&text);
    assert_eq!(all[1], "data: {broken json");
    let broken: Vec<&String> = all
        .iter()
        .filter(|f| {
            data(f).is_some_and(|d| d != "[DONE]" && serde_json::from_str::<Value>(d).is_err())
        })
        .collect();
    assert_eq!(broken.len(), 1, "exactly one malformed frame");
    assert_eq!(all.last().unwrap(), "data: [DONE]");

    let text = post(&server, "/responses", responses_body("x", true))
        .await
        .text()
        .await
        .unwrap();
    let all = frames(&text);
    assert_eq!(
        all[1],
        "event: response.output_text.delta\ndata: {broken json"
    );
    assert!(all.last().unwrap().starts_with("event: response.completed"));

    let resp = post(&server, "/chat/completions", chat_body("x", false)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.json::<Value>().await.is_err(),
        "non-stream body is broken JSON"
    );
}

#[tokio::test]
async fn html_instead_of_api_answer() {
    let server = server_with(Reply::failing(Fault::Html)).await;
    for (endpoint, body) in [
        ("/chat/completions", chat_body("x", true)),
        ("/responses", responses_body("x", false)),
    ] {
        let resp = post(&server, endpoint, body).await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(resp.text().await.unwrap().contains("<html>"));
    }
}

#[tokio::test]
async fn hang_really_hangs_and_shutdown_releases_it() {
    let server = server_with(Reply::text("never").fault(Fault::Hang)).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = quick
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat_body("x", true))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    // A raw socket sees nothing, and the connection stays open until shutdown closes it.
    let addr = server.addr();
    let raw = tokio::spawn(async move {
        raw_exchange(
            addr,
            &raw_post("/v1/responses", &responses_body("x", true)),
            Duration::from_secs(10),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!raw.is_finished(), "hung connection is still open");
    assert_eq!(server.request_count(), 2);
    server.shutdown().await;
    let (got, _) = raw.await.unwrap();
    assert_eq!(got, "");
}

#[tokio::test]
async fn hang_after_chunks_goes_silent() {
    let server =
        server_with(Reply::text("one two three four").fault(Fault::HangAfterChunks(2))).await;
    let mut resp = post(&server, "/chat/completions", chat_body("x", true)).await;
    assert_eq!(resp.status(), 200);
    let mut received = String::new();
    while frames(&received).len() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(frames(&received).len(), 2);
    let idle = tokio::time::timeout(Duration::from_millis(300), resp.chunk()).await;
    assert!(idle.is_err(), "stream went idle after two chunks");
}

#[tokio::test]
async fn keep_alive_only_sends_comments_never_data() {
    let server = server_with(Reply::text("never").fault(Fault::KeepAliveOnly)).await;
    let mut resp = post(&server, "/chat/completions", chat_body("x", true)).await;
    assert_eq!(resp.status(), 200);
    let mut received = String::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(400) {
        match tokio::time::timeout(Duration::from_millis(100), resp.chunk()).await {
            Ok(Ok(Some(bytes))) => received.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Ok(None)) => panic!("keep-alive stream ended"),
            Ok(Err(error)) => panic!("keep-alive stream failed: {error:?}"),
            Err(_) => {}
        }
    }
    let comments = frames(&received);
    assert!(
        comments.len() >= 2,
        "several keep-alive comments: {received:?}"
    );
    assert!(comments.iter().all(|f| f == ": keep-alive"));
    assert!(!received.contains("data:"));
}

#[tokio::test]
async fn truncated_stream_ends_cleanly_without_done() {
    let server =
        server_with(Reply::text("partial answer here").fault(Fault::TruncatedStream)).await;
    let mut body = chat_body("x", true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = post(&server, "/chat/completions", body).await;
    assert_eq!(resp.headers()["connection"], "close");
    let text = resp.text().await.expect("the body ends cleanly");
    let chunks = json_frames(&text);
    assert!(!text.contains("[DONE]"));
    assert!(!chunks.is_empty());
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    assert!(chunks.iter().all(|c| c["usage"].is_null()));

    let text = post(&server, "/responses", responses_body("x", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("response.output_text.delta"));
    assert!(!text.contains("response.completed"));

    let resp = post(&server, "/chat/completions", chat_body("x", false)).await;
    assert!(
        resp.json::<Value>().await.is_err(),
        "non-stream body is cut"
    );
}

#[tokio::test]
async fn unknown_fields_on_every_chunk() {
    let server = server_with(Reply::text("a b").fault(Fault::UnknownFields)).await;
    let text = post(&server, "/chat/completions", chat_body("x", true))
        .await
        .text()
        .await
        .unwrap();
    let chunks = json_frames(&text);
    assert!(chunks.iter().all(|c| c["x_mock_unknown"].is_object()));
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["delta"]["x_mock_delta_extra"].is_string())
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "a b");
    assert!(text.ends_with("data: [DONE]\n\n"));

    let text = post(&server, "/responses", responses_body("x", true))
        .await
        .text()
        .await
        .unwrap();
    let payloads: Vec<Value> = frames(&text)
        .iter()
        .map(|f| serde_json::from_str(data(f).unwrap()).unwrap())
        .collect();
    assert!(payloads.iter().all(|p| p["x_mock_unknown"].is_object()));
    assert!(
        payloads
            .iter()
            .any(|p| p["type"] == "response.x_mock_unknown_event")
    );

    let body: Value = post(&server, "/chat/completions", chat_body("x", false))
        .await
        .json()
        .await
        .unwrap();
    assert!(body["x_mock_unknown"].is_object());
    assert_eq!(body["choices"][0]["message"]["content"], "a b");
}

#[tokio::test]
async fn non_stream_reset_and_hang_after_chunks_cut_the_body() {
    let server = MockServer::start(
        Scenario::new()
            .rule(
                Rule::when_user_contains("reset")
                    .reply(Reply::text("x y z").fault(Fault::ResetAfterChunks(1))),
            )
            .rule(
                Rule::when_user_contains("hang")
                    .reply(Reply::text("x y z").fault(Fault::HangAfterChunks(1))),
            ),
    )
    .await
    .unwrap();
    let (got, error) = raw_exchange(
        server.addr(),
        &raw_post("/v1/chat/completions", &chat_body("reset", false)),
        Duration::from_secs(5),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200 OK"));
    assert!(got.contains("{\"id\""), "part of the body arrived: {got}");
    assert!(is_reset(&error.unwrap()));

    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let resp = quick
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat_body("hang", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.unwrap_err().is_timeout());
}

#[tokio::test]
async fn delays_pace_the_stream() {
    let server = server_with(
        Reply::text("a b c")
            .first_token_delay(Duration::from_millis(150))
            .chunk_delay(Duration::from_millis(30)),
    )
    .await;
    let started = Instant::now();
    let mut resp = post(&server, "/chat/completions", chat_body("x", true)).await;
    let mut first_frame_at = None;
    let mut text = String::new();
    while let Some(bytes) = resp.chunk().await.unwrap() {
        first_frame_at.get_or_insert_with(|| started.elapsed());
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    let total = started.elapsed();
    assert!(first_frame_at.unwrap() >= Duration::from_millis(150));
    // Six frames (role, three words, finish, [DONE]): five chunk delays after the first frame.
    assert!(total >= Duration::from_millis(150 + 5 * 30), "{total:?}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}
