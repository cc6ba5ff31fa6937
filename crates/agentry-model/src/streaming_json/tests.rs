#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;

// ------------------------------------------------------------------------------------------------
// Helpers

/// Events of a whole run (feeds + finish), or the error code.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    events: Vec<JsonEvent>,
    value: Value,
    repairs: Vec<Repair>,
}

fn run_chunks<'a>(
    limits: ParserLimits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Outcome, StreamingJsonError> {
    run_with(
        ParserOptions {
            limits,
            container_values: ContainerValues::All,
        },
        chunks,
    )
}

fn run_with<'a>(
    options: ParserOptions,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Outcome, StreamingJsonError> {
    let mut parser = StreamingJsonParser::with_options(options);
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(parser.feed_bytes(chunk)?);
    }
    let finished = parser.finish()?;
    events.extend(finished.events);
    Ok(Outcome {
        events,
        value: finished.value,
        repairs: finished.repairs,
    })
}

fn run(text: &str) -> Result<Outcome, StreamingJsonError> {
    run_chunks(ParserLimits::default(), [text.as_bytes()])
}

fn ok(text: &str) -> Outcome {
    match run(text) {
        Ok(outcome) => outcome,
        Err(error) => panic!("{text:?} failed: {error}"),
    }
}

fn err_code(text: &str) -> &'static str {
    match run(text) {
        Ok(outcome) => panic!("{text:?} unexpectedly parsed as {}", outcome.value),
        Err(error) => error.code(),
    }
}

fn repair_kinds(outcome: &Outcome) -> Vec<RepairKind> {
    outcome.repairs.iter().map(|repair| repair.kind).collect()
}

fn describe(events: &[JsonEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            JsonEvent::Delta { path, delta } => format!("delta {path} {delta}"),
            JsonEvent::Done { path, value } => format!("done {path} {value}"),
            JsonEvent::ContainerDone { path } => format!("closed {path}"),
        })
        .collect()
}

fn patterns(texts: &[&str]) -> Vec<PathPattern> {
    texts.iter().map(|text| text.parse().unwrap()).collect()
}

/// The container settings the split-invariance checks run under.
fn settings() -> Vec<ContainerValues> {
    vec![
        ContainerValues::All,
        ContainerValues::None,
        ContainerValues::Matching(patterns(&["", "[*]", "*.*"])),
        ContainerValues::Matching(patterns(&["*", "[0]", "[*].*", "steps[*]"])),
    ]
}

fn with_setting(container_values: &ContainerValues) -> ParserOptions {
    ParserOptions {
        limits: ParserLimits::default(),
        container_values: container_values.clone(),
    }
}

/// What a run under `setting` must produce given the events of the same run under
/// [`ContainerValues::All`]: the same sequence, with the `Done` of every container whose
/// value was not asked for replaced by `ContainerDone`.
fn expected_under(setting: &ContainerValues, all: &[JsonEvent]) -> Vec<JsonEvent> {
    all.iter()
        .map(|event| match event {
            JsonEvent::Done { path, value }
                if (value.is_object() || value.is_array()) && !setting.wants(path) =>
            {
                JsonEvent::ContainerDone { path: path.clone() }
            }
            JsonEvent::ContainerDone { .. } => panic!("ContainerDone under `All`: {event:?}"),
            other => other.clone(),
        })
        .collect()
}

/// Deterministic PRNG (splitmix64) so the property tests need no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Cuts `bytes` at random points (anywhere, including inside UTF-8 sequences).
fn random_chunks<'a>(rng: &mut Rng, bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let mode = rng.below(4);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let len = match mode {
            0 => 1,
            1 => 1 + rng.below(4),
            2 => 1 + rng.below(17),
            _ => 1 + rng.below(bytes.len()),
        };
        let end = (start + len).min(bytes.len());
        chunks.push(&bytes[start..end]);
        start = end;
    }
    chunks
}

/// Asserts that every way of cutting `text` gives the same merged events, value and repairs
/// (or the same error code) as feeding it at once, under every container setting, and that
/// the settings differ only in which container completions carry a value.
fn assert_split_invariant(rng: &mut Rng, text: &[u8], rounds: usize) {
    let merged = |outcome: Result<Outcome, StreamingJsonError>| {
        outcome.map(|mut outcome| {
            outcome.events = merge_deltas(outcome.events);
            outcome
        })
    };
    let whole_all = merged(run_chunks(ParserLimits::default(), [text]));
    let settings = settings();
    // The expected outcome of every setting, derived from `All`, and checked unsplit.
    let expected: Vec<_> = settings
        .iter()
        .map(|setting| {
            let expected = whole_all.clone().map(|mut outcome| {
                outcome.events = expected_under(setting, &outcome.events);
                outcome
            });
            let whole = merged(run_with(with_setting(setting), [text]));
            match (&expected, &whole) {
                (Ok(a), Ok(b)) => assert_eq!(
                    a,
                    b,
                    "{setting:?} is not `All` minus container values for {:?}",
                    String::from_utf8_lossy(text)
                ),
                (Err(a), Err(b)) => assert_eq!(a, b, "{setting:?} changed the error"),
                _ => panic!("{setting:?} changed success: all {expected:?} setting {whole:?}"),
            }
            expected
        })
        .collect();
    for round in 0..rounds {
        let chunks = if round == 0 {
            text.chunks(1).collect()
        } else {
            random_chunks(rng, text)
        };
        // One-byte chunks under every setting, random cuts under one setting each.
        let picked: Vec<usize> = if round == 0 {
            (0..settings.len()).collect()
        } else {
            vec![round % settings.len()]
        };
        for index in picked {
            let setting = &settings[index];
            let whole = &expected[index];
            let split = merged(run_with(with_setting(setting), chunks.iter().copied()));
            match (whole, &split) {
                (Ok(a), Ok(b)) => assert_eq!(
                    a,
                    b,
                    "split changed the outcome of {:?} under {setting:?}; chunks {:?}",
                    String::from_utf8_lossy(text),
                    chunks
                        .iter()
                        .map(|c| String::from_utf8_lossy(c))
                        .collect::<Vec<_>>()
                ),
                (Err(a), Err(b)) => assert_eq!(
                    a.code(),
                    b.code(),
                    "split changed the error of {:?} under {setting:?}",
                    String::from_utf8_lossy(text)
                ),
                _ => panic!(
                    "split changed success of {:?} under {setting:?}: whole {whole:?} split \
                     {split:?}",
                    String::from_utf8_lossy(text)
                ),
            }
        }
    }
}

/// For a successfully parsed document: one `Done` per path, matching the final value; deltas
/// of a path concatenate to its string value and all precede its `Done`.
fn assert_event_consistency(outcome: &Outcome) {
    let mut done: HashMap<String, &Value> = HashMap::new();
    let mut deltas: HashMap<String, String> = HashMap::new();
    for event in &outcome.events {
        match event {
            JsonEvent::Delta { path, delta } => {
                assert!(!delta.is_empty());
                assert!(!done.contains_key(&path.to_string()), "delta after done");
                deltas.entry(path.to_string()).or_default().push_str(delta);
            }
            JsonEvent::Done { path, value } => {
                assert!(
                    done.insert(path.to_string(), value).is_none(),
                    "two Done events for `{path}`"
                );
                assert_eq!(path.lookup(&outcome.value), Some(value), "at `{path}`");
                let streamed = deltas.get(&path.to_string()).cloned().unwrap_or_default();
                match value {
                    Value::String(text) => assert_eq!(&streamed, text, "deltas of `{path}`"),
                    _ => assert!(streamed.is_empty()),
                }
            }
            JsonEvent::ContainerDone { path } => {
                let value = path.lookup(&outcome.value);
                assert!(
                    value.is_some_and(|value| value.is_object() || value.is_array()),
                    "ContainerDone for `{path}`, which is {value:?}"
                );
                assert!(
                    done.insert(path.to_string(), value.unwrap_or(&Value::Null))
                        .is_none(),
                    "two Done events for `{path}`"
                );
                assert!(!deltas.contains_key(&path.to_string()));
            }
        }
    }
    assert_eq!(done.get(""), Some(&&outcome.value));
    // Every value of the final document has a Done event.
    let mut stack = vec![(JsonPath::root(), &outcome.value)];
    let mut count = 0;
    while let Some((path, value)) = stack.pop() {
        count += 1;
        assert!(done.contains_key(&path.to_string()), "no Done for `{path}`");
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    stack.push((path.child(PathSegment::Key(key.as_str().into())), child));
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    stack.push((path.child(PathSegment::Index(index)), child));
                }
            }
            _ => {}
        }
    }
    assert_eq!(count, done.len());
}

// ------------------------------------------------------------------------------------------------
// Events

#[test]
fn simple_object_event_sequence() {
    let outcome = ok(r#"{"title": "Hi", "n": 3, "ok": true, "none": null, "tips": ["a", 1.5]}"#);
    assert_eq!(
        describe(&outcome.events),
        [
            "delta title Hi",
            "done title \"Hi\"",
            "done n 3",
            "done ok true",
            "done none null",
            "delta tips[0] a",
            "done tips[0] \"a\"",
            "done tips[1] 1.5",
            "done tips [\"a\",1.5]",
            r#"done  {"title":"Hi","n":3,"ok":true,"none":null,"tips":["a",1.5]}"#,
        ]
    );
    assert!(outcome.repairs.is_empty());
    assert_event_consistency(&outcome);
}

#[test]
fn deltas_arrive_as_text_arrives_and_numbers_wait_for_a_delimiter() {
    let mut parser = StreamingJsonParser::new();
    assert_eq!(parser.feed("{\"a\": \"he").unwrap().len(), 1);
    let events = parser.feed("llo\\n").unwrap();
    assert_eq!(describe(&events), ["delta a llo\n"]);
    let events = parser.feed("\", \"b\": 12").unwrap();
    assert_eq!(describe(&events), ["done a \"hello\\n\""]);
    assert!(parser.feed("3").unwrap().is_empty());
    let events = parser.feed("}").unwrap();
    assert_eq!(
        describe(&events),
        ["done b 123", r#"done  {"a":"hello\n","b":123}"#]
    );
    assert!(parser.is_complete());
    let finished = parser.finish().unwrap();
    assert!(finished.events.is_empty());
    assert_eq!(finished.value, json!({"a": "hello\n", "b": 123}));
}

#[test]
fn keys_produce_no_events() {
    let outcome = ok(r#"{"a long key": {"inner": ""}}"#);
    assert_eq!(
        describe(&outcome.events),
        [
            "done [\"a long key\"].inner \"\"",
            "done [\"a long key\"] {\"inner\":\"\"}",
            "done  {\"a long key\":{\"inner\":\"\"}}",
        ]
    );
}

#[test]
fn nested_arrays_of_objects() {
    let text =
        r#"{"steps": [{"title": "one", "detail": "d1"}, {"title": "two", "tags": [["x"], []]}]}"#;
    let outcome = ok(text);
    let paths: Vec<String> = outcome
        .events
        .iter()
        .filter(|event| matches!(event, JsonEvent::Done { .. }))
        .map(|event| event.path().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "steps[0].title",
            "steps[0].detail",
            "steps[0]",
            "steps[1].title",
            "steps[1].tags[0][0]",
            "steps[1].tags[0]",
            "steps[1].tags[1]",
            "steps[1].tags",
            "steps[1]",
            "steps",
            "",
        ]
    );
    assert_eq!(outcome.value, serde_json::from_str::<Value>(text).unwrap());
    assert_event_consistency(&outcome);
}

#[test]
fn empty_containers() {
    for text in [
        "{}",
        "[]",
        r#"{"a": {}, "b": [], "c": "", "d": [{}]}"#,
        "[[],[[]],{}]",
    ] {
        let outcome = ok(text);
        assert_eq!(outcome.value, serde_json::from_str::<Value>(text).unwrap());
        assert!(outcome.repairs.is_empty());
        assert!(
            !outcome
                .events
                .iter()
                .any(|event| matches!(event, JsonEvent::Delta { .. }))
        );
        assert_event_consistency(&outcome);
    }
}

#[test]
fn escapes_and_unicode() {
    let text = r#"{"e": "q\" b\\ s\/ \b\f\n\r\t é \u00e9 \u4e2d \ud83d\ude00 😀 end"}"#;
    let outcome = ok(text);
    assert_eq!(outcome.value, serde_json::from_str::<Value>(text).unwrap());
    assert!(outcome.repairs.is_empty());
    assert_event_consistency(&outcome);
}

#[test]
fn lone_surrogates_and_unknown_escapes_are_repaired() {
    let outcome = ok(r#"{"a": "x\ud83dy", "b": "\ude00", "c": "\ud83d\n", "d": "\q"}"#);
    assert_eq!(
        outcome.value,
        json!({"a": "x\u{fffd}y", "b": "\u{fffd}", "c": "\u{fffd}\n", "d": "q"})
    );
    assert_eq!(
        repair_kinds(&outcome),
        [
            RepairKind::LoneSurrogate,
            RepairKind::LoneSurrogate,
            RepairKind::LoneSurrogate,
            RepairKind::InvalidEscape
        ]
    );
    // Two high surrogates in a row: the first is lone, the second pairs.
    let outcome = ok(r#"["\ud83d\ud83d\ude00"]"#);
    assert_eq!(outcome.value, json!(["\u{fffd}😀"]));
    assert_eq!(err_code(r#"{"a": "\u12g4"}"#), "streaming_json.syntax");
}

#[test]
fn numbers() {
    let text =
        r#"[-0.5e-3, 0, -0, 1E+2, 3.25, 12345678901234567890, -9223372036854775808, 1e308, 7]"#;
    let outcome = ok(text);
    assert_eq!(outcome.value, serde_json::from_str::<Value>(text).unwrap());
    assert_event_consistency(&outcome);
    for bad in [
        "[01]", "[1.]", "[-]", "[1e]", "[0, .5]", "[1.2.3]", "[0, +1]", "[1-2]", "[--1]",
    ] {
        assert_eq!(err_code(bad), "streaming_json.syntax", "{bad}");
    }
}

#[test]
fn number_at_end_of_truncated_input() {
    let outcome = ok("[1, 2.5");
    assert_eq!(outcome.value, json!([1, 2.5]));
    assert_eq!(repair_kinds(&outcome), [RepairKind::ClosedContainer]);
    let outcome = ok("[1, 2.");
    assert_eq!(outcome.value, json!([1, 2]));
    assert_eq!(
        repair_kinds(&outcome),
        [RepairKind::TruncatedNumber, RepairKind::ClosedContainer]
    );
    let outcome = ok(r#"{"a": 1e-"#);
    assert_eq!(outcome.value, json!({"a": 1}));
    let outcome = ok(r#"{"a": 1, "b": -"#);
    assert_eq!(outcome.value, json!({"a": 1}));
    assert_eq!(
        repair_kinds(&outcome),
        [RepairKind::DroppedValue, RepairKind::ClosedContainer]
    );
    assert_event_consistency(&outcome);
    assert_eq!(err_code("[01"), "streaming_json.syntax");
}

// ------------------------------------------------------------------------------------------------
// Wrapping and tolerance

#[test]
fn prose_and_fences_are_skipped() {
    let text = "Sure! Here is the plan:\n\n```json\n{\"title\": \"T\", \"tips\": [\"a\"]}\n```\n\nLet me know {if} you need more [help].";
    let outcome = ok(text);
    assert_eq!(outcome.value, json!({"title": "T", "tips": ["a"]}));
    assert!(outcome.repairs.is_empty());
    assert_eq!(outcome.events.len(), 6);
    let outcome = ok("```json\n[1, 2]\n```");
    assert_eq!(outcome.value, json!([1, 2]));
    // Invalid UTF-8 outside the value is ignored.
    let outcome = run_chunks(ParserLimits::default(), [&b"\xff\xfe {\"a\": 1} \xc3"[..]]).unwrap();
    assert_eq!(outcome.value, json!({"a": 1}));
}

#[test]
fn top_level_scalars_are_not_values() {
    assert_eq!(err_code("42"), "streaming_json.no_json_value");
    assert_eq!(err_code("\"just text\""), "streaming_json.no_json_value");
    assert_eq!(err_code(""), "streaming_json.no_json_value");
    // The first bracket starts the value, even inside prose...
    assert_eq!(ok("The answer: \"x\" [true]").value, json!([true]));
    // ...unless what follows it cannot start JSON.
    assert_eq!(
        ok("See [below] or {@home}:\n```json\n{\"a\": [1]}\n```").value,
        json!({"a": [1]})
    );
    assert_eq!(
        err_code("Only [prose] here, {#1} and [*]"),
        "streaming_json.no_json_value"
    );
    // Words that start like a literal, or like an unquoted key, are prose as well.
    let outcome = ok("Result [formatted as JSON] in {the usual} format: {'a': [nul");
    assert_eq!(outcome.value, json!({"a": [null]}));
    assert_eq!(
        repair_kinds(&outcome),
        [
            RepairKind::SingleQuotedString,
            RepairKind::CompletedLiteral,
            RepairKind::ClosedContainer,
            RepairKind::ClosedContainer
        ]
    );
    // Once the value has started, the same defects are errors.
    assert_eq!(err_code("[true story]"), "streaming_json.syntax");
    assert_eq!(err_code("[1, nope]"), "streaming_json.syntax");
    assert_eq!(err_code("{a: 1, the usual}"), "streaming_json.syntax");
}

#[test]
fn single_quotes_trailing_commas_and_bare_keys_while_streaming() {
    let mut parser = StreamingJsonParser::new();
    let events = parser
        .feed("{title: 'It\\'s \"fine\"', 'tips': ['a', 'b',], n: 1,}")
        .unwrap();
    assert!(parser.is_complete());
    assert_eq!(
        events.last(),
        Some(&JsonEvent::Done {
            path: JsonPath::root(),
            value: json!({"title": "It's \"fine\"", "tips": ["a", "b"], "n": 1}),
        })
    );
    let finished = parser.finish().unwrap();
    let kinds: Vec<RepairKind> = finished.repairs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RepairKind::UnquotedKey,
            RepairKind::SingleQuotedString,
            RepairKind::SingleQuotedString,
            RepairKind::SingleQuotedString,
            RepairKind::SingleQuotedString,
            RepairKind::TrailingComma,
            RepairKind::UnquotedKey,
            RepairKind::TrailingComma,
        ]
    );
    assert_eq!(finished.repairs[0].position, 1);
    assert_eq!(finished.repairs[0].kind.code(), "unquoted_key");
}

#[test]
fn missing_commas_are_repaired() {
    let outcome = ok("{\"a\": 1 \"b\": [1 2 \"x\"] c: {}}");
    assert_eq!(outcome.value, json!({"a": 1, "b": [1, 2, "x"], "c": {}}));
    assert_eq!(
        repair_kinds(&outcome),
        [
            RepairKind::MissingComma,
            RepairKind::MissingComma,
            RepairKind::MissingComma,
            RepairKind::MissingComma,
            RepairKind::UnquotedKey
        ]
    );
    assert_event_consistency(&outcome);
}

#[test]
fn raw_control_characters_in_strings_are_kept() {
    let outcome = ok("{\"a\": \"line1\nline2\ttab\"}");
    assert_eq!(outcome.value, json!({"a": "line1\nline2\ttab"}));
    assert!(outcome.repairs.is_empty());
}

// ------------------------------------------------------------------------------------------------
// Truncation and repairs

#[test]
fn truncated_documents_are_repaired() {
    use RepairKind::*;
    let cases: Vec<(&str, Value, Vec<RepairKind>)> = vec![
        ("{", json!({}), vec![ClosedContainer]),
        ("[", json!([]), vec![ClosedContainer]),
        (
            r#"{"a": "hel"#,
            json!({"a": "hel"}),
            vec![UnterminatedString, ClosedContainer],
        ),
        (
            r#"{"a": "x\"#,
            json!({"a": "x"}),
            vec![UnterminatedString, ClosedContainer],
        ),
        (
            r#"{"a": "x\u00"#,
            json!({"a": "x"}),
            vec![UnterminatedString, ClosedContainer],
        ),
        (
            r#"{"a": "x\ud83d"#,
            json!({"a": "x"}),
            vec![UnterminatedString, ClosedContainer],
        ),
        (
            r#"{"a": tr"#,
            json!({"a": true}),
            vec![CompletedLiteral, ClosedContainer],
        ),
        (
            r#"[nu"#,
            json!([null]),
            vec![CompletedLiteral, ClosedContainer],
        ),
        (
            r#"{"a": 1, "b"#,
            json!({"a": 1}),
            vec![DroppedKey, ClosedContainer],
        ),
        (
            r#"{"a": 1, "b""#,
            json!({"a": 1}),
            vec![DroppedKey, ClosedContainer],
        ),
        (
            r#"{"a": 1, "b":"#,
            json!({"a": 1}),
            vec![DroppedKey, ClosedContainer],
        ),
        (
            r#"{"a": 1, bare"#,
            json!({"a": 1}),
            vec![UnquotedKey, DroppedKey, ClosedContainer],
        ),
        (
            r#"{"a": 1,"#,
            json!({"a": 1}),
            vec![TrailingComma, ClosedContainer],
        ),
        (
            r#"[1, 2,"#,
            json!([1, 2]),
            vec![TrailingComma, ClosedContainer],
        ),
        (
            r#"{"steps": [{"detail": "d", "tags": ["x", "y"#,
            json!({"steps": [{"detail": "d", "tags": ["x", "y"]}]}),
            vec![
                UnterminatedString,
                ClosedContainer,
                ClosedContainer,
                ClosedContainer,
                ClosedContainer,
            ],
        ),
        (
            "```json\n{'a': 'single",
            json!({"a": "single"}),
            vec![
                SingleQuotedString,
                SingleQuotedString,
                UnterminatedString,
                ClosedContainer,
            ],
        ),
    ];
    for (text, value, kinds) in cases {
        let outcome = ok(text);
        assert_eq!(outcome.value, value, "{text}");
        assert_eq!(repair_kinds(&outcome), kinds, "{text}");
        assert_event_consistency(&outcome);
        // Repairs done by `finish` are positioned at the end of the input.
        let last = outcome.repairs.last().unwrap();
        assert_eq!(last.position, text.len(), "{text}");
    }
}

#[test]
fn truncated_multibyte_utf8_is_dropped_at_finish() {
    let text = "{\"a\": \"caf\u{e9}".as_bytes();
    let cut = &text[..text.len() - 1];
    let outcome = run_chunks(ParserLimits::default(), [cut]).unwrap();
    assert_eq!(outcome.value, json!({"a": "caf"}));
}

#[test]
fn garbage_is_a_typed_error() {
    for (text, code) in [
        ("hello world", "streaming_json.no_json_value"),
        ("{]", "streaming_json.no_json_value"),
        ("[}", "streaming_json.no_json_value"),
        (r#"{"a": [}"#, "streaming_json.syntax"),
        (r#"[{]"#, "streaming_json.syntax"),
        (r#"{"a" 1}"#, "streaming_json.syntax"),
        (r#"{"a": @}"#, "streaming_json.syntax"),
        (r#"{"a": truth}"#, "streaming_json.syntax"),
        (r#"{"a": 1]"#, "streaming_json.syntax"),
        (r#"{1: 2}"#, "streaming_json.no_json_value"),
        (r#"{"a": {1: 2}}"#, "streaming_json.syntax"),
        (r#"[1,,2]"#, "streaming_json.syntax"),
        (r#"{,}"#, "streaming_json.no_json_value"),
        (r#"{"a": 1, ,}"#, "streaming_json.syntax"),
        (r#"[1 :]"#, "streaming_json.syntax"),
    ] {
        assert_eq!(err_code(text), code, "{text}");
    }
    // Trailing brackets after the root are ignored like trailing prose.
    assert_eq!(ok("[1]]]}").value, json!([1]));
}

#[test]
fn errors_are_sticky() {
    let mut parser = StreamingJsonParser::new();
    let error = parser.feed("{\"a\" 1").unwrap_err();
    assert_eq!(error.code(), "streaming_json.syntax");
    assert_eq!(
        error,
        StreamingJsonError::Syntax {
            position: 5,
            message: "expected `:` after the object key"
        }
    );
    assert_eq!(parser.feed("}").unwrap_err(), error);
    assert_eq!(parser.finish().unwrap_err(), error);
}

#[test]
fn invalid_utf8_in_strings_is_an_error() {
    let text: &[u8] = b"{\"a\": \"ab\xffcd\"}";
    let error = run_chunks(ParserLimits::default(), [text]).unwrap_err();
    assert_eq!(error.code(), "streaming_json.invalid_utf8");
    let error = run_chunks(ParserLimits::default(), text.chunks(1)).unwrap_err();
    assert_eq!(error.code(), "streaming_json.invalid_utf8");
    let error = run_chunks(ParserLimits::default(), [&b"{\"\xc3(\": 1}"[..]]).unwrap_err();
    assert_eq!(error.code(), "streaming_json.invalid_utf8");
}

// ------------------------------------------------------------------------------------------------
// Limits

#[test]
fn depth_limit() {
    let at_limit = format!("{}{}", "[".repeat(128), "]".repeat(128));
    let outcome = ok(&at_limit);
    assert_eq!(outcome.events.len(), 128);
    let over = format!("{}{}", "[".repeat(129), "]".repeat(129));
    let error = run(&over).unwrap_err();
    assert_eq!(error.code(), "streaming_json.depth_limit");
    assert_eq!(
        error,
        StreamingJsonError::DepthLimit {
            position: 128,
            limit: 128
        }
    );
    // Mixed nesting, custom limit, and a huge depth never recurses.
    let limits = ParserLimits {
        max_depth: 3,
        ..ParserLimits::default()
    };
    let text = br#"{"a": [{"b": 1}]}"#;
    assert!(run_chunks(limits, [&text[..]]).is_ok());
    let text = br#"{"a": [{"b": [1]}]}"#;
    assert_eq!(
        run_chunks(limits, [&text[..]]).unwrap_err().code(),
        "streaming_json.depth_limit"
    );
    // Limits above the supported cap are clamped (values are recursive types).
    let limits = ParserLimits {
        max_depth: usize::MAX,
        ..ParserLimits::default()
    };
    let deep = "[".repeat(1_000_000);
    let error = run_chunks(limits, [deep.as_bytes()]).unwrap_err();
    assert_eq!(
        error,
        StreamingJsonError::DepthLimit {
            position: MAX_SUPPORTED_DEPTH,
            limit: MAX_SUPPORTED_DEPTH
        }
    );
    let deep = "[".repeat(MAX_SUPPORTED_DEPTH);
    let outcome = run_chunks(limits, [deep.as_bytes()]).unwrap();
    assert_eq!(outcome.repairs.len(), MAX_SUPPORTED_DEPTH);
}

#[test]
fn string_limit() {
    let limits = ParserLimits {
        max_string_bytes: 10,
        ..ParserLimits::default()
    };
    let fits = br#"{"a": "0123456789", "0123456789": 1234567890}"#;
    assert!(run_chunks(limits, [&fits[..]]).is_ok());
    for over in [
        &br#"{"a": "0123456789X"}"#[..],
        br#"{"0123456789X": 1}"#,
        br#"{a0123456789X: 1}"#,
        br#"[12345678901]"#,
        br#"["\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"]"#,
    ] {
        let error = run_chunks(limits, [over]).unwrap_err();
        assert_eq!(error.code(), "streaming_json.string_limit");
        let error = run_chunks(limits, over.chunks(3)).unwrap_err();
        assert_eq!(error.code(), "streaming_json.string_limit");
    }
    // A huge string is rejected as soon as it crosses the limit, not at its end.
    let mut parser = StreamingJsonParser::with_limits(ParserLimits {
        max_string_bytes: 1 << 20,
        ..ParserLimits::default()
    });
    parser.feed("{\"a\": \"").unwrap();
    let chunk = "x".repeat(64 * 1024);
    let mut fed = 0;
    let error = loop {
        match parser.feed(&chunk) {
            Ok(_) => fed += chunk.len(),
            Err(error) => break error,
        }
        assert!(fed <= 1 << 20);
    };
    assert_eq!(error.code(), "streaming_json.string_limit");
    assert_eq!(
        error,
        StreamingJsonError::StringLimit {
            position: 6,
            limit: 1 << 20
        }
    );
}

#[test]
fn total_size_limit() {
    let limits = ParserLimits {
        max_total_bytes: 16,
        ..ParserLimits::default()
    };
    assert!(run_chunks(limits, [&b"prose [1, 2, 3] "[..]]).is_ok());
    let error = run_chunks(limits, [&b"prose [1, 2, 3]  "[..]]).unwrap_err();
    assert_eq!(error, StreamingJsonError::SizeLimit { limit: 16 });
    assert_eq!(error.code(), "streaming_json.size_limit");
    let error = run_chunks(limits, b"prose [1, 2, 3, 4]".chunks(5)).unwrap_err();
    assert_eq!(error.code(), "streaming_json.size_limit");
    // Once the root value is complete, further text is ignored, not counted.
    let chunks: [&[u8]; 3] = [b"prose [1, 2, 3]", b" trailing prose", b" and more"];
    assert_eq!(run_chunks(limits, chunks).unwrap().value, json!([1, 2, 3]));
}

#[test]
fn error_codes_are_stable() {
    let errors = [
        StreamingJsonError::Syntax {
            position: 0,
            message: "",
        },
        StreamingJsonError::DepthLimit {
            position: 0,
            limit: 0,
        },
        StreamingJsonError::StringLimit {
            position: 0,
            limit: 0,
        },
        StreamingJsonError::SizeLimit { limit: 0 },
        StreamingJsonError::NoJsonValue,
        StreamingJsonError::InvalidUtf8 { position: 0 },
        StreamingJsonError::InvalidPath {
            input: String::new(),
            message: "",
        },
    ];
    let codes: Vec<&str> = errors.iter().map(StreamingJsonError::code).collect();
    assert_eq!(
        codes,
        [
            "streaming_json.syntax",
            "streaming_json.depth_limit",
            "streaming_json.string_limit",
            "streaming_json.size_limit",
            "streaming_json.no_json_value",
            "streaming_json.invalid_utf8",
            "streaming_json.invalid_path",
        ]
    );
}

// ------------------------------------------------------------------------------------------------
// Paths

#[test]
fn path_display_and_parse_round_trip() {
    let path = JsonPath::from_segments(vec![
        PathSegment::Key("steps".into()),
        PathSegment::Index(2),
        PathSegment::Key("detail".into()),
    ]);
    assert_eq!(path.to_string(), "steps[2].detail");
    assert_eq!("steps[2].detail".parse::<JsonPath>().unwrap(), path);
    assert_eq!(JsonPath::root().to_string(), "");
    assert_eq!("".parse::<JsonPath>().unwrap(), JsonPath::root());
    assert_eq!(
        "[0][1]".parse::<JsonPath>().unwrap().segments(),
        &[PathSegment::Index(0), PathSegment::Index(1)]
    );
    let odd = JsonPath::from_segments(vec![
        PathSegment::Key("a.b".into()),
        PathSegment::Key("".into()),
        PathSegment::Key("quote\"back\\slash\nnl *".into()),
        PathSegment::Key("é".into()),
        PathSegment::Key("0".into()),
    ]);
    let shown = odd.to_string();
    assert_eq!(shown, r#"["a.b"][""]["quote\"back\\slash\nnl *"].é.0"#);
    assert_eq!(shown.parse::<JsonPath>().unwrap(), odd);
    for bad in [
        ".a",
        "a.",
        "a..b",
        "a[",
        "a[x]",
        "a[01]",
        "a[1",
        "a[\"x\"",
        "a b",
        "[*]",
        "a.*",
        "a[99999999999999999999999]",
    ] {
        let error = bad.parse::<JsonPath>().unwrap_err();
        assert_eq!(error.code(), "streaming_json.invalid_path", "{bad}");
    }
}

#[test]
fn path_patterns() {
    let pattern: PathPattern = "items[*].name".parse().unwrap();
    assert_eq!(pattern.to_string(), "items[*].name");
    let path = |text: &str| text.parse::<JsonPath>().unwrap();
    assert!(pattern.matches(&path("items[0].name")));
    assert!(pattern.matches(&path("items[42].name")));
    assert!(!pattern.matches(&path("items[0].price")));
    assert!(!pattern.matches(&path("items.x.name")));
    assert!(!pattern.matches(&path("items[0].name.first")));
    assert!(pattern.may_match_below(&path("items[3]")));
    assert!(!pattern.may_match_below(&path("other")));
    let any_key: PathPattern = "meta.*".parse().unwrap();
    assert!(any_key.matches(&path("meta.author")));
    assert!(!any_key.matches(&path("meta[0]")));
    assert_eq!(any_key.to_string(), "meta.*");
    let star_first: PathPattern = "*[*]".parse().unwrap();
    assert!(star_first.matches(&path("rows[1]")));
    let root: PathPattern = "".parse().unwrap();
    assert!(root.matches(&JsonPath::root()));
    assert!(PathPattern::from(path("a[1]")).matches(&path("a[1]")));
    assert!("a[*".parse::<PathPattern>().is_err());
}

#[test]
fn patterns_select_events() {
    let outcome = ok(r#"{"items": [{"name": "a", "price": 1}, {"name": "b"}]}"#);
    let pattern: PathPattern = "items[*].name".parse().unwrap();
    let names: Vec<&Value> = outcome
        .events
        .iter()
        .filter_map(|event| match event {
            JsonEvent::Done { path, value } if pattern.matches(path) => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(names, [&json!("a"), &json!("b")]);
}

#[test]
fn container_values_choose_which_containers_carry_values() {
    let text = r#"{"items": [{"name": "a", "tags": ["x"]}, {"name": "b", "tags": []}],
                   "meta": {"n": 1}}"#;
    let run = |setting: ContainerValues| run_with(with_setting(&setting), [text.as_bytes()]);
    let all = run(ContainerValues::All).unwrap();
    let none = run(ContainerValues::None).unwrap();
    assert_eq!(
        describe(&none.events),
        [
            "delta items[0].name a",
            "done items[0].name \"a\"",
            "delta items[0].tags[0] x",
            "done items[0].tags[0] \"x\"",
            "closed items[0].tags",
            "closed items[0]",
            "delta items[1].name b",
            "done items[1].name \"b\"",
            "closed items[1].tags",
            "closed items[1]",
            "closed items",
            "done meta.n 1",
            "closed meta",
            "closed ",
        ]
    );
    let matching = run(ContainerValues::Matching(patterns(&["items[*]", "meta"]))).unwrap();
    let container_events = |outcome: &Outcome| -> Vec<String> {
        outcome
            .events
            .iter()
            .filter(|event| match event {
                JsonEvent::Done { value, .. } => value.is_object() || value.is_array(),
                JsonEvent::ContainerDone { .. } => true,
                JsonEvent::Delta { .. } => false,
            })
            .map(|event| describe(std::slice::from_ref(event)).remove(0))
            .collect()
    };
    assert_eq!(
        container_events(&matching),
        [
            "closed items[0].tags",
            r#"done items[0] {"name":"a","tags":["x"]}"#,
            "closed items[1].tags",
            r#"done items[1] {"name":"b","tags":[]}"#,
            "closed items",
            r#"done meta {"n":1}"#,
            "closed ",
        ]
    );
    // No pattern is the same as `None`; the root pattern selects only the root.
    let empty = run(ContainerValues::Matching(Vec::new())).unwrap();
    assert_eq!(empty.events, none.events);
    let root = run(ContainerValues::Matching(patterns(&[""]))).unwrap();
    assert_eq!(
        root.events.last(),
        Some(&JsonEvent::Done {
            path: JsonPath::root(),
            value: all.value.clone(),
        })
    );
    assert_eq!(container_events(&root).len(), 7);
    for outcome in [&none, &matching, &empty, &root] {
        assert_eq!(outcome.value, all.value);
        assert_eq!(outcome.value, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(outcome.repairs, all.repairs);
        assert_event_consistency(outcome);
    }
}

#[test]
fn container_values_apply_to_containers_closed_by_finish() {
    let text = r#"{"steps": [{"detail": "unfinish"#;
    for setting in settings() {
        let outcome = run_with(with_setting(&setting), [text.as_bytes()]).unwrap();
        assert_eq!(outcome.value, json!({"steps": [{"detail": "unfinish"}]}));
        assert_eq!(outcome.repairs.len(), 4);
        let closing: Vec<String> = describe(&outcome.events).split_off(2);
        let expected: Vec<String> = [
            ("steps[0]", r#"{"detail":"unfinish"}"#),
            ("steps", r#"[{"detail":"unfinish"}]"#),
            ("", r#"{"steps":[{"detail":"unfinish"}]}"#),
        ]
        .into_iter()
        .map(|(path, value)| {
            if setting.wants(&path.parse().unwrap()) {
                format!("done {path} {value}")
            } else {
                format!("closed {path}")
            }
        })
        .collect();
        assert_eq!(closing, expected, "{setting:?}");
    }
}

#[test]
fn parser_options_are_kept() {
    let setting = ContainerValues::Matching(patterns(&["a[*]"]));
    let parser = StreamingJsonParser::with_options(ParserOptions {
        limits: ParserLimits {
            max_depth: 10_000,
            ..ParserLimits::default()
        },
        container_values: setting.clone(),
    });
    assert_eq!(parser.container_values(), &setting);
    assert_eq!(parser.limits().max_depth, MAX_SUPPORTED_DEPTH);
    assert_eq!(
        StreamingJsonParser::new().container_values(),
        &ContainerValues::All
    );
}

#[test]
fn word_at_a_time_scan_finds_the_first_quote_or_backslash() {
    let naive = |bytes: &[u8], quote: u8| {
        bytes
            .iter()
            .position(|&c| c == quote || c == b'\\')
            .unwrap_or(bytes.len())
    };
    // Bytes next to the searched ones (borrows of the word-at-a-time trick), zero bytes and
    // non-ASCII bytes, at every offset and length around the eight-byte words.
    const ALPHABET: &[u8] = b"\"'\\\x00\x01\x21\x23\x5b\x5d\x80\xa2\xdc\xffab";
    let mut rng = Rng(0x5EED_0005);
    for _ in 0..20_000 {
        let len = rng.below(40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(4) == 0 {
                    ALPHABET[rng.below(ALPHABET.len())]
                } else {
                    b'a' + rng.below(26) as u8
                }
            })
            .collect();
        for quote in [b'"', b'\''] {
            assert_eq!(
                parser::find_quote_or_backslash(&bytes, quote),
                naive(&bytes, quote),
                "{bytes:?} {quote}"
            );
        }
    }
}

#[test]
fn merge_deltas_joins_only_adjacent_same_path() {
    let a = JsonPath::from_segments(vec![PathSegment::Key("a".into())]);
    let b = JsonPath::from_segments(vec![PathSegment::Key("b".into())]);
    let delta = |path: &JsonPath, text: &str| JsonEvent::Delta {
        path: path.clone(),
        delta: text.into(),
    };
    let merged = merge_deltas(vec![
        delta(&a, "x"),
        delta(&a, "y"),
        delta(&b, "z"),
        delta(&a, "w"),
    ]);
    assert_eq!(
        merged,
        vec![delta(&a, "xy"), delta(&b, "z"), delta(&a, "w")]
    );
}

// ------------------------------------------------------------------------------------------------
// Split invariance (property test)

const DOCUMENTS: &[&str] = &[
    r#"{"title": "Hello", "tips": ["one", "two"], "n": -0.5e-3}"#,
    r#"{"e": "q\" b\\ s\/ \b\f\n\r\t \u00e9 \u4E2D \ud83d\ude00 😀 ü end"}"#,
    r#"[{"a": [1, 2, {"b": null}]}, [], {}, [[[]]], true, false, null, 0, -0, 1E+2]"#,
    "Sure, here it is:\n```json\n{\"steps\": [{\"title\": \"a\", \"detail\": \"ß∂ƒ\"}]}\n```\nBye!",
    "{title: 'It\\'s', 'tips': ['a', 'b',], n: 1,}",
    "{\"a\": 1 \"b\": [1 2 \"x\"] c: {}}",
    r#"{"a": "x\ud83dy", "b": "\ude00", "c": "\ud83d\n", "d": "\q", "e": "\ud83d\ud83d\ude00"}"#,
    r#"{"steps": [{"detail": "unfinished \u00e9 text"#,
    r#"{"a": "x\u00"#,
    r#"{"a": "x\ud83d"#,
    r#"{"a": "x\ud83d\"#,
    r#"{"a": 12"#,
    r#"{"a": 1.5e"#,
    r#"{"a": -"#,
    r#"{"a": tr"#,
    r#"{"a": 1, "b"#,
    r#"{"a": 1, "b" :"#,
    r#"[1, 2,"#,
    r#"{"a": [1, 2.5, "x", {"k": fals"#,
    "{'single': 'quote \"inside\" \\' and é',}",
    r#"{"deep": [[[[[[[[[[{"x": [1, [2, [3]]]}]]]]]]]]]]}"#,
    r#"{"bad": 01}"#,
    r#"{"bad" 1}"#,
    r#"{"a": "b"]"#,
    "not json at all",
    "{\"a\": \"caf\u{e9}\", \"\u{4e2d}\u{6587}\": \"\u{1F600}\u{1F601}\"}",
    "{\"raw\": \"line\nnext\"}",
    "[\"\\u00\"]",
    "{\"a\":\"\\uD83D\\uDE00\\uD83D\"}",
];

#[test]
fn split_invariance_on_handwritten_documents() {
    let mut rng = Rng(0x5EED_0001);
    for text in DOCUMENTS {
        assert_split_invariant(&mut rng, text.as_bytes(), 60);
    }
}

/// Generates a random JSON value (test code; recursion bounded by `depth`).
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let kind = if depth == 0 {
        rng.below(4)
    } else {
        rng.below(7)
    };
    match kind {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => match rng.below(4) {
            0 => json!(rng.below(1000)),
            1 => json!(-(rng.below(1_000_000) as i64)),
            2 => json!((rng.below(100_000) as f64) / 64.0 - 500.0),
            _ => json!(rng.next()),
        },
        3 => Value::String(random_string(rng)),
        4 | 5 => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                map.insert(random_string(rng), random_value(rng, depth - 1));
            }
            Value::Object(map)
        }
        _ => Value::Array(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
    }
}

fn random_string(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a", "b", "key", " ", "\"", "\\", "/", "\n", "\t", "\u{1}", "é", "中", "😀", "\u{fffd}",
        "'", "{", "]", ",", ":", "0",
    ];
    (0..rng.below(8))
        .map(|_| PIECES[rng.below(PIECES.len())])
        .collect()
}

/// Serializes with random whitespace and random `\u` escapes for non-ASCII text.
fn serialize_noisy(rng: &mut Rng, value: &Value) -> String {
    let compact = if rng.below(2) == 0 {
        serde_json::to_string(value).unwrap()
    } else {
        serde_json::to_string_pretty(value).unwrap()
    };
    let mut out = String::with_capacity(compact.len() * 2);
    let mut in_string = false;
    let mut escaped = false;
    for c in compact.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
            } else if c == '\\' {
                escaped = true;
                out.push(c);
            } else if c == '"' {
                in_string = false;
                out.push(c);
            } else if !c.is_ascii() && rng.below(2) == 0 {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            } else {
                out.push(c);
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
            if matches!(c, ',' | ':' | '[' | '{') && rng.below(3) == 0 {
                out.push_str([" ", "\n", "\t", "\r\n  "][rng.below(4)]);
            }
        }
    }
    out
}

#[test]
fn split_invariance_on_random_documents() {
    let mut rng = Rng(0x5EED_0002);
    for _ in 0..400 {
        let mut value = random_value(&mut rng, 4);
        if !value.is_object() && !value.is_array() {
            value = json!([value]);
        }
        let text = serialize_noisy(&mut rng, &value);
        let outcome = ok(&text);
        assert_eq!(outcome.value, value, "{text}");
        assert!(outcome.repairs.is_empty(), "{text}");
        assert_event_consistency(&outcome);
        let none = run_with(with_setting(&ContainerValues::None), [text.as_bytes()]).unwrap();
        assert_event_consistency(&none);
        assert_split_invariant(&mut rng, text.as_bytes(), 8);
        // Every prefix is either repairable or a typed error, and the same at any split.
        let cut = rng.below(text.len());
        let prefix = &text.as_bytes()[..cut];
        if let Ok(outcome) = run_chunks(ParserLimits::default(), [prefix]) {
            assert_event_consistency_allowing_duplicates(&outcome);
        }
        assert_split_invariant(&mut rng, prefix, 4);
    }
}

/// Like [`assert_event_consistency`] but tolerant of keys repeated by random generation.
fn assert_event_consistency_allowing_duplicates(outcome: &Outcome) {
    let root_done = outcome.events.iter().rev().find_map(|event| match event {
        JsonEvent::Done { path, value } if path.is_root() => Some(value),
        _ => None,
    });
    assert_eq!(root_done, Some(&outcome.value));
}

#[test]
fn feed_str_at_char_boundaries_matches_feed_bytes() {
    let text = DOCUMENTS[1];
    let mut parser = StreamingJsonParser::new();
    let mut events = Vec::new();
    for (i, c) in text.char_indices() {
        events.extend(parser.feed(&text[i..i + c.len_utf8()]).unwrap());
    }
    events.extend(parser.finish().unwrap().events);
    assert_eq!(merge_deltas(events), merge_deltas(ok(text).events));
}

/// Random byte soup built from JSON-ish fragments: must never panic, and the outcome must not
/// depend on chunking.
#[test]
fn random_garbage_never_panics() {
    const FRAGMENTS: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b"'",
        b":",
        b",",
        b" ",
        b"\\",
        b"\\u",
        b"d83d",
        b"\\ude00",
        b"00e9",
        b"true",
        b"fal",
        b"null",
        b"-",
        b"1",
        b"0",
        b".",
        b"e",
        b"+",
        b"key",
        b"\xc3",
        b"\xa9",
        b"\xff",
        b"\xf0\x9f",
        b"\x98\x80",
        b"\n",
        b"```json",
        b"x",
        b"$",
    ];
    let mut rng = Rng(0x5EED_0003);
    for _ in 0..3000 {
        let mut text = Vec::new();
        for _ in 0..rng.below(40) {
            text.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        }
        assert_split_invariant(&mut rng, &text, 3);
    }
}

// ------------------------------------------------------------------------------------------------
// Corpus

/// Feeds every file of `tests/streaming_json_corpus/`. File names state the expectation:
/// `ok_*` must parse without repairs, `repair_*` must parse with at least one repair,
/// `err_<code>__*` must fail with `streaming_json.<code>`, `any_*` may do either. All must be
/// split-invariant and none may panic.
#[test]
fn corpus_inputs_give_a_result_or_a_typed_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/streaming_json_corpus");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("corpus {} unreadable: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 25,
        "corpus has only {} files",
        entries.len()
    );
    let mut rng = Rng(0x5EED_0004);
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = run_chunks(ParserLimits::default(), [&bytes[..]]);
        if let Some(rest) = name.strip_prefix("err_") {
            let code = rest.split("__").next().unwrap();
            let error = outcome.expect_err(&name);
            assert_eq!(error.code(), format!("streaming_json.{code}"), "{name}");
        } else if name.starts_with("ok_") {
            let outcome = outcome.unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(outcome.repairs.is_empty(), "{name}: {:?}", outcome.repairs);
            assert_event_consistency(&outcome);
        } else if name.starts_with("repair_") {
            let outcome = outcome.unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(!outcome.repairs.is_empty(), "{name}");
            assert_event_consistency_allowing_duplicates(&outcome);
        } else {
            assert!(
                name.starts_with("any_"),
                "unexpected corpus file name {name}"
            );
        }
        assert_split_invariant(&mut rng, &bytes, 20);
    }
}
