//! `schema/openapi.yaml` keeps up with the code: every route, error code and limit appears in it.

use heeldiary_core::wire::{
    ErrorCode, DEFAULT_PULL_LIMIT, MAX_LABEL_CHARS, MAX_PULL_LIMIT, MAX_PUSH_OPS,
};

const SPEC: &str = include_str!("../../../schema/openapi.yaml");

#[test]
fn every_route_is_described() {
    assert!(SPEC.starts_with("openapi: 3.1"));
    for path in [
        "/healthz:",
        "/v1/enrol:",
        "/v1/push:",
        "/v1/pull:",
        "/v1/entries/{entry_id}:",
        "/v1/shares:",
        "/v1/shares/{provider_id}:",
        "/v1/access-log:",
        "/v1/provider/patients:",
        "/v1/provider/patients/{patient_id}/entries:",
        "/v1/provider/patients/{patient_id}/trends:",
        "/v1/research-consent:",
        "/v1/export:",
        "/v1/export/fhir/{file}:",
    ] {
        assert!(SPEC.contains(&format!("\n  {path}\n")), "{path} missing");
    }
}

#[test]
fn every_error_code_is_listed() {
    for code in [
        ErrorCode::MalformedRequest,
        ErrorCode::InvalidValue,
        ErrorCode::ClockAhead,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidCode,
        ErrorCode::NotFound,
        ErrorCode::PayloadTooLarge,
        ErrorCode::TooManyRequests,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ] {
        let name = serde_json::to_value(code).unwrap();
        let name = name.as_str().unwrap();
        assert!(
            SPEC.contains(&format!("        - {name}\n")),
            "{name} missing"
        );
    }
}

#[test]
fn limits_match_the_wire_constants() {
    for line in [
        format!("maxItems: {MAX_PUSH_OPS}"),
        format!("maximum: {MAX_PULL_LIMIT}"),
        format!("default: {DEFAULT_PULL_LIMIT}"),
        format!("maxLength: {MAX_LABEL_CHARS}"),
    ] {
        assert!(SPEC.contains(&line), "`{line}` missing");
    }
}
