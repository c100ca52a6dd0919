//! How two contacts' values combine when they merge. Both store backends apply these rules, so they live here.

use serde_json::{Map, Value};

/// Custom fields key by key. `by_update` holds both contacts' fields with the most recently updated first,
/// `by_creation` the same two with the earlier created first; a key for which `keeps_oldest` is true is decided in
/// the second order, every other key in the first. In its order, the first non-empty value wins; when both are
/// empty, the preferred one's is kept.
pub fn merged_fields(
    by_update: [&Map<String, Value>; 2],
    by_creation: [&Map<String, Value>; 2],
    keeps_oldest: impl Fn(&str) -> bool,
) -> Map<String, Value> {
    let mut merged = Map::new();
    for key in by_update[0].keys().chain(by_update[1].keys()) {
        if merged.contains_key(key) {
            continue;
        }
        let [preferred, other] = if keeps_oldest(key) { by_creation } else { by_update };
        let value = match (preferred.get(key), other.get(key)) {
            (Some(first), Some(second)) if is_empty_value(first) && !is_empty_value(second) => second,
            (Some(first), _) => first,
            (None, Some(second)) => second,
            (None, None) => continue,
        };
        merged.insert(key.clone(), value.clone());
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

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn preferred_non_empty_values_win() {
        let preferred = object(json!({"a": "new", "b": "", "c": null, "d": [], "e": 0, "f": false}));
        let other = object(json!({"a": "old", "b": "kept", "c": 7, "d": ["x"], "e": 5, "f": true, "g": "only"}));
        let merged = Value::Object(merged_fields([&preferred, &other], [&other, &preferred], |_| false));
        assert_eq!(merged, json!({"a": "new", "b": "kept", "c": 7, "d": ["x"], "e": 0, "f": false, "g": "only"}));
    }

    #[test]
    fn fields_that_keep_the_oldest_value_prefer_the_earlier_contact() {
        let recent = object(json!({"source": "webinar", "plan": "pro", "region": ""}));
        let earlier = object(json!({"source": "trade_show", "plan": "free", "region": "华东"}));
        let keeps_oldest = |key: &str| key == "source" || key == "region";
        let merged = Value::Object(merged_fields([&recent, &earlier], [&earlier, &recent], keeps_oldest));
        assert_eq!(merged, json!({"source": "trade_show", "plan": "pro", "region": "华东"}));
        let merged = Value::Object(merged_fields([&recent, &earlier], [&recent, &earlier], keeps_oldest));
        assert_eq!(merged, json!({"source": "webinar", "plan": "pro", "region": "华东"}));
    }
}
