//! Legacy index specs (MongoDB < 3.4, `v: 1`) made acceptable to a current server, as
//! `mongorestore --convertLegacyIndexes` does (mongo-tools `bsonutil.ConvertLegacyIndexKeyValue`):
//! a key value that is 0, an empty string, or neither a number nor a string becomes 1, a
//! float within 1e-9 of zero becomes ±1; options a current server does not know (`safe`,
//! `dropDups`, …) are dropped; and an index whose converted key repeats an earlier one is left
//! out, as mongorestore does. `v` is dropped so the server builds its current version.

use mongodb::bson::{Bson, Document};

/// Index options a current server accepts (mongo-tools' `validIndexOptions`).
const VALID_OPTIONS: &[&str] = &[
    "2dsphereIndexVersion",
    "background",
    "bits",
    "bucketSize",
    "coarsestIndexedLevel",
    "collation",
    "default_language",
    "expireAfterSeconds",
    "finestIndexedLevel",
    "hidden",
    "key",
    "language_override",
    "max",
    "min",
    "name",
    "partialFilterExpression",
    "sparse",
    "storageEngine",
    "textIndexVersion",
    "unique",
    "v",
    "weights",
    "wildcardProjection",
];

const EPSILON: f64 = 1e-9;

/// The converted value, if this key value needs converting.
fn convert_value(v: &Bson) -> Option<Bson> {
    match v {
        Bson::Int32(0) | Bson::Int64(0) => Some(Bson::Int32(1)),
        Bson::Int32(_) | Bson::Int64(_) => None,
        Bson::Double(d) if d.abs() < EPSILON => Some(Bson::Int32(if *d >= 0.0 { 1 } else { -1 })),
        Bson::Double(_) => None,
        Bson::Decimal128(d) => {
            let text = d.to_string();
            let zero = text
                .trim_start_matches(['-', '+'])
                .split(['E', 'e'])
                .next()
                .is_some_and(|m| m.chars().all(|c| c == '0' || c == '.'));
            zero.then_some(Bson::Int32(1))
        }
        Bson::String(s) if s.is_empty() => Some(Bson::Int32(1)),
        Bson::String(_) => None,
        _ => Some(Bson::Int32(1)),
    }
}

fn as_number(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

/// mongo-tools' `IsIndexKeysEqual`: same fields in the same order, equal strings, numbers
/// within 1e-9.
fn same_keys(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| {
            ka == kb
                && match (va, vb) {
                    (Bson::String(x), Bson::String(y)) => x == y,
                    _ => matches!((as_number(va), as_number(vb)), (Some(x), Some(y)) if (x - y).abs() < EPSILON),
                }
        })
}

/// Convert every legacy spec in place. Returns (index name, what changed) for each spec that
/// changed or was left out.
pub fn convert_all(specs: &mut Vec<Document>) -> Vec<(String, String)> {
    let mut changes = Vec::new();
    let mut seen: Vec<Document> = Vec::new();
    let mut out = Vec::with_capacity(specs.len());
    for mut spec in std::mem::take(specs) {
        let name = spec.get_str("name").unwrap_or("?").to_string();
        let legacy = matches!(spec.get("v").and_then(as_number), Some(v) if v < 2.0);
        let mut what = Vec::new();
        if let Ok(key) = spec.get_document_mut("key") {
            for (field, value) in key.iter_mut() {
                if let Some(new) = convert_value(value) {
                    what.push(format!("key {field}: {value} -> {new}"));
                    *value = new;
                }
            }
        }
        if legacy || !what.is_empty() {
            let unknown: Vec<String> = spec
                .keys()
                .filter(|k| !VALID_OPTIONS.contains(&k.as_str()))
                .cloned()
                .collect();
            for k in unknown {
                spec.remove(&k);
                what.push(format!("unknown option {k} dropped"));
            }
            if legacy {
                spec.remove("v");
                what.push("v: 1 -> the server's current version".into());
            }
        }
        let key = spec.get_document("key").cloned().unwrap_or_default();
        if seen.iter().any(|k| same_keys(k, &key)) {
            changes.push((
                name,
                "left out: after conversion its key repeats an earlier index's (as mongorestore does)".into(),
            ));
            continue;
        }
        seen.push(key);
        if !what.is_empty() {
            changes.push((name, what.join(", ")));
        }
        out.push(spec);
    }
    *specs = out;
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    /// mongo-tools' `Test_ConvertLegacyIndexKeys` cases for the current rules.
    #[test]
    fn converts_key_values_like_mongo_tools() {
        let mut specs = vec![doc! { "v": 1, "name": "x", "key": {
            "a": 0, "b": 0i64, "c": 0.0, "d": 1e-10, "e": -1e-10, "f": 2, "g": -3i64,
            "h": -1.1, "i": true, "j": "", "k": "2dsphere", "l": Bson::Null,
        }, "safe": true }];
        let changes = convert_all(&mut specs);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            specs[0],
            doc! { "name": "x", "key": {
                "a": 1, "b": 1, "c": 1, "d": 1, "e": -1, "f": 2, "g": -3i64,
                "h": -1.1, "i": 1, "j": 1, "k": "2dsphere", "l": 1,
            } }
        );
        assert!(
            changes[0].1.contains("key i: true -> 1"),
            "{}",
            changes[0].1
        );
        assert!(changes[0].1.contains("unknown option safe dropped"));
    }

    /// mongo-tools' `duplicate_index_key` fixture: three v:1 indexes on `foo` whose keys are
    /// the same once converted; only the first is built.
    #[test]
    fn duplicate_keys_after_conversion_are_left_out() {
        let meta = r#"{"options":{},"indexes":[{"v":1,"key":{"_id":1},"name":"_id_","ns":"duplicate_index_key.duplicate_index_key"},{"v":1,"key":{"foo":""},"name":"foo_","ns":"duplicate_index_key.duplicate_index_key"},{"v":1,"key":{"foo":1.0},"name":"foo_1.0","ns":"duplicate_index_key.duplicate_index_key"},{"v":1,"key":{"foo":1},"name":"foo_1","ns":"duplicate_index_key.duplicate_index_key"}]}"#;
        let m = super::super::parse_metadata(meta, "duplicate_index_key").unwrap();
        let mut specs: Vec<Document> = m
            .indexes
            .into_iter()
            .filter(|i| i.get_str("name").ok() != Some("_id_"))
            .collect();
        let changes = convert_all(&mut specs);
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].get_str("name").unwrap(), "foo_");
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(changes[1].1.starts_with("left out"));
    }

    /// A current (v: 2) spec is left exactly as it is.
    #[test]
    fn current_specs_are_untouched() {
        let mut specs = vec![doc! { "v": 2, "key": { "a": 1, "b": -1 }, "name": "a_1_b_-1" }];
        let before = specs.clone();
        assert!(convert_all(&mut specs).is_empty());
        assert_eq!(specs, before);
    }
}
