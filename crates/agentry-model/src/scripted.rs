//! A model that plays back a script of turns, for tests.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::error::ModelError;
use crate::provider::{ModelProvider, ModelStream, ProviderInfo};
use crate::types::{Completion, ModelRequest, StreamEvent};

/// One scripted model turn: what the next request receives.
///
/// ```
/// use agentry_model::{ModelError, ScriptedTurn};
/// use serde_json::json;
/// let turns = vec![
///     ScriptedTurn::tool_calls(vec![("c1", "search", json!({"q": "rust"}))]),
///     ScriptedTurn::raw_tool_call("c2", "search", "{not json"),
///     ScriptedTurn::error(ModelError::Cancelled),
///     ScriptedTurn::text("done").with_delay(std::time::Duration::from_millis(5)),
/// ];
/// assert_eq!(turns.len(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct ScriptedTurn {
    outcome: Outcome,
    delay: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Outcome {
    Events(Vec<StreamEvent>),
    Error(ModelError),
}

impl ScriptedTurn {
    /// A text answer, streamed word by word, then `Done` with finish reason `stop`.
    pub fn text(text: impl Into<String>) -> Self {
        let text = text.into();
        let mut events: Vec<StreamEvent> = words(&text)
            .map(|w| StreamEvent::TextDelta { text: w.to_owned() })
            .collect();
        events.push(done("stop"));
        Self::events(events)
    }

    /// Tool calls `(id, name, arguments)` in one turn, then `Done` with finish
    /// reason `tool_calls`.
    pub fn tool_calls<I, N>(calls: Vec<(I, N, Value)>) -> Self
    where
        I: Into<String>,
        N: Into<String>,
    {
        let mut events: Vec<StreamEvent> = calls
            .into_iter()
            .enumerate()
            .map(
                |(index, (id, name, arguments))| StreamEvent::ToolCallDelta {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    id: Some(id.into()),
                    name: Some(name.into()),
                    arguments: arguments.to_string(),
                },
            )
            .collect();
        events.push(done("tool_calls"));
        Self::events(events)
    }

    /// One tool call whose argument text is given verbatim (it need not be JSON),
    /// to test how callers handle broken arguments.
    pub fn raw_tool_call(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self::events(vec![
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some(id.into()),
                name: Some(name.into()),
                arguments: arguments.into(),
            },
            done("tool_calls"),
        ])
    }

    /// The request fails with `error` (the stream's only item).
    pub fn error(error: ModelError) -> Self {
        Self {
            outcome: Outcome::Error(error),
            delay: None,
        }
    }

    /// Exactly these events, in order (no `Done` is added).
    pub fn events(events: Vec<StreamEvent>) -> Self {
        Self {
            outcome: Outcome::Events(events),
            delay: None,
        }
    }

    /// Waits `delay` before the first item of this turn.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

fn done(reason: &str) -> StreamEvent {
    StreamEvent::Done(Completion {
        finish_reason: Some(reason.to_owned()),
        response_id: None,
        model: Some("scripted".to_owned()),
    })
}

/// Splits after whitespace runs; the pieces concatenate to the text.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut seen_space = false;
        let cut = rest
            .char_indices()
            .find(|(_, c)| {
                if c.is_whitespace() {
                    seen_space = true;
                    false
                } else {
                    seen_space
                }
            })
            .map_or(rest.len(), |(i, _)| i);
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}

/// A model that answers request `n` with turn `n` of its script, recording every
/// request. Clones share the script and the record. Thread-safe.
///
/// ```
/// use agentry_model::{Message, ModelError, ModelProvider, ModelRequest, ScriptedModel, ScriptedTurn};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let model = ScriptedModel::new(vec![ScriptedTurn::text("hello there")]);
/// let r = model.complete(ModelRequest::new(vec![Message::user("hi")])).await.unwrap();
/// assert_eq!(r.text, "hello there");
/// let err = model.complete(ModelRequest::new(vec![Message::user("again")])).await.unwrap_err();
/// assert!(matches!(err, ModelError::ScriptExhausted(2)));
/// assert_eq!(model.requests().len(), 2);
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScriptedModel {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    turns: VecDeque<ScriptedTurn>,
    requests: Vec<ModelRequest>,
}

impl ScriptedModel {
    /// A model that plays `turns` in order.
    pub fn new(turns: Vec<ScriptedTurn>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                turns: turns.into(),
                requests: Vec::new(),
            })),
        }
    }

    /// Appends a turn to the script.
    pub fn push(&self, turn: ScriptedTurn) {
        self.lock().turns.push_back(turn);
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.lock().requests.clone()
    }

    /// Turns not yet played.
    pub fn remaining(&self) -> usize {
        self.lock().turns.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data here.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ModelProvider for ScriptedModel {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            provider: "scripted".to_owned(),
            model: "scripted".to_owned(),
            endpoint: None,
        }
    }

    /// Takes the next turn. Exhausted scripts fail with
    /// [`ModelError::ScriptExhausted`] carrying the 1-based number of this request.
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let (turn, number) = {
            let mut state = self.lock();
            state.requests.push(request);
            let number = state.requests.len();
            (state.turns.pop_front(), number)
        };
        let Some(turn) = turn else {
            return Box::pin(futures::stream::once(async move {
                Err(ModelError::ScriptExhausted(number))
            }));
        };
        let items: Vec<Result<StreamEvent, ModelError>> = match turn.outcome {
            Outcome::Events(events) => events.into_iter().map(Ok).collect(),
            Outcome::Error(e) => vec![Err(e)],
        };
        let items = futures::stream::iter(items);
        match turn.delay {
            None => Box::pin(items),
            Some(delay) => {
                use futures::StreamExt;
                Box::pin(
                    futures::stream::once(async move {
                        tokio::time::sleep(delay).await;
                        items
                    })
                    .flatten(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Message, ToolArguments};
    use crate::{TOOL_ARGUMENTS_NOT_JSON, collect};
    use serde_json::json;

    fn req(text: &str) -> ModelRequest {
        ModelRequest::new(vec![Message::user(text)])
    }

    #[tokio::test]
    async fn plays_turns_in_order_and_records_requests() {
        let m = ScriptedModel::new(vec![
            ScriptedTurn::tool_calls(vec![
                ("c1", "add", json!({"a": 1})),
                ("c2", "mul", json!({})),
            ]),
            ScriptedTurn::raw_tool_call("c3", "add", "not json"),
            ScriptedTurn::error(ModelError::Interrupted {
                stage: "response_stream",
                detail: "x".into(),
            }),
            ScriptedTurn::events(vec![StreamEvent::TextDelta { text: "raw".into() }]),
            ScriptedTurn::text("a b  c"),
        ]);
        let r1 = m.complete(req("1")).await.unwrap();
        assert_eq!(r1.tool_calls.len(), 2);
        assert_eq!(r1.tool_calls[1].name, "mul");
        let r2 = m.complete(req("2")).await.unwrap();
        assert_eq!(
            r2.tool_calls[0].arguments,
            ToolArguments::Raw("not json".into())
        );
        assert_eq!(r2.diagnostics[0].code, TOOL_ARGUMENTS_NOT_JSON);
        assert!(matches!(
            m.complete(req("3")).await,
            Err(ModelError::Interrupted { .. })
        ));
        assert_eq!(m.complete(req("4")).await.unwrap().text, "raw");
        let s = m.stream(req("5"));
        let r5 = collect(s).await.unwrap();
        assert_eq!(r5.text, "a b  c");
        assert!(matches!(
            m.complete(req("6")).await,
            Err(ModelError::ScriptExhausted(6))
        ));
        let recorded = m.requests();
        assert_eq!(recorded.len(), 6);
        assert_eq!(recorded[3].last_user_text(), Some("4"));
    }

    #[tokio::test(start_paused = true)]
    async fn delay_is_applied() {
        let m = ScriptedModel::new(vec![
            ScriptedTurn::text("x").with_delay(Duration::from_secs(5)),
        ]);
        let start = tokio::time::Instant::now();
        let r = m.complete(req("a")).await.unwrap();
        assert_eq!(r.text, "x");
        assert!(start.elapsed() >= Duration::from_secs(5));
    }

    #[test]
    fn shared_between_threads() {
        let m = ScriptedModel::new(
            (0..100)
                .map(|i| ScriptedTurn::text(format!("t{i}")))
                .collect(),
        );
        std::thread::scope(|s| {
            for _ in 0..4 {
                let m = m.clone();
                s.spawn(move || {
                    for _ in 0..25 {
                        let _stream = m.stream(req("x"));
                    }
                });
            }
        });
        assert_eq!(m.remaining(), 0);
        assert_eq!(m.requests().len(), 100);
    }
}
