//! `schema/entry.schema.json` describes exactly the entry the code reads and writes.

mod schema_rule;

use std::collections::BTreeSet;

use heeldiary_core::{Field, Location, Severity, Side, Treatment, Trigger};
use serde_json::Value;

fn schema() -> Value {
    let text = include_str!("../../../schema/entry.schema.json");
    serde_json::from_str(text).expect("the schema is JSON")
}

fn words(schema: &Value, property: &str) -> Vec<String> {
    let p = &schema["properties"][property];
    let list = if p["enum"].is_array() {
        &p["enum"]
    } else {
        &p["items"]["enum"]
    };
    list.as_array()
        .unwrap_or_else(|| panic!("{property} has no enum"))
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

fn all<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}

#[test]
fn properties_are_the_fields_plus_id_and_backfilled() {
    let schema = schema();
    let described: BTreeSet<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut expected: BTreeSet<String> =
        Field::ALL.iter().map(|f| f.as_str().to_string()).collect();
    expected.insert("id".into());
    expected.insert("backfilled".into());
    assert_eq!(described, expected);
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["day"]));
}

#[test]
fn vocabularies_match_the_code() {
    let schema = schema();
    assert_eq!(words(&schema, "locations"), all(Location::ALL));
    assert_eq!(words(&schema, "side"), all(Side::ALL));
    assert_eq!(words(&schema, "numbness"), all(Severity::ALL));
    assert_eq!(words(&schema, "worse_with"), all(Trigger::ALL));
    assert_eq!(words(&schema, "eased_with"), all(Trigger::ALL));
    assert_eq!(words(&schema, "treatments"), all(Treatment::ALL));
}

#[test]
fn limits_match_the_code() {
    let p = &schema()["properties"];
    assert_eq!(p["note"]["maxLength"], heeldiary_core::MAX_NOTE_CHARS);
    assert_eq!(p["steps"]["maximum"], heeldiary_core::MAX_STEPS);
    assert_eq!(
        p["standing_minutes"]["maximum"],
        heeldiary_core::MAX_STANDING_MINUTES
    );
    for pain in [
        "first_step_pain",
        "rest_pain",
        "sitting_pain",
        "activity_pain",
    ] {
        assert_eq!(
            (p[pain]["minimum"].as_u64(), p[pain]["maximum"].as_u64()),
            (Some(0), Some(10)),
            "{pain}"
        );
    }
}

#[test]
fn every_property_keeps_the_rule_of_its_kind() {
    let schema = schema();
    schema_rule::assert_fields_described(
        &schema["properties"],
        &schema,
        &["id", "backfilled"],
        false,
        "entry.schema.json",
    );
}
