//! Validation of published messages against the JSON Schemas in `schemas/`.

use serde_json::Value;

fn load(path: &str) -> Value {
    let full = format!("{}/schemas/{path}", crate::common::ROOT);
    serde_json::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap()
}

/// `path` relative to `schemas/`, e.g. `messages/event.schema.json`.
pub fn validator(path: &str) -> jsonschema::Validator {
    let defs = load("messages/defs.schema.json");
    let defs_id = defs["$id"].as_str().unwrap().to_owned();
    jsonschema::options()
        .should_validate_formats(true)
        .with_resource(defs_id, jsonschema::Resource::from_contents(defs).unwrap())
        .build(&load(path))
        .unwrap_or_else(|e| panic!("schema {path} compiles: {e}"))
}

pub fn assert_valid(path: &str, instance: &Value) {
    let validator = validator(path);
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{instance} violates {path}: {errors:?}");
}

/// Every message a tap has seen is valid against `path`.
pub async fn assert_all_valid(tap: &super::Tap, path: &str) {
    for m in tap.messages().await {
        assert_valid(path, &m.body);
    }
}
