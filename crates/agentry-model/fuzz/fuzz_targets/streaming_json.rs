//! Fuzz target for the streaming JSON parser.
//!
//! Input layout: the first byte selects how the rest is cut into chunks (the fuzzer thereby
//! chooses split points); the rest is the streamed text. Oracles: no panic, and feeding in
//! chunks gives the same outcome as feeding everything at once (same merged events, value
//! and repairs, or the same error code).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports, missing_docs)]
#[path = "../../src/streaming_json/mod.rs"]
mod streaming_json;

use streaming_json::{
    FinishedJson, JsonEvent, ParserLimits, StreamingJsonError, StreamingJsonParser, merge_deltas,
};

fn run<'a>(
    limits: ParserLimits,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> Result<(Vec<JsonEvent>, FinishedJson), StreamingJsonError> {
    let mut parser = StreamingJsonParser::with_limits(limits);
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(parser.feed_bytes(chunk)?);
    }
    let mut finished = parser.finish()?;
    events.append(&mut finished.events);
    Ok((merge_deltas(events), finished))
}

/// Cuts `text` into chunks whose lengths come from `seed` (a tiny LCG), so each input byte of
/// the selector gives a different split pattern.
fn chunks(seed: u8, text: &[u8]) -> Vec<&[u8]> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    let max = usize::from(seed % 32) + 1;
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let len = (state >> 16) as usize % max + 1;
        let (head, tail) = rest.split_at(len.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, text)) = data.split_first() else {
        return;
    };
    // Small limits so the fuzzer also reaches the limit paths.
    let limits = ParserLimits {
        max_depth: 32,
        max_string_bytes: 4096,
        max_total_bytes: 1 << 20,
    };
    let whole = run(limits, std::iter::once(text));
    let split = run(limits, chunks(seed, text).into_iter());
    match (&whole, &split) {
        (Ok((events_a, finished_a)), Ok((events_b, finished_b))) => {
            assert_eq!(events_a, events_b);
            assert_eq!(finished_a.value, finished_b.value);
            assert_eq!(finished_a.repairs, finished_b.repairs);
        }
        (Err(_), Err(_)) => {
            // With several defects (e.g. a string over the limit that is also bad UTF-8) the
            // first one reported may depend on where the chunks end; both must fail.
        }
        _ => panic!("chunking changed the outcome: whole {whole:?}, split {split:?}"),
    }
});
