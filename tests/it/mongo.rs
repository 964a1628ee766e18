//! Tests for the mongo capability: native dump/restore in mongodump's layout and the mongo_*
//! functions, against the SecantusDB server tests/env/60-mongo.sh starts (a MongoDB-wire-
//! compatible server: no MongoDB server can be installed on these machines). Seeding and
//! checking go through the Rust `mongodb` driver directly, independently of mtn's code.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mongodb::bson::{
    doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Decimal128, Document,
    RawDocumentBuf,
};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};

use crate::support::*;

fn server() -> String {
    env_var("MTN_TEST_MONGO_URL")
}

/// A database name no other test uses.
fn unique_db(prefix: &str) -> String {
    format!("{prefix}_{}", &ObjectId::new().to_hex()[16..])
}

fn db_url(db: &str) -> String {
    format!("{}/{db}", server())
}

fn sample_doc(i: i64) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "n": i as i32,
        "big": 9_000_000_000_i64 + i,
        "small_long": i,
        "price": Bson::Decimal128(format!("{}.25", i).parse::<Decimal128>().unwrap()),
        "ratio": i as f64 / 3.0,
        "at": DateTime::from_millis(1_700_000_000_000 + i),
        "blob": Binary { subtype: BinarySubtype::Generic, bytes: vec![(i % 256) as u8, 0, 255] },
        "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "name": format!("user {i} — ünïcode"),
        "tags": ["a", "b"],
        "nested": { "z": 1_i32, "a": { "deep": Bson::Null } },
    }
}

/// Seed `db` with a users collection (2,500 documents, unique and compound indexes), an
/// orders collection and an empty collection.
fn seed(rt: &tokio::runtime::Runtime, c: &Client, db: &str) {
    rt.block_on(async {
        let d = c.database(db);
        let users = d.collection::<Document>("users");
        let docs: Vec<Document> = (0..2500).map(sample_doc).collect();
        users.insert_many(docs).await.unwrap();
        users
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "name": 1 })
                    .options(
                        IndexOptions::builder()
                            .unique(true)
                            .name("name_unique".to_string())
                            .build(),
                    )
                    .build(),
            )
            .await
            .unwrap();
        users
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "n": -1, "at": 1 })
                    .build(),
            )
            .await
            .unwrap();
        let orders = d.collection::<Document>("orders");
        let o: Vec<Document> = (0..40)
            .map(|i| doc! { "_id": i, "user_n": i * 100, "total": i as f64 * 1.5 })
            .collect();
        orders.insert_many(o).await.unwrap();
        d.create_collection("empty").await.unwrap();
    });
}

/// Every document of every collection as raw bytes, sorted by `_id` bytes, plus the indexes.
fn snapshot(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    db: &str,
) -> Vec<(String, Vec<Vec<u8>>, Vec<String>)> {
    rt.block_on(async {
        let d = c.database(db);
        let mut names = d.list_collection_names().await.unwrap();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let coll = d.collection::<RawDocumentBuf>(&n);
            let mut cur = coll.find(doc! {}).await.unwrap();
            let mut docs = Vec::new();
            while cur.advance().await.unwrap() {
                docs.push(cur.current().as_bytes().to_vec());
            }
            docs.sort();
            let mut idx = Vec::new();
            let mut ic = d
                .run_cursor_command(doc! { "listIndexes": &n })
                .await
                .unwrap();
            while ic.advance().await.unwrap() {
                let i: Document = ic.deserialize_current().unwrap();
                // key order matters (compound index): compare the key document's canonical text
                idx.push(format!(
                    "{} {} unique={}",
                    i.get_str("name").unwrap(),
                    Bson::Document(i.get_document("key").unwrap().clone()).into_canonical_extjson(),
                    i.get_bool("unique").unwrap_or(false)
                ));
            }
            idx.sort();
            out.push((n, docs, idx));
        }
        out
    })
}

type Snapshot = Vec<(String, Vec<Vec<u8>>, Vec<String>)>;

/// Compare two snapshots, reporting the first difference readably (not megabytes of bytes).
#[track_caller]
fn assert_same(got: &Snapshot, want: &Snapshot, label: &str) {
    let names = |s: &Snapshot| s.iter().map(|c| c.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{label}: collections differ");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.2, w.2, "{label}: indexes of {} differ", g.0);
        assert_eq!(
            g.1.len(),
            w.1.len(),
            "{label}: document count of {} differs",
            g.0
        );
        for (a, b) in g.1.iter().zip(&w.1) {
            if a != b {
                let show = |x: &Vec<u8>| {
                    format!(
                        "{:?}",
                        RawDocumentBuf::from_bytes(x.clone()).unwrap().to_document()
                    )
                };
                panic!(
                    "{label}: a document of {} differs:\n got  {}\n want {}",
                    g.0,
                    show(a),
                    show(b)
                );
            }
        }
    }
}

fn drop_db(rt: &tokio::runtime::Runtime, c: &Client, db: &str) {
    rt.block_on(async { c.database(db).drop().await }).unwrap();
}

#[test]
fn mongo_dump_restore_round_trip_is_byte_identical() {
    let rt = mongo_rt();
    let c = mongo_client(&rt);
    let src = unique_db("rt_src");
    seed(&rt, &c, &src);
    let dir = tempdir();
    let (a, b, g) = (unique_db("rt_a"), unique_db("rt_b"), unique_db("rt_g"));
    let script = format!(
        r#"
let d = dump_db("{src_url}", #{{ to: "{out}" }});
let r = restore_db(d.path, "{a_url}", #{{}});
let dd = dump_db("{src_url}", #{{ to: "{out}", name: "dir", format: "directory", compress: "gzip" }});
let r2 = restore_db(dd.path, "{b_url}", #{{}});
let g = dump_db("{src_url}", #{{ to: "{out}", name: "g.tar.gz", compress: "gzip", collections: ["users"] }});
let r3 = restore_db(g.path, "{g_url}", #{{}});
let refused = "";
try {{ restore_db(d.path, "{a_url}", #{{}}); }} catch (e) {{ refused = e.kind + ": " + e.message; }}
let again = restore_db(d.path, "{a_url}", #{{ drop: true }});
print("RESULT " + #{{ dump: d, restore: r, dir: dd, restore_dir: r2, g: g, r3: r3, refused: refused, again: again }}.to_json());
"#,
        src_url = db_url(&src),
        a_url = db_url(&a),
        b_url = db_url(&b),
        g_url = db_url(&g),
        out = dir.path().display()
    );
    let run = run_script(dir.path(), "rt.rhai", &script, &[]);
    run.expect_code(0);
    let j = json_after(&run, "RESULT ");

    let path = PathBuf::from(j["dump"]["path"].as_str().unwrap());
    let fname = path.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        fname.starts_with(&format!("{src}_")) && fname.ends_with(".tar.gz"),
        "{fname}"
    );
    assert_eq!(j["dump"]["documents"], 2540);
    assert_eq!(j["dump"]["collections"], 3);
    assert_eq!(j["dump"]["dry_run"], false);
    assert_eq!(
        j["dump"]["bytes"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    // The .sha256 sidecar matches the archive, in sha256sum's format.
    let side = std::fs::read_to_string(format!("{}.sha256", path.display())).unwrap();
    assert_eq!(
        side,
        format!("{}  {fname}\n", j["dump"]["sha256"].as_str().unwrap())
    );
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(j["dump"]["sha256"].as_str().unwrap()));
    // GNU tar lists mongodump's layout.
    let list = Command::new("tar").arg("-tzf").arg(&path).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    for f in [
        "users.bson",
        "users.metadata.json",
        "orders.bson",
        "empty.bson",
        "empty.metadata.json",
    ] {
        assert!(
            list.lines().any(|l| l == format!("{src}/{f}")),
            "{f} missing in\n{list}"
        );
    }

    let original = snapshot(&rt, &c, &src);
    assert_eq!(original.len(), 3);
    assert_same(&snapshot(&rt, &c, &a), &original, "archive restore");
    assert_same(&snapshot(&rt, &c, &b), &original, "directory+gzip restore");
    let only_users: Vec<_> = original
        .iter()
        .filter(|(n, _, _)| n == "users")
        .cloned()
        .collect();
    assert_same(&snapshot(&rt, &c, &g), &only_users, "gzip archive of users");
    assert_eq!(j["restore"]["documents"], 2540);
    assert_eq!(j["restore"]["indexes"], 2);
    assert!(dir
        .path()
        .join("dir")
        .join(&src)
        .join("users.bson.gz")
        .is_file());

    // A second restore into the non-empty target is refused and changes nothing; drop: true works.
    let refused = j["refused"].as_str().unwrap();
    assert!(
        refused.starts_with("refused: ") && refused.contains("already hold documents"),
        "{refused}"
    );
    assert!(
        refused.contains("users") && refused.contains("drop: true"),
        "{refused}"
    );
    assert_eq!(j["again"]["documents"], 2540);
    assert_same(&snapshot(&rt, &c, &a), &original, "restore with drop");
    for d in [&src, &a, &b, &g] {
        drop_db(&rt, &c, d);
    }
}

#[test]
fn mongo_bson_files_parse_with_pymongo_and_metadata_has_mongodump_fields() {
    let rt = mongo_rt();
    let c = mongo_client(&rt);
    let src = unique_db("py");
    seed(&rt, &c, &src);
    let dir = tempdir();
    let script = format!(
        r#"
let a = dump_db("{url}", #{{ to: "{out}", name: "a.tar.gz" }});
let d = dump_db("{url}", #{{ to: "{out}", name: "plain", format: "directory" }});
print("RESULT " + #{{ a: a, d: d }}.to_json());
"#,
        url = db_url(&src),
        out = dir.path().display()
    );
    let run = run_script(dir.path(), "py.rhai", &script, &[]);
    run.expect_code(0);
    // pymongo's bson package reads the files and Python's tarfile reads the archive.
    let py = r#"
import sys, os, json, tarfile, bson, io
root, archive, db = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
for name in sorted(os.listdir(os.path.join(root, db))):
    p = os.path.join(root, db, name)
    if name.endswith('.bson'):
        with open(p, 'rb') as f:
            docs = list(bson.decode_file_iter(f, codec_options=bson.CodecOptions(document_class=bson.SON)))
        out[name] = len(docs)
    elif name.endswith('.metadata.json'):
        with open(p) as f:
            meta = json.load(f, object_pairs_hook=lambda kv: kv)
        out[name] = [k for k, _ in meta]
with tarfile.open(archive, 'r:gz') as t:
    for m in t.getmembers():
        if m.name.endswith('.bson'):
            data = t.extractfile(m).read()
            out['tar:' + m.name] = len(bson.decode_all(data))
print(json.dumps(out))
"#;
    let o = Command::new(env_var("MTN_TEST_MONGO_PYTHON"))
        .args(["-c", py])
        .arg(dir.path().join("plain"))
        .arg(dir.path().join("a.tar.gz"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["users.bson"], 2500);
    assert_eq!(j["orders.bson"], 40);
    assert_eq!(j["empty.bson"], 0);
    assert_eq!(j[format!("tar:{src}/users.bson")], 2500);
    let fields: Vec<&str> = j["users.metadata.json"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["options", "indexes", "uuid", "collectionName", "type"]
    );
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join("plain")
                .join(&src)
                .join("users.metadata.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["collectionName"], "users");
    assert_eq!(meta["type"], "collection");
    // Canonical Extended JSON, as mongodump writes it.
    let compound = meta["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "n_-1_at_1")
        .unwrap();
    assert_eq!(
        compound["key"].to_string(),
        r#"{"n":{"$numberInt":"-1"},"at":{"$numberInt":"1"}}"#
    );
    drop_db(&rt, &c, &src);
}

#[test]
fn mongo_restore_reads_mongodump_style_directory_with_gzip_and_old_metadata() {
    // The layout `mongodump --gzip --out DIR` writes: DIR/<db>/<coll>.bson.gz and
    // <coll>.metadata.json.gz, with the "ns" field old versions put in index specs. The files
    // are made here with flate2 and the driver's own bytes (no mongodump can be installed).
    let rt = mongo_rt();
    let c = mongo_client(&rt);
    let dir = tempdir();
    let dbdir = dir.path().join("dump").join("shop");
    std::fs::create_dir_all(&dbdir).unwrap();
    let mut bson_bytes = Vec::new();
    let docs: Vec<Document> = (0..10).map(sample_doc).collect();
    for d in &docs {
        bson_bytes.extend_from_slice(RawDocumentBuf::from_document(d).unwrap().as_bytes());
    }
    let gz = |data: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(dbdir.join("items.bson.gz"), gz(&bson_bytes)).unwrap();
    let meta = r#"{"options":{},"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_","ns":"shop.items"},{"v":{"$numberInt":"2"},"key":{"name":{"$numberInt":"1"}},"name":"name_1","ns":"shop.items"}],"uuid":"0123456789abcdef0123456789abcdef","collectionName":"items","type":"collection"}"#;
    std::fs::write(dbdir.join("items.metadata.json.gz"), gz(meta.as_bytes())).unwrap();
    std::fs::write(dir.path().join("dump").join("oplog.bson"), b"").unwrap();
    let target = unique_db("md");
    let script = format!(
        r#"print("RESULT " + restore_db("{d}", "{url}", #{{}}).to_json());"#,
        d = dir.path().join("dump").display(),
        url = db_url(&target)
    );
    let run = run_script(dir.path(), "md.rhai", &script, &[]);
    run.expect_code(0);
    let j = json_after(&run, "RESULT ");
    assert_eq!(j["documents"], 10);
    assert_eq!(j["indexes"], 1);
    let snap = snapshot(&rt, &c, &target);
    let mut want: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| {
            RawDocumentBuf::from_document(d)
                .unwrap()
                .as_bytes()
                .to_vec()
        })
        .collect();
    want.sort();
    assert_eq!(snap[0].1, want);
    assert!(
        snap[0].2.iter().any(|i| i.starts_with("name_1 ")),
        "{:?}",
        snap[0].2
    );
    drop_db(&rt, &c, &target);
}

#[test]
fn mongo_sigkill_mid_dump_leaves_no_archive_under_final_name() {
    let rt = mongo_rt();
    let c = mongo_client(&rt);
    let src = unique_db("kill");
    rt.block_on(async {
        let coll = c.database(&src).collection::<Document>("big");
        for chunk in 0..20 {
            let docs: Vec<Document> = (0..10_000)
                .map(|i| doc! { "i": chunk * 10_000 + i, "pad": "x".repeat(200) })
                .collect();
            coll.insert_many(docs).await.unwrap();
        }
    });
    let dir = tempdir();
    let script = format!(
        r#"dump_db("{url}", #{{ to: "{out}", name: "final.tar.gz", batch_size: 100 }});"#,
        url = db_url(&src),
        out = dir.path().display()
    );
    let path = dir.path().join("k.rhai");
    std::fs::write(&path, script).unwrap();
    let mut child = mtn()
        .current_dir(dir.path())
        .arg("run")
        .arg(&path)
        .spawn()
        .unwrap();
    // Wait until the dump is writing (its temporary file exists), then SIGKILL it.
    let started = Instant::now();
    while temp_of(&dir.path().join("final.tar.gz")).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "dump never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "dump ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        child.try_wait().unwrap().is_none(),
        "dump finished too fast to test a kill"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dir.path().join("final.tar.gz").exists(),
        "archive under the final name after SIGKILL"
    );
    assert!(!dir.path().join("final.tar.gz.sha256").exists());
    drop_db(&rt, &c, &src);
}

#[test]
fn mongo_dump_while_the_application_writes() {
    let rt = mongo_rt();
    let c = mongo_client(&rt);
    let src = unique_db("live");
    rt.block_on(async {
        let docs: Vec<Document> = (0..20_000)
            .map(|i| doc! { "i": i, "pad": "y".repeat(100) })
            .collect();
        c.database(&src)
            .collection::<Document>("events")
            .insert_many(docs)
            .await
            .unwrap();
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (c, src, stop) = (c.clone(), src.clone(), stop.clone());
        let handle = rt.handle().clone();
        std::thread::spawn(move || {
            let coll = c.database(&src).collection::<Document>("events");
            let mut i = 1_000_000;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                handle
                    .block_on(async {
                        coll.insert_many((0..50).map(|k| doc! { "i": i + k, "pad": "z" }))
                            .await
                    })
                    .unwrap();
                handle
                    .block_on(async {
                        coll.update_many(doc! { "i": { "$lt": 100 } }, doc! { "$inc": { "u": 1 } })
                            .await
                    })
                    .unwrap();
                i += 50;
            }
            i - 1_000_000
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let dir = tempdir();
    let target = unique_db("live_r");
    let script = format!(
        r#"
let d = dump_db("{url}", #{{ to: "{out}", batch_size: 500 }});
let r = restore_db(d.path, "{t}", #{{}});
print("RESULT " + #{{ d: d, r: r }}.to_json());
"#,
        url = db_url(&src),
        t = db_url(&target),
        out = dir.path().display()
    );
    let run = run_script(dir.path(), "live.rhai", &script, &[]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let added = writer.join().unwrap();
    run.expect_code(0);
    let j = json_after(&run, "RESULT ");
    let dumped = j["d"]["documents"].as_u64().unwrap();
    // Every document present before the dump started is in it, none twice.
    assert!(
        dumped >= 20_000 && dumped <= 20_000 + added as u64,
        "dumped {dumped}, writer added {added}"
    );
    assert_eq!(j["r"]["documents"].as_u64().unwrap(), dumped);
    let restored = rt.block_on(async {
        let coll = c.database(&target).collection::<Document>("events");
        let n = coll
            .count_documents(doc! { "i": { "$lt": 20_000 } })
            .await
            .unwrap();
        let distinct = coll.distinct("i", doc! {}).await.unwrap().len();
        (n, distinct)
    });
    assert_eq!(restored.0, 20_000);
    assert_eq!(
        restored.1 as u64, dumped,
        "a document appears twice in the dump"
    );
    drop_db(&rt, &c, &src);
    drop_db(&rt, &c, &target);
}

#[test]
fn mongo_connection_errors_are_clear_and_redacted() {
    let dir = tempdir();
    let dead = free_port();
    let script = format!(
        r#"
let out = #{{}};
try {{ mongo_count("mongodb://127.0.0.1:{dead}/x?serverSelectionTimeoutMS=1500", "c"); }} catch (e) {{ out.unreachable = e; }}
try {{ mongo_count("mongodb://user:S3cretPw@127.0.0.1:{dead}/x?serverSelectionTimeoutMS=1500", "c"); }} catch (e) {{ out.redacted = e; }}
try {{ mongo_count("mongodb://127.0.0.1:notaport/x", "c"); }} catch (e) {{ out.bad_url = e; }}
try {{ mongo_count("{server}", "c"); }} catch (e) {{ out.no_db = e; }}
try {{ mongo_count("postgres://h/x", "c"); }} catch (e) {{ out.scheme = e; }}
let typo = #{{}}; typo["compres"] = "gzip"; // built at run time: a literal is refused before the run
try {{ dump_db("{server}/x", typo); }} catch (e) {{ out.typo = e; }}
try {{ mongo_count("{bad_auth}/app?authSource=admin", "c"); }} catch (e) {{ out.auth = e; }}
out.auth_ok = mongo_count("{good_auth}/app?authSource=admin", "c");
print("RESULT " + out.to_json());
"#,
        server = server(),
        good_auth = env_var("MTN_TEST_MONGO_AUTH_URL"),
        bad_auth = env_var("MTN_TEST_MONGO_AUTH_URL").replace("RightPw-123", "WrongPw-456"),
    );
    let started = Instant::now();
    let run = run_script(dir.path(), "err.rhai", &script, &[]);
    run.expect_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "errors took {:?}",
        started.elapsed()
    );
    assert!(
        !run.all().contains("S3cretPw"),
        "password leaked:\n{}",
        run.all()
    );
    let j = json_after(&run, "RESULT ");
    let msg = |k: &str| {
        j[k]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{k}: {j}"))
            .to_string()
    };
    assert_eq!(j["unreachable"]["kind"], "network");
    assert_eq!(j["unreachable"]["retryable"], true);
    assert!(
        msg("unreachable").contains("cannot reach a MongoDB server"),
        "{}",
        msg("unreachable")
    );
    assert!(msg("redacted").contains("user:***@"), "{}", msg("redacted"));
    assert_eq!(j["bad_url"]["kind"], "invalid_input");
    assert!(
        msg("bad_url").contains("invalid MongoDB URL"),
        "{}",
        msg("bad_url")
    );
    assert_eq!(j["no_db"]["kind"], "invalid_input");
    assert!(
        msg("no_db").contains("names no database"),
        "{}",
        msg("no_db")
    );
    assert!(msg("scheme").contains("mongodb://"), "{}", msg("scheme"));
    assert!(
        msg("typo").contains("did you mean `compress`"),
        "{}",
        msg("typo")
    );
    // A wrong password is kind `auth` for every database engine (issue 12).
    assert_eq!(j["auth"]["kind"], "auth", "{}", j["auth"]);
    assert!(
        msg("auth").contains("authentication failed"),
        "{}",
        msg("auth")
    );
    assert!(
        !run.all().contains("WrongPw-456") && !run.all().contains("RightPw-123"),
        "{}",
        run.all()
    );
    assert_eq!(j["auth_ok"], 0);
}

#[test]
fn mongo_functions_find_count_delete_dry_run_command_stats() {
    let rt = mongo_rt();
    let c = mongo_client(&rt);
    let db = unique_db("fn");
    seed(&rt, &c, &db);
    // A document whose fields are in key order, so the write-back can be byte-compared.
    let special = doc! {
        "_id": ObjectId::new(),
        "a_dec": Bson::Decimal128("10.50".parse::<Decimal128>().unwrap()),
        "b_date": DateTime::from_millis(1_600_000_000_123),
        "c_i32": 5_i32,
        "d_i64": 5_i64,
        "e_f64": 5.0,
        "f_bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2, 3] },
        "g_null": Bson::Null,
        "h_arr": [1_i32, { "x": 2_i64 }],
    };
    rt.block_on(async {
        c.database(&db)
            .collection::<Document>("special")
            .insert_one(special.clone())
            .await
    })
    .unwrap();
    let url = db_url(&db);
    let dir = tempdir();
    let script = format!(
        r#"
let url = "{url}";
let out = #{{}};
out.count = mongo_count(url, "users");
out.count_f = mongo_count(url, "orders", #{{ total: #{{ "$gte": 30.0 }} }});
let docs = mongo_find(url, "special", #{{}});
mongo_command(url, #{{ insert: "copy", documents: docs }});
out.found = mongo_find(url, "users", #{{}}, #{{ limit: 3, sort: #{{ "$ordered": [["n", -1]] }}, projection: #{{ n: 1 }} }});
out.by_date = mongo_count(url, "users", #{{ at: #{{ "$lt": #{{ "$date": "2023-11-14T22:13:20.010Z" }} }} }});
out.delete = mongo_delete_many(url, "orders", #{{ total: #{{ "$lt": 15.0 }} }});
out.after = mongo_count(url, "orders");
try {{ mongo_delete_many(url, "orders", #{{}}); }} catch (e) {{ out.empty_filter = e.message; }}
out.cmd = mongo_command(url, #{{ drop: "copy" }});
out.ping = mongo_command(url, "ping");
out.stats = mongo_stats(url);
out.compact = mongo_compact(url, "users");
print("RESULT " + out.to_json());
"#
    );
    // Dry run: counts, finds and the delete report happen; nothing is changed.
    let run = run_script(dir.path(), "fn.rhai", &script, &["--dry-run"]);
    run.expect_code(0);
    let j = json_after(&run, "RESULT ");
    assert_eq!(j["count"], 2500);
    assert_eq!(j["count_f"], 20);
    assert_eq!(j["by_date"], 10);
    assert_eq!(j["delete"]["deleted"], 10);
    assert_eq!(j["delete"]["dry_run"], true);
    assert_eq!(j["after"], 40, "dry-run deleted documents");
    assert!(j["empty_filter"].as_str().unwrap().contains("all: true"));
    assert_eq!(j["cmd"]["skipped"], true);
    assert_eq!(j["ping"]["ok"], 1.0);
    assert_eq!(j["compact"]["dry_run"], true);
    let found = j["found"].as_array().unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(found[0]["n"], 2499);
    assert!(found[0]["_id"]["$oid"].is_string());
    let colls = rt
        .block_on(async { c.database(&db).list_collection_names().await })
        .unwrap();
    assert!(
        !colls.contains(&"copy".to_string()),
        "dry-run ran the insert command"
    );

    // For real: the document read with mongo_find and written back is byte-identical.
    let run = run_script(
        dir.path(),
        "fn.rhai",
        &script.replace("out.cmd = mongo_command(url, #{ drop: \"copy\" });", ""),
        &[],
    );
    run.expect_code(0);
    let j = json_after(&run, "RESULT ");
    assert_eq!(j["delete"]["deleted"], 10);
    assert_eq!(j["delete"]["dry_run"], false);
    assert_eq!(j["after"], 30);
    let copy: RawDocumentBuf = rt
        .block_on(async {
            c.database(&db)
                .collection::<RawDocumentBuf>("copy")
                .find_one(doc! {})
                .await
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        copy.as_bytes(),
        RawDocumentBuf::from_document(&special).unwrap().as_bytes(),
        "\n{:?}\n{:?}",
        copy.to_document(),
        special
    );
    let stats = &j["stats"];
    assert_eq!(stats["database"], db.as_str());
    let users = stats["collections_detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "users")
        .unwrap();
    assert_eq!(users["count"], 2500);
    assert!(users["size"].as_i64().unwrap() > 0);
    if env_var("MTN_TEST_MONGO_COMPACT") == "1" {
        assert_eq!(j["compact"]["ok"], 1.0, "{}", j["compact"]);
    }
    drop_db(&rt, &c, &db);
}

#[test]
fn mongo_restore_test_checks_and_always_drops_scratch() {
    let rt = mongo_rt();
    let c = mongo_client(&rt);
    let src = unique_db("rtst");
    seed(&rt, &c, &src);
    let dir = tempdir();
    let script = format!(
        r#"
let d = dump_db("{url}", #{{ to: "{out}" }});
let ok = restore_test(d.path, "{url}", #{{ users: 2500, orders: #{{ min: 10 }} }}, #{{}});
let seen = "";
let ok2 = restore_test(d.path, "{url}", |u| {{ seen = u; mongo_count(u, "users") == 2500 }}, #{{}});
let bad = restore_test(d.path, "{url}", #{{ users: 7, orders: ">0" }}, #{{}});
print("RESULT " + #{{ ok: ok, ok2: ok2, bad: bad }}.to_json());
"#,
        url = db_url(&src),
        out = dir.path().display()
    );
    let run = run_script(dir.path(), "rt.rhai", &script, &["--state-dir", "state"]);
    run.expect_code(0);
    let j = json_after(&run, "RESULT ");
    assert_eq!(j["ok"]["ok"], true);
    assert_eq!(j["ok"]["restore"]["documents"], 2540);
    assert_eq!(j["ok2"]["checks"][0]["ok"], true);
    // One contract for every engine: a failed check is `ok: false` in the report (not an
    // exception), with each check's expected and actual value, and the scratch is dropped.
    assert_eq!(j["bad"]["ok"], false, "{}", j["bad"]);
    assert_eq!(j["bad"]["dropped"], true);
    let bad_checks = j["bad"]["checks"].as_array().unwrap();
    let users = bad_checks.iter().find(|c| c["check"] == "users").unwrap();
    assert_eq!(
        (users["ok"].clone(), users["actual"].clone()),
        (false.into(), 2500.into())
    );
    let orders = bad_checks.iter().find(|c| c["check"] == "orders").unwrap();
    assert_eq!(orders["ok"], true, "{orders}");
    assert!(
        j["ok"]["database"]
            .as_str()
            .unwrap()
            .starts_with("mtn_restore_test_"),
        "{}",
        j["ok"]
    );
    // Only the successful drills are recorded for the daemon's "last verified" metric.
    assert!(dir.path().join("state/last_restore_test.json").exists());
    let names = rt
        .block_on(async { c.list_database_names().await })
        .unwrap();
    let left: Vec<_> = names
        .iter()
        .filter(|n| n.contains("_restore_test_"))
        .collect();
    assert!(left.is_empty(), "scratch databases left behind: {left:?}");
    drop_db(&rt, &c, &src);
}

#[test]
fn mongo_example_scripts_check_and_run_dry() {
    let rt = mongo_rt();
    let c = mongo_client(&rt);
    let db = unique_db("ex");
    rt.block_on(async {
        let d = c.database(&db);
        d.collection::<Document>("users")
            .insert_many((0..5).map(|i| doc! { "_id": i }))
            .await
            .unwrap();
        d.collection::<Document>("orders")
            .insert_many((0..8).map(|i| doc! { "_id": i, "userId": i })) // users 5,6,7 are gone
            .await
            .unwrap();
    });
    let repo = repo();
    for s in [
        "scripts/mongo_maintenance.rhai",
        "scripts/mongo_backup.rhai",
    ] {
        let out = mtn().arg("check").arg(repo.join(s)).output().unwrap();
        assert!(
            out.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = tempdir();
    let run = |args: &[&str]| {
        let mut cmd = mtn();
        cmd.current_dir(dir.path())
            .arg("run")
            .arg(repo.join("scripts/mongo_maintenance.rhai"))
            .args(args)
            .env("MONGODB_URI", db_url(&db));
        Run::from(cmd.output().unwrap())
    };
    let dry = run(&["--dry-run"]);
    dry.expect_code(0);
    assert!(dry.all().contains("3 orphan orders"), "{}", dry.all());
    let count = || {
        rt.block_on(async {
            c.database(&db)
                .collection::<Document>("orders")
                .count_documents(doc! {})
                .await
        })
        .unwrap()
    };
    assert_eq!(count(), 8);
    run(&[]).expect_code(0);
    assert_eq!(count(), 5);

    let mut cmd = mtn();
    cmd.current_dir(dir.path())
        .arg("run")
        .arg(repo.join("scripts/mongo_backup.rhai"))
        .env("MONGODB_URI", db_url(&db))
        .env("BACKUP_DIR", dir.path().join("b"));
    let b = Run::from(cmd.output().unwrap());
    b.expect_code(0);
    let made: Vec<PathBuf> = std::fs::read_dir(dir.path().join("b"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        made.iter()
            .any(|p| p.to_string_lossy().ends_with(".tar.gz")),
        "{made:?}"
    );
    assert!(
        made.iter()
            .any(|p| p.to_string_lossy().ends_with(".tar.gz.sha256")),
        "{made:?}"
    );
    drop_db(&rt, &c, &db);
}
