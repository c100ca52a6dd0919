//! How two contacts' values combine when they merge. Both store backends apply these rules, so they live here.

use serde_json::{Map, Value};

/// Custom fields key by key: the preferred contact's value unless it is empty, otherwise the other's.
pub fn merged_fields(preferred: &Map<String, Value>, other: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = other.clone();
    for (key, value) in preferred {
        if !is_empty_value(value) || merged.get(key).is_none_or(is_empty_value) {
            merged.insert(key.clone(), value.clone());
        }
    }
    merged
}

/// What counts as no value when merging: null, blank text, an empty list. `0` and `false` are values.
pub fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn preferred_non_empty_values_win() {
        let object = |value: Value| value.as_object().cloned().unwrap_or_default();
        let preferred = object(json!({"a": "new", "b": "", "c": null, "d": [], "e": 0, "f": false}));
        let other = object(json!({"a": "old", "b": "kept", "c": 7, "d": ["x"], "e": 5, "f": true, "g": "only"}));
        let merged = Value::Object(merged_fields(&preferred, &other));
        assert_eq!(merged, json!({"a": "new", "b": "kept", "c": 7, "d": ["x"], "e": 0, "f": false, "g": "only"}));
    }
}
