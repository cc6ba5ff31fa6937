//! A counting global allocator for the unit tests, to keep the per-chunk
//! allocation budget honest: decoding a chunk allocates the event's own `String`,
//! plus serde_json's unescape buffer when that text contains escapes (argument
//! fragments always do), and nothing else.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`.
pub(crate) fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = COUNT.with(Cell::get);
    let out = f();
    (out, COUNT.with(Cell::get) - before)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::allocations;
    use crate::http::WireDecoder;
    use crate::openai_chat::ChatDecoder;
    use crate::openai_responses::ResponsesDecoder;
    use crate::sse::SseParser;
    use crate::types::StreamEvent;

    fn per_chunk<D: WireDecoder>(warm_up: &[&str], chunk: &str) -> usize {
        let mut parser = SseParser::new();
        let mut decoder = D::default();
        let mut out = VecDeque::with_capacity(16);
        for w in warm_up {
            parser
                .feed(w.as_bytes(), |e| decoder.on_event(e, &mut out))
                .unwrap();
        }
        out.clear();
        let rounds = 20;
        let mut most = 0;
        for _ in 0..rounds {
            let (fed, n) = allocations(|| {
                parser
                    .feed(chunk.as_bytes(), |e| decoder.on_event(e, &mut out))
                    .is_ok()
            });
            assert!(fed);
            assert!(matches!(
                out.pop_front(),
                Some(StreamEvent::TextDelta { .. } | StreamEvent::ToolCallDelta { .. })
            ));
            assert!(out.is_empty());
            most = most.max(n);
        }
        most
    }

    #[test]
    fn chat_text_chunk_allocates_only_its_string() {
        let chunk = "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"system_fingerprint\":\"fp\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
        assert_eq!(per_chunk::<ChatDecoder>(&[chunk], chunk), 1);
        // Escapes cost serde_json's scratch buffer on top.
        let escaped =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\\\"b\\n\"}}]}\n\n";
        assert_eq!(per_chunk::<ChatDecoder>(&[escaped], escaped), 2);
    }

    #[test]
    fn chat_argument_fragment_allocates_its_string_unescaping_and_box() {
        let first = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n";
        let frag = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n";
        // The arguments, their unescaping, and the box that keeps text chunks small.
        assert_eq!(per_chunk::<ChatDecoder>(&[first, frag], frag), 3);
    }

    #[test]
    fn responses_deltas_allocate_only_their_string() {
        let text = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\" word\",\"logprobs\":[]}\n\n";
        assert_eq!(per_chunk::<ResponsesDecoder>(&[text], text), 1);
        let added = "data: {\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"\"}}\n\n";
        let args = "data: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"{\\\"a\\\"\"}\n\n";
        assert_eq!(per_chunk::<ResponsesDecoder>(&[added, args], args), 2);
    }
}
