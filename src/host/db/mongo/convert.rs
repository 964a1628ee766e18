//! Rhai values ↔ BSON, following MongoDB Extended JSON v2 for the types Rhai lacks.
//!
//! | BSON                | Rhai (documents read with `mongo_find`)              | Rhai → BSON          |
//! |---------------------|------------------------------------------------------|----------------------|
//! | Double              | float                                                | float → Double       |
//! | Int32               | int                                                  | int in i32 → Int32   |
//! | Int64 beyond i32    | int                                                  | other int → Int64    |
//! | Int64 within i32    | `#{"$numberLong": "5"}` (so it stays an Int64)       | same map → Int64     |
//! | String, Boolean     | string, bool                                         | string, bool         |
//! | Null                | `()`                                                 | `()` → Null          |
//! | ObjectId            | `#{"$oid": "64b7…"}`                                 | same map             |
//! | DateTime            | `#{"$date": "2024-05-01T12:00:00.123Z"}`             | same map, or a `Time`|
//! | Decimal128          | `#{"$numberDecimal": "12.50"}`                       | same map             |
//! | Binary              | `#{"$binary": #{"base64": "…", "subType": "00"}}`    | same map, or a blob  |
//! | others              | their canonical Extended JSON map                    | same map             |
//!
//! Rhai maps keep keys sorted, so field order is not preserved through a Rhai map: `_id` is
//! written first, other fields in key order. Where order matters (a compound sort or index
//! key), write `#{"$ordered": [["a", 1], ["b", -1]]}`. Dumps and restores never pass through
//! Rhai values: they copy the server's bytes.

use mongodb::bson::{spec::BinarySubtype, Binary, Bson, DateTime, Document};
use rhai::{Array, Blob, Dynamic, Map};

use crate::error::{HostError, HostResult};
use crate::host::core::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every value keeps its BSON type when written back (documents from `mongo_find`).
    Exact,
    /// Numbers become plain Rhai numbers whatever their width (stats, command replies).
    Relaxed,
}

/// Keys that mark a map as an Extended JSON value rather than a document.
const MARKERS: &[&str] = &[
    "$oid",
    "$date",
    "$numberLong",
    "$numberInt",
    "$numberDouble",
    "$numberDecimal",
    "$binary",
    "$uuid",
    "$timestamp",
    "$regularExpression",
    "$minKey",
    "$maxKey",
    "$undefined",
    "$symbol",
    "$code",
    "$dbPointer",
];

pub fn bson_to_dynamic(value: &Bson, mode: Mode) -> Dynamic {
    match value {
        Bson::Double(f) => Dynamic::from_float(*f),
        Bson::String(s) => Dynamic::from(s.clone()),
        Bson::Boolean(b) => Dynamic::from_bool(*b),
        Bson::Null => Dynamic::UNIT,
        Bson::Int32(i) => Dynamic::from_int(*i as i64),
        Bson::Int64(i) => {
            if mode == Mode::Relaxed || i32::try_from(*i).is_err() {
                Dynamic::from_int(*i)
            } else {
                marker("$numberLong", Dynamic::from(i.to_string()))
            }
        }
        Bson::Array(items) => Dynamic::from_array(
            items
                .iter()
                .map(|v| bson_to_dynamic(v, mode))
                .collect::<Array>(),
        ),
        Bson::Document(d) => Dynamic::from_map(doc_to_map(d, mode)),
        Bson::DateTime(_) => json_to_dynamic(value.clone().into_relaxed_extjson()),
        other => json_to_dynamic(other.clone().into_canonical_extjson()),
    }
}

pub fn doc_to_map(doc: &Document, mode: Mode) -> Map {
    doc.iter()
        .map(|(k, v)| (k.as_str().into(), bson_to_dynamic(v, mode)))
        .collect()
}

fn marker(key: &str, value: Dynamic) -> Dynamic {
    let mut m = Map::new();
    m.insert(key.into(), value);
    Dynamic::from_map(m)
}

fn json_to_dynamic(value: serde_json::Value) -> Dynamic {
    rhai::serde::to_dynamic(&value).unwrap_or(Dynamic::UNIT)
}

/// A Rhai value as BSON. `path` names the value in error messages ("filter.age").
pub fn dynamic_to_bson(value: &Dynamic, path: &str) -> HostResult<Bson> {
    if value.is_unit() {
        return Ok(Bson::Null);
    }
    if let Ok(i) = value.as_int() {
        return Ok(match i32::try_from(i) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(i),
        });
    }
    if let Ok(f) = value.as_float() {
        return Ok(Bson::Double(f));
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Bson::Boolean(b));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Bson::String(c.to_string()));
    }
    if value.is_string() {
        return Ok(Bson::String(
            value.clone().into_string().unwrap_or_default(),
        ));
    }
    if let Some(t) = value.read_lock::<Time>() {
        return Ok(Bson::DateTime(DateTime::from_millis(
            t.0.timestamp_millis(),
        )));
    }
    if value.is_blob() {
        let bytes = value
            .read_lock::<Blob>()
            .map(|b| b.clone())
            .unwrap_or_default();
        return Ok(Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes,
        }));
    }
    if value.is_array() {
        let arr = value
            .read_lock::<Array>()
            .map(|a| a.clone())
            .unwrap_or_default();
        return arr
            .iter()
            .enumerate()
            .map(|(i, v)| dynamic_to_bson(v, &format!("{path}[{i}]")))
            .collect::<HostResult<Vec<_>>>()
            .map(Bson::Array);
    }
    if value.is_map() {
        let map = value
            .read_lock::<Map>()
            .map(|m| m.clone())
            .unwrap_or_default();
        return map_value_to_bson(&map, path);
    }
    Err(HostError::invalid(format!(
        "{path}: a value of type {} cannot be stored in MongoDB",
        value.type_name()
    )))
}

fn map_value_to_bson(map: &Map, path: &str) -> HostResult<Bson> {
    if let Some(pairs) = map.get("$ordered") {
        if map.len() != 1 {
            return Err(HostError::invalid(format!(
                "{path}: `$ordered` must be the only key of its map"
            )));
        }
        return ordered_doc(pairs, path).map(Bson::Document);
    }
    if map.keys().any(|k| MARKERS.contains(&k.as_str())) {
        let json = crate::host::binding::map_to_json(map)?;
        return Bson::try_from(json)
            .map_err(|e| HostError::invalid(format!("{path}: invalid Extended JSON value: {e}")));
    }
    map_to_doc(map, path).map(Bson::Document)
}

/// A Rhai map as a document, `_id` first (MongoDB keeps it first anyway).
pub fn map_to_doc(map: &Map, path: &str) -> HostResult<Document> {
    let mut doc = Document::new();
    if let Some(id) = map.get("_id") {
        doc.insert("_id", dynamic_to_bson(id, &join(path, "_id"))?);
    }
    for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "_id") {
        doc.insert(k.as_str(), dynamic_to_bson(v, &join(path, k))?);
    }
    Ok(doc)
}

/// A value that must be a document: a map or `#{"$ordered": [...]}`.
pub fn dynamic_to_doc(value: &Dynamic, path: &str) -> HostResult<Document> {
    match dynamic_to_bson(value, path)? {
        Bson::Document(d) => Ok(d),
        Bson::Null => Ok(Document::new()),
        _ => Err(HostError::invalid(format!(
            "{path}: expected a map (a document), got {}",
            value.type_name()
        ))),
    }
}

fn ordered_doc(pairs: &Dynamic, path: &str) -> HostResult<Document> {
    let bad = || {
        HostError::invalid(format!(
            "{path}: `$ordered` takes an array of [key, value] pairs, e.g. [[\"a\", 1], [\"b\", -1]]"
        ))
    };
    let arr = pairs.read_lock::<Array>().ok_or_else(bad)?.clone();
    let mut doc = Document::new();
    for pair in arr {
        let pair = pair.read_lock::<Array>().ok_or_else(bad)?.clone();
        if pair.len() != 2 || !pair[0].is_string() {
            return Err(bad());
        }
        let key = pair[0].clone().into_string().map_err(|_| bad())?;
        let value = dynamic_to_bson(&pair[1], &join(path, &key))?;
        doc.insert(key, value);
    }
    Ok(doc)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, oid::ObjectId, Decimal128};

    #[test]
    fn every_common_type_round_trips_exactly() {
        let original = doc! {
            "_id": ObjectId::new(),
            "a_double": 1.5,
            "b_int32": 7_i32,
            "c_int64_small": 7_i64,
            "d_int64_big": 9_000_000_000_i64,
            "e_date": DateTime::from_millis(1_700_000_000_123),
            "f_old_date": DateTime::from_millis(-5_000),
            "g_decimal": Bson::Decimal128("12.50".parse::<Decimal128>().unwrap()),
            "h_binary": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 255] },
            "i_uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
            "j_null": Bson::Null,
            "k_nested": { "list": [1_i32, "two", { "x": false }] },
            "l_regex": Bson::RegularExpression(mongodb::bson::Regex { pattern: "^a".into(), options: "i".into() }),
            "m_ts": Bson::Timestamp(mongodb::bson::Timestamp { time: 5, increment: 6 }),
        };
        let map = doc_to_map(&original, Mode::Exact);
        let back = map_to_doc(&map, "").unwrap();
        let a = mongodb::bson::to_vec(&original).unwrap();
        let b = mongodb::bson::to_vec(&back).unwrap();
        assert_eq!(a, b, "\n{original:?}\n{back:?}");
    }

    #[test]
    fn ordered_keeps_order_and_markers_parse() {
        let mut m = Map::new();
        let pairs: Array = vec![
            Dynamic::from_array(vec!["z".into(), Dynamic::from_int(1)]),
            Dynamic::from_array(vec!["a".into(), Dynamic::from_int(-1)]),
        ];
        m.insert("$ordered".into(), Dynamic::from_array(pairs));
        let d = dynamic_to_doc(&Dynamic::from_map(m), "sort").unwrap();
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["z", "a"]);

        let mut bad = Map::new();
        bad.insert("$oid".into(), "nothex".into());
        let err = dynamic_to_bson(&Dynamic::from_map(bad), "filter._id").unwrap_err();
        assert!(
            err.message.starts_with("filter._id: invalid Extended JSON"),
            "{}",
            err.message
        );
    }
}
