//! The JSON report matches `schema/trends-report.schema.json`.
//!
//! A small validator for the parts of JSON Schema the file uses (type, enum, properties,
//! required, additionalProperties, items, minItems, minimum, maximum, local $ref), so that the
//! schema and the code cannot drift apart without a failing test.

use chrono::NaiveDate;
use heeldiary_trends::cohort::{self, Scenario, Variant};
use heeldiary_trends::{analyse, Options};
use serde_json::Value;

const SCHEMA: &str = include_str!("../../../schema/trends-report.schema.json");

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

fn validate(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        validate(root, &root["$defs"][name], value, path, errors);
    }
    match schema.get("type") {
        Some(Value::String(name)) if !type_matches(name, value) => {
            errors.push(format!("{path}: expected {name}, got {value}"));
        }
        Some(Value::Array(names))
            if !names
                .iter()
                .any(|name| type_matches(name.as_str().unwrap_or_default(), value)) =>
        {
            errors.push(format!("{path}: expected one of {names:?}, got {value}"));
        }
        _ => {}
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        if !choices.contains(value) {
            errors.push(format!("{path}: {value} not in {choices:?}"));
        }
    }
    if let (Some(minimum), Some(number)) = (schema.get("minimum"), value.as_f64()) {
        if number < minimum.as_f64().unwrap_or(f64::MIN) {
            errors.push(format!("{path}: {number} below {minimum}"));
        }
    }
    if let (Some(maximum), Some(number)) = (schema.get("maximum"), value.as_f64()) {
        if number > maximum.as_f64().unwrap_or(f64::MAX) {
            errors.push(format!("{path}: {number} above {maximum}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(key) {
                errors.push(format!("{path}: missing {key}"));
            }
        }
        for (key, item) in object {
            match properties.and_then(|properties| properties.get(key)) {
                Some(property) => validate(root, property, item, &format!("{path}.{key}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: unexpected key {key}"));
                }
                None => {}
            }
        }
    }
    if let Some(array) = value.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (array.len() as u64) < min {
                errors.push(format!("{path}: fewer than {min} items"));
            }
        }
        if let Some(items) = schema.get("items") {
            for (index, item) in array.iter().enumerate() {
                validate(root, items, item, &format!("{path}[{index}]"), errors);
            }
        }
    }
}

#[test]
fn reports_of_every_scenario_match_the_schema() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    assert!(SCHEMA.contains("red_flags"));
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    for scenario in Scenario::ALL {
        for variant in Variant::ALL {
            let truth = cohort::ground_truth(scenario, start, 90);
            let entries = cohort::generate_variant(scenario, variant, 5, start, 90);
            let report = analyse(&entries, &Options::new(truth.as_of));
            let json = serde_json::to_value(&report).unwrap();
            let mut errors = Vec::new();
            validate(&schema, &schema, &json, "$", &mut errors);
            assert!(errors.is_empty(), "{}: {errors:#?}", scenario.name());
            let keys: Vec<&str> = json
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut expected = vec![
                "adherence",
                "pattern",
                "red_flags",
                "shifts",
                "treatments",
                "trends",
                "window",
            ];
            expected.sort();
            let mut keys_sorted = keys.clone();
            keys_sorted.sort();
            assert_eq!(keys_sorted, expected);
        }
    }
}

#[test]
fn an_empty_diary_matches_the_schema() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let as_of = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let json = serde_json::to_value(analyse(&[], &Options::new(as_of))).unwrap();
    let mut errors = Vec::new();
    validate(&schema, &schema, &json, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_validator_catches_a_wrong_report() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let as_of = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let mut json = serde_json::to_value(analyse(&[], &Options::new(as_of))).unwrap();
    json["pattern"]["kind"] = Value::from("diagnosed");
    json["extra"] = Value::from(1);
    let mut errors = Vec::new();
    validate(&schema, &schema, &json, "$", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:#?}");
}
