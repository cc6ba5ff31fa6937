//! Throughput of the streaming JSON parser versus `serde_json::from_slice` (the floor), and
//! versus the floor plus one copy of every object/array subtree ("floor+copies"): the `Done`
//! event of a container carries its whole sub-value, so every parser with this event contract
//! does at least that much work.
//!
//! `cargo bench -p agentry-model --bench streaming_json` (harness = false, std::time only).
//! Set `STREAMING_JSON_BENCH_SIZES=64k,1m` to run a subset of the sizes (64k, 1m, 16m) and
//! `STREAMING_JSON_BENCH_CHUNKS=16` to run a subset of the chunk sizes (1, 16, 4096).

// The module is compiled into the bench directly (it depends only on serde_json and
// thiserror), so this target builds even while the crate's target list is being edited.
#![allow(dead_code, unused_imports, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "../src/streaming_json/mod.rs"]
mod streaming_json;

use streaming_json::{JsonEvent, StreamingJsonParser};

/// Deterministic PRNG (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "agent",
    "runtime",
    "stream",
    "token",
    "model",
    "answer",
    "plan",
    "step",
    "tool",
    "result",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "with",
    "café",
    "naïve",
    "数据",
    "😀",
    "\\\"quoted\\\"",
    "line\\nbreak",
    "tab\\there",
    "\\u00e9t\\u00e9",
];

fn sentence(rng: &mut Rng, words: u64) -> String {
    let mut out = String::new();
    for i in 0..words {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    out
}

/// A model-answer-like document: an object with a title, a summary and an array of step
/// objects holding strings, numbers, booleans, nested arrays and objects; about `size` bytes.
fn document(size: usize) -> Vec<u8> {
    let mut rng = Rng(42);
    let mut out = String::with_capacity(size + 4096);
    out.push_str("{\n  \"title\": \"");
    out.push_str(&sentence(&mut rng, 8));
    out.push_str("\",\n  \"summary\": \"");
    out.push_str(&sentence(&mut rng, 60));
    out.push_str("\",\n  \"steps\": [");
    let mut id = 0u64;
    while out.len() < size {
        if id > 0 {
            out.push(',');
        }
        let words = 5 + rng.below(40);
        out.push_str(&format!(
            "\n    {{\"id\": {id}, \"title\": \"{}\", \"detail\": \"{}\", \"score\": {:.4}, \
             \"cost\": {}, \"done\": {}, \"tags\": [\"{}\", \"{}\"], \
             \"meta\": {{\"tokens\": {}, \"ratio\": -{}.{}e-3, \"parent\": null}}}}",
            sentence(&mut rng, 4),
            sentence(&mut rng, words),
            rng.below(1_000_000) as f64 / 1000.0,
            rng.below(100_000),
            rng.below(2) == 0,
            sentence(&mut rng, 1),
            sentence(&mut rng, 1),
            rng.below(4096),
            rng.below(10),
            rng.below(1000),
        ));
        id += 1;
    }
    out.push_str("\n  ]\n}\n");
    out.into_bytes()
}

fn measure(min_time: Duration, mut run: impl FnMut() -> usize) -> (Duration, usize) {
    // One warm-up run, then repeat until `min_time` has passed.
    let mut sink = run();
    let start = Instant::now();
    let mut iterations = 0u32;
    while iterations == 0 || start.elapsed() < min_time {
        sink = sink.wrapping_add(run());
        iterations += 1;
    }
    (start.elapsed() / iterations, black_box(sink))
}

/// What any parser with this event contract must at least do: build the value and copy every
/// object/array subtree once for its `Done` event (plus drop those copies).
fn floor_with_subtree_copies(doc: &[u8]) -> usize {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(doc) else {
        return 0;
    };
    let mut copies = 0usize;
    let mut stack = vec![&value];
    while let Some(node) = stack.pop() {
        match node {
            serde_json::Value::Object(map) => {
                copies += usize::from(black_box(node.clone()).is_object());
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => {
                copies += usize::from(black_box(node.clone()).is_array());
                stack.extend(items.iter());
            }
            _ => {}
        }
    }
    copies
}

fn parse_streaming(doc: &[u8], chunk: usize) -> usize {
    let mut parser = StreamingJsonParser::new();
    let mut count = 0usize;
    for piece in doc.chunks(chunk) {
        match parser.feed_bytes(piece) {
            Ok(events) => {
                for event in events {
                    if let JsonEvent::Done { .. } = black_box(event) {
                        count += 1;
                    }
                }
            }
            Err(error) => {
                eprintln!("streaming parser failed: {error}");
                std::process::exit(1);
            }
        }
    }
    match parser.finish() {
        Ok(finished) => count + finished.events.len() + usize::from(!finished.value.is_null()),
        Err(error) => {
            eprintln!("streaming parser failed at finish: {error}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let wanted = std::env::var("STREAMING_JSON_BENCH_SIZES").unwrap_or_default();
    let sizes: Vec<(&str, usize)> = [
        ("64k", 64 * 1024),
        ("1m", 1024 * 1024),
        ("16m", 16 * 1024 * 1024),
    ]
    .into_iter()
    .filter(|(name, _)| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == *name))
    .collect();
    let wanted_chunks = std::env::var("STREAMING_JSON_BENCH_CHUNKS").unwrap_or_default();
    let min_time = Duration::from_millis(800);
    let mb = |bytes: usize, time: Duration| bytes as f64 / 1e6 / time.as_secs_f64();

    println!(
        "{:>5} | {:>11} | {:>12} | {:>22} | {:>22} | {:>22} | {:>7} | {:>7}",
        "size",
        "floor",
        "floor+copies",
        "chunks of 1 B",
        "chunks of 16 B",
        "chunks of 4 KiB",
        "16B/fl",
        "16B/f+c"
    );
    println!("{}", "-".repeat(131));
    for (name, size) in sizes {
        let doc = document(size);
        if let Err(error) = serde_json::from_slice::<serde_json::Value>(&doc) {
            eprintln!("generated document is not JSON: {error}");
            std::process::exit(1);
        }
        let (floor, _) = measure(min_time, || {
            serde_json::from_slice::<serde_json::Value>(black_box(&doc))
                .map(|value| usize::from(value.is_object()))
                .unwrap_or(0)
        });
        let (floor_copies, _) = measure(min_time, || floor_with_subtree_copies(black_box(&doc)));
        let mut cells = Vec::new();
        let mut ratio = 0.0;
        let mut ratio_copies = 0.0;
        for chunk in [1usize, 16, 4096] {
            if !wanted_chunks.is_empty()
                && !wanted_chunks
                    .split(',')
                    .any(|w| w.trim() == chunk.to_string())
            {
                cells.push(format!("{:>22}", "-"));
                continue;
            }
            let (time, _) = measure(min_time, || parse_streaming(black_box(&doc), chunk));
            if chunk == 16 {
                ratio = floor.as_secs_f64() / time.as_secs_f64();
                ratio_copies = floor_copies.as_secs_f64() / time.as_secs_f64();
            }
            cells.push(format!(
                "{:>7.1} MB/s {:>4.1}ns/B",
                mb(doc.len(), time),
                time.as_nanos() as f64 / doc.len() as f64
            ));
        }
        let cell = |i: usize| cells.get(i).cloned().unwrap_or_default();
        println!(
            "{:>5} | {:>6.1} MB/s | {:>7.1} MB/s | {} | {} | {} | {:>6.2}x | {:>6.2}x",
            name,
            mb(doc.len(), floor),
            mb(doc.len(), floor_copies),
            cell(0),
            cell(1),
            cell(2),
            ratio,
            ratio_copies
        );
    }
}
