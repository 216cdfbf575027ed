//! `schema/openapi.yaml` names and bounds every field as the field table does: in an
//! operation's patch, in an entry, and among an entry state's field names.

mod schema_rule;

use heeldiary_core::Field;
use serde_json::Value;

fn spec() -> Value {
    serde_norway::from_str(include_str!("../../../schema/openapi.yaml"))
        .expect("the OpenAPI description is YAML")
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    &spec["components"]["schemas"][name]
}

#[test]
fn a_patch_may_set_every_field_and_clear_the_clearable() {
    let spec = spec();
    let patch = schema(&spec, "Patch");
    assert_eq!(patch["additionalProperties"], false);
    schema_rule::assert_fields_described(&patch["properties"], &spec, &[], true, "Patch");
}

#[test]
fn an_entry_has_every_field_besides_its_id_and_backfilled() {
    let spec = spec();
    let entry = schema(&spec, "Entry");
    assert_eq!(entry["additionalProperties"], false);
    schema_rule::assert_fields_described(
        &entry["properties"],
        &spec,
        &["id", "backfilled"],
        false,
        "Entry",
    );
    assert_eq!(
        entry["required"],
        serde_json::json!(["id", "day", "recorded_at", "backfilled"])
    );
}

#[test]
fn an_entry_state_names_exactly_the_fields() {
    let spec = spec();
    let names = &schema(&spec, "EntryState")["properties"]["fields"]["propertyNames"]["enum"];
    let expected: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(names, &serde_json::json!(expected));
}
