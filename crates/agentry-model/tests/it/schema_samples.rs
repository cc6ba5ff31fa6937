//! `schema_sample` against real `schemars` output: every sample validates against
//! the generated schema and deserializes into the Rust type it came from.
use std::collections::BTreeMap;

use agentry_model::schema_sample::{sample_for_schema, sample_for_schema_with_hint};
use schemars::{JsonSchema, schema_for};
use serde::Deserialize;
use serde_json::Value;

#[allow(dead_code)]
#[derive(Debug, Deserialize, JsonSchema)]
struct Address {
    street: String,
    city: String,
    #[schemars(length(min = 5, max = 5))]
    zip: String,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize, JsonSchema)]
enum Color {
    Red,
    Green,
    Custom { r: u8, g: u8, b: u8 },
}

#[allow(dead_code)]
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Shape {
    Circle { radius: f64 },
    Rect { w: u32, h: u32 },
}

#[allow(dead_code)]
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum IdOrName {
    Id(u64),
    Name(String),
}

#[allow(dead_code)]
#[derive(Debug, Deserialize, JsonSchema)]
struct Tree {
    label: String,
    children: Vec<Tree>,
    parent: Option<Box<Tree>>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Order {
    /// The customer's request in their words.
    summary: String,
    id: IdOrName,
    #[schemars(range(min = 1, max = 99))]
    quantity: u32,
    price: f32,
    express: bool,
    tags: Vec<String>,
    #[schemars(length(min = 2))]
    lines: Vec<(String, i64)>,
    shipping: Address,
    billing: Option<Address>,
    color: Color,
    shape: Shape,
    notes: BTreeMap<String, i32>,
    tree: Tree,
    #[schemars(email)]
    contact: String,
    #[schemars(regex(pattern = r"^[A-Z]{2}-\d{3}$"))]
    code: String,
    ratio: Option<f64>,
    unit: (),
}

fn check<T: JsonSchema + for<'de> Deserialize<'de>>() {
    let schema = serde_json::to_value(schema_for!(T)).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    for sample in [
        sample_for_schema(&schema),
        sample_for_schema_with_hint(&schema, "two red chairs, delivered Friday"),
    ] {
        let errors: Vec<String> = validator
            .iter_errors(&sample)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{}: {sample} fails {errors:?}\nschema: {schema}",
            std::any::type_name::<T>()
        );
        if let Err(e) = serde_json::from_value::<T>(sample.clone()) {
            panic!(
                "{}: {sample} does not deserialize: {e}",
                std::any::type_name::<T>()
            );
        }
    }
}

#[test]
fn samples_of_schemars_types_validate_and_deserialize() {
    check::<Address>();
    check::<Color>();
    check::<Shape>();
    check::<IdOrName>();
    check::<Tree>();
    check::<Order>();
    check::<Vec<Shape>>();
    check::<Option<Order>>();
    check::<BTreeMap<String, Color>>();
}

#[test]
fn hint_lands_in_the_natural_field() {
    let schema = serde_json::to_value(schema_for!(Order)).unwrap();
    let v = sample_for_schema_with_hint(&schema, "two red chairs");
    assert_eq!(v["summary"], Value::from("two red chairs"));
}
