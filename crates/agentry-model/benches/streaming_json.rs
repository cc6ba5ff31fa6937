//! Throughput of the streaming JSON parser versus `serde_json::from_slice` on the whole
//! document (the floor), per chunk size and document size, for two container settings:
//! `all` (every object/array `Done` carries a copy of its subtree, so each value is copied once
//! per enclosing container) and `none` (containers complete with `ContainerDone`; linear work).
//!
//! `cargo bench -p agentry-model --bench streaming_json` (harness = false, std::time only).
//! Environment variables select subsets: `STREAMING_JSON_BENCH_SIZES=64k,1m` (of 64k, 1m, 16m),
//! `STREAMING_JSON_BENCH_CHUNKS=16` (of 1, 16, 4096), `STREAMING_JSON_BENCH_MODES=none` (of
//! all, none); `STREAMING_JSON_BENCH_REPEATS=3` (default 3) measures each cell that many times
//! and reports the best with the spread ((slowest − best) / best).

// The module is compiled into the bench directly (it depends only on serde_json and
// thiserror), so this target builds even while the crate's target list is being edited.
#![allow(dead_code, unused_imports, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "../src/streaming_json/mod.rs"]
mod streaming_json;

use streaming_json::{ContainerValues, JsonEvent, ParserOptions, StreamingJsonParser};

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

/// Best time per run over `repeats` measurements, and the spread (slowest − best) / best.
fn measure_repeated(
    repeats: usize,
    min_time: Duration,
    mut run: impl FnMut() -> usize,
) -> (Duration, f64) {
    let times: Vec<Duration> = (0..repeats.max(1))
        .map(|_| measure(min_time, &mut run).0)
        .collect();
    let best = times.iter().min().copied().unwrap_or_default();
    let worst = times.iter().max().copied().unwrap_or_default();
    let spread = (worst.as_secs_f64() - best.as_secs_f64()) / best.as_secs_f64().max(1e-12);
    (best, spread)
}

fn parse_streaming(doc: &[u8], chunk: usize, container_values: &ContainerValues) -> usize {
    let mut parser = StreamingJsonParser::with_options(ParserOptions {
        container_values: container_values.clone(),
        ..ParserOptions::default()
    });
    let mut count = 0usize;
    for piece in doc.chunks(chunk) {
        match parser.feed_bytes(piece) {
            Ok(events) => {
                for event in events {
                    if let JsonEvent::Done { .. } | JsonEvent::ContainerDone { .. } =
                        black_box(event)
                    {
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

fn selected(variable: &str, name: &str) -> bool {
    let wanted = std::env::var(variable).unwrap_or_default();
    wanted.trim().is_empty() || wanted.split(',').any(|w| w.trim() == name)
}

fn main() {
    let sizes: Vec<(&str, usize)> = [
        ("64k", 64 * 1024),
        ("1m", 1024 * 1024),
        ("16m", 16 * 1024 * 1024),
    ]
    .into_iter()
    .filter(|(name, _)| selected("STREAMING_JSON_BENCH_SIZES", name))
    .collect();
    let chunks: Vec<usize> = [1usize, 16, 4096]
        .into_iter()
        .filter(|chunk| selected("STREAMING_JSON_BENCH_CHUNKS", &chunk.to_string()))
        .collect();
    let modes: Vec<(&str, ContainerValues)> = [
        ("all", ContainerValues::All),
        ("none", ContainerValues::None),
    ]
    .into_iter()
    .filter(|(name, _)| selected("STREAMING_JSON_BENCH_MODES", name))
    .collect();
    let repeats = std::env::var("STREAMING_JSON_BENCH_REPEATS")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .unwrap_or(3);
    let min_time = Duration::from_millis(800);
    let mb = |bytes: usize, time: Duration| bytes as f64 / 1e6 / time.as_secs_f64();

    println!("best of {repeats} (spread = (slowest - best) / best); ratio = floor time / time");
    print!(
        "{:>5} | {:>5} | {:>19}",
        "size", "mode", "floor (whole doc)"
    );
    for chunk in &chunks {
        print!(" | {:>29}", format!("chunks of {chunk} B"));
    }
    println!();
    println!("{}", "-".repeat(35 + 32 * chunks.len()));
    for (name, size) in sizes {
        let doc = document(size);
        if let Err(error) = serde_json::from_slice::<serde_json::Value>(&doc) {
            eprintln!("generated document is not JSON: {error}");
            std::process::exit(1);
        }
        let (floor, floor_spread) = measure_repeated(repeats, min_time, || {
            serde_json::from_slice::<serde_json::Value>(black_box(&doc))
                .map(|value| usize::from(value.is_object()))
                .unwrap_or(0)
        });
        let floor_cell = format!(
            "{:>6.1} MB/s +{:>3.0}%",
            mb(doc.len(), floor),
            floor_spread * 100.0
        );
        for (mode, container_values) in &modes {
            print!("{name:>5} | {mode:>5} | {floor_cell:>19}");
            for &chunk in &chunks {
                let (time, spread) = measure_repeated(repeats, min_time, || {
                    parse_streaming(black_box(&doc), chunk, container_values)
                });
                print!(
                    " | {:>6.1} MB/s +{:>3.0}% {:>5.2}x {:>4.0}ns/B",
                    mb(doc.len(), time),
                    spread * 100.0,
                    floor.as_secs_f64() / time.as_secs_f64(),
                    time.as_nanos() as f64 / doc.len() as f64
                );
            }
            println!();
        }
    }
}
