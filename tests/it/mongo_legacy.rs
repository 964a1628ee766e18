//! Legacy (v:1) index specs in mongodump metadata, restored against the SecantusDB server
//! tests/env starts: mongo-tools' own fixtures (tests/fixtures/mongo-tools, copied from
//! `mongorestore/testdata`) and the issue's `{a: 1.0, b: true}` key. mtn converts them as
//! `mongorestore --convertLegacyIndexes` does, with a warning naming each converted index.

use std::fs;

use mongodb::bson::{doc, oid::ObjectId, Bson, Document, RawDocumentBuf};

use crate::support::*;

fn fixture(rel: &str) -> String {
    fs::read_to_string(repo().join("tests/fixtures/mongo-tools").join(rel)).unwrap()
}

fn bson_file(docs: &[Document]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in docs {
        out.extend_from_slice(RawDocumentBuf::from_document(d).unwrap().as_bytes());
    }
    out
}

#[test]
fn legacy_v1_indexes_are_converted_with_a_warning() {
    let server = env_var("MTN_TEST_MONGO_URL");
    let rt = mongo_rt();
    let client = mongo_client(&rt);
    let dir = tempdir();
    let db_dir = dir.path().join("dump/indextest");
    fs::create_dir_all(&db_dir).unwrap();
    let docs: Vec<Document> = (0..5)
        .map(|i| doc! { "_id": ObjectId::new(), "a": i, "b": i % 2 == 0, "foo": format!("f{i}") })
        .collect();
    for coll in ["test_collection", "duplicate_index_key", "legacy"] {
        fs::write(db_dir.join(format!("{coll}.bson")), bson_file(&docs)).unwrap();
    }
    fs::write(
        db_dir.join("test_collection.metadata.json"),
        fixture("indextestdump/indextest/test_collection.metadata.json"),
    )
    .unwrap();
    fs::write(
        db_dir.join("duplicate_index_key.metadata.json"),
        fixture("duplicate_index_key/indextest/duplicate_index_key.metadata.json"),
    )
    .unwrap();
    fs::write(
        db_dir.join("legacy.metadata.json"),
        r#"{"options":{},"indexes":[{"v":1,"key":{"_id":1},"name":"_id_","ns":"indextest.legacy"},{"v":1,"key":{"a":1.0,"b":true},"name":"a_1_b_true","ns":"indextest.legacy"}]}"#,
    )
    .unwrap();
    let target = format!("legacy_{}", &ObjectId::new().to_hex()[16..]);
    let script = format!(
        r#"print("RESULT " + restore_db("{d}", "{server}/{target}", #{{}}).to_json());"#,
        d = dir.path().join("dump").display()
    );
    let run = run_script(dir.path(), "r.rhai", &script, &[]);
    run.expect_code(0);
    let all = run.all();
    for name in [
        "test_collection.a_1",
        "legacy.a_1_b_true",
        "duplicate_index_key.foo_",
        "duplicate_index_key.foo_1.0",
        "duplicate_index_key.foo_1",
    ] {
        assert!(
            all.contains(&format!("legacy index {name} converted")),
            "no warning naming {name}:\n{all}"
        );
    }
    let line = all
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_string()))
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(j["documents"], 15);
    assert_eq!(j["converted_indexes"].as_array().unwrap().len(), 5, "{j}");

    // What the server now holds: the converted keys, no legacy option, one `foo` index.
    let db = client.database(&target);
    let specs = |coll: &str| -> Vec<Document> {
        rt.block_on(async {
            let r = db.run_command(doc! { "listIndexes": coll }).await.unwrap();
            r.get_document("cursor")
                .unwrap()
                .get_array("firstBatch")
                .unwrap()
                .iter()
                .filter_map(|b| b.as_document().cloned())
                .filter(|d| d.get_str("name").ok() != Some("_id_"))
                .collect()
        })
    };
    let legacy = specs("legacy");
    assert_eq!(legacy.len(), 1, "{legacy:?}");
    let key = legacy[0].get_document("key").unwrap();
    assert_eq!(key.get("b"), Some(&Bson::Int32(1)), "{key:?}");
    assert_eq!(key.get("a").and_then(Bson::as_f64), Some(1.0), "{key:?}");
    let tc = specs("test_collection");
    assert_eq!(tc.len(), 1);
    assert!(tc[0].get("safe").is_none(), "{tc:?}");
    let dup = specs("duplicate_index_key");
    assert_eq!(dup.len(), 1, "{dup:?}");
    assert_eq!(dup[0].get_str("name").unwrap(), "foo_");
    rt.block_on(async { db.drop().await }).unwrap();
}
