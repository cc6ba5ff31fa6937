//! Dropping a stream closes the request's connection.
use std::time::Duration;

use agentry_model::{ModelProvider, OpenAiChat, OpenAiConfig, StreamEvent};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::ask;

fn chunk(data: &str) -> Vec<u8> {
    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = sock.read(&mut buf).await.unwrap();
        sock.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
        let frame = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
        sock.write_all(&chunk(frame)).await.unwrap();
        // The stream stays open from our side; the client must hang up.
        loop {
            match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    });
    let model = OpenAiChat::new(OpenAiConfig::new(format!("http://{addr}/v1"), "m")).unwrap();
    let mut stream = model.stream(ask("x"));
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, StreamEvent::TextDelta { text: "hi".into() });
    drop(stream);
    assert!(
        server.await.unwrap(),
        "connection closed after the stream was dropped"
    );
}
