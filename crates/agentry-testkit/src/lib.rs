//! Test helpers for Agentry: a mock OpenAI-compatible HTTP server driven by scenarios, with injectable
//! faults.
//!
//! Tests across the project talk to [`MockServer`] instead of a real model server, so `cargo test` never
//! reaches the network. The server speaks real HTTP/1.1 on `127.0.0.1` with an ephemeral port, streams
//! exactly in OpenAI's shapes (chat completions `chat.completion.chunk` frames ending in `data: [DONE]`,
//! and Responses API `event:`/`data:` frames ending in `response.completed`), and injects faults
//! precisely: TCP resets before or after a given number of chunks, error statuses, malformed or
//! truncated streams, HTML pages, hangs and keep-alive-only streams.
//!
//! Endpoints:
//! - `POST /v1/chat/completions` and `POST /v1/responses` answer from the [`Scenario`] (streamed when the
//!   body has `"stream": true`);
//! - `GET /v1/models` lists `mock-model` and `mock-reasoning-model`;
//! - anything else answers 404 with an OpenAI-style JSON error, unless a [`Rule::when_path`] rule says
//!   otherwise. The `/v1` prefix is optional.
//!
//! Every request is recorded before it is answered (faulted ones too); see [`MockServer::requests`].
#![deny(missing_docs)]

mod http;
mod render;
mod request;
mod scenario;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use request::RecordedRequest;
pub use scenario::{
    Fault, MockToolCall, Reply, RequestPredicate, Rule, Scenario, openai_error_body,
};

/// A running mock OpenAI-compatible server on `127.0.0.1` with an ephemeral port.
///
/// Each connection is served by its own task, so delays and hangs on one request never block others;
/// connections are kept alive across requests like a real server. The server stops when
/// [`MockServer::shutdown`] is awaited or the value is dropped; both close every open connection
/// (hung ones included).
///
/// ```
/// use agentry_testkit::{MockServer, Reply, Rule, Scenario};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let scenario = Scenario::new()
///     .rule(Rule::when_user_contains("weather").reply(Reply::text("Sunny and warm.")));
/// let server = MockServer::start(scenario).await?;
///
/// let answer: serde_json::Value = reqwest::Client::new()
///     .post(format!("{}/chat/completions", server.base_url()))
///     .bearer_auth("test-key")
///     .json(&serde_json::json!({
///         "model": "mock-model",
///         "messages": [{"role": "user", "content": "How is the weather?"}]
///     }))
///     .send()
///     .await?
///     .json()
///     .await?;
/// assert_eq!(answer["choices"][0]["message"]["content"], "Sunny and warm.");
///
/// let sent = server.requests();
/// assert_eq!(sent[0].header("authorization"), Some("Bearer test-key"));
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// [`MockServer::start`] serves on the caller's Tokio runtime. In a current-thread runtime (the
/// `#[tokio::test]` default) the server only makes progress while the test awaits, so a test that blocks
/// its thread (e.g. `std::process::Command::output()` running a CLI against the server) must use
/// [`MockServer::start_blocking`], which serves on a runtime thread of its own.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// For [`MockServer::start_blocking`]: dropping this releases the server's own runtime thread.
    _runtime_guard: Option<oneshot::Sender<()>>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` and starts serving `scenario` on the current Tokio runtime.
    ///
    /// The listen backlog is large (4096) so benchmarks can open a thousand connections at once.
    pub async fn start(scenario: Scenario) -> std::io::Result<MockServer> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared::new(scenario));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(MockServer {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
            _runtime_guard: None,
        })
    }

    /// Starts the server on a dedicated background runtime thread, without needing (or using) the
    /// caller's runtime; for synchronous tests and for tests that block their thread while the server
    /// must answer. Works inside and outside a Tokio runtime. The thread ends when the server is shut
    /// down or dropped.
    pub fn start_blocking(scenario: Scenario) -> std::io::Result<MockServer> {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (guard, released) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("agentry-testkit-mock".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("agentry-testkit-mock-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started_tx.send(Err(error));
                        return;
                    }
                };
                let started = runtime.block_on(MockServer::start(scenario));
                let _ = started_tx.send(started);
                // Keep the runtime alive until the MockServer is gone; dropping it here, on a plain
                // thread, then cancels whatever is left.
                runtime.block_on(async move {
                    let _ = released.await;
                });
            })?;
        let mut server = started_rx.recv().map_err(|_| {
            std::io::Error::other("mock server runtime thread ended before starting")
        })??;
        server._runtime_guard = Some(guard);
        Ok(server)
    }

    /// The OpenAI-style base URL, `http://127.0.0.1:PORT/v1`; clients append `/chat/completions` etc.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order (faulted ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// How many requests were received so far.
    pub fn request_count(&self) -> usize {
        self.shared.request_count()
    }

    /// Stops accepting, closes every open connection and waits until that is done.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
