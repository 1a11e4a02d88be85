//! Canonical JSON: keys sorted at every level, two-space indentation, a final newline, so the
//! same value is always the same bytes (whatever map type `serde_json` was built with).

use serde::Serialize;
use serde_json::Value;

/// `value` as canonical, pretty-printed JSON bytes.
pub fn to_canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let sorted = sort_keys(serde_json::to_value(value)?);
    let mut out = serde_json::to_vec_pretty(&sorted)?;
    out.push(b'\n');
    Ok(out)
}

/// Rebuilds every object with its keys inserted in sorted order: sorted whether the map type
/// sorts (the default `BTreeMap`) or keeps insertion order (`preserve_order`).
pub fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sort_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": [{"z": 1, "y": 2}]});
        let text = String::from_utf8(to_canonical_json(&v).unwrap()).unwrap();
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
        assert!(text.find("\"y\"").unwrap() < text.find("\"z\"").unwrap());
        assert!(text.ends_with("}\n"));
    }
}
