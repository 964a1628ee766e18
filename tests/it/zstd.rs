//! zstd wherever mtn compresses (compress, dump_db for every engine, export_table, the MongoDB
//! archive): outputs are read back by the real `zstd` CLI (installed by tests/env/85-sftp.sh),
//! and readers (decompress, restore_db, verify_backup) go by content, not by name.

use std::fs;
use std::process::Command;

use mongodb::bson::{doc, Document};

use crate::support::*;

#[test]
fn compress_zstd_is_read_by_the_cli_and_decompress_goes_by_content() {
    let dir = tempdir();
    let data: Vec<u8> = (0..3_000_000u32)
        .flat_map(|i| format!("line {i} of a log\n").into_bytes())
        .take(20_000_000)
        .collect();
    fs::write(dir.path().join("app.log"), &data).unwrap();
    let run = run_script(
        dir.path(),
        "c.rhai",
        r#"let r = compress("./app.log", #{ compression: "zstd", level: 9, keep: true }); print(`OUT ${r.output} ${r.ratio}`);"#,
        &[],
    );
    run.expect_code(0);
    let zst = dir.path().join("app.log.zst");
    assert!(run.all().contains("app.log.zst"), "{}", run.all());
    assert!(unzstd(&zst) == data, "zstd -d output differs");
    let t = Command::new("zstd").arg("-t").arg(&zst).output().unwrap();
    assert!(t.status.success());

    // A file compressed by the CLI decompresses; one named .gz that is really zstd too.
    fs::write(dir.path().join("b.txt"), b"hello from the zstd cli\n").unwrap();
    let st = Command::new("zstd")
        .args(["-q", "-19"])
        .arg(dir.path().join("b.txt"))
        .arg("-o")
        .arg(dir.path().join("b.txt.gz"))
        .status()
        .unwrap();
    assert!(st.success());
    fs::remove_file(dir.path().join("b.txt")).unwrap();
    run_script(dir.path(), "d.rhai", r#"decompress("./b.txt.gz");"#, &[]).expect_code(0);
    assert_eq!(
        fs::read(dir.path().join("b.txt")).unwrap(),
        b"hello from the zstd cli\n"
    );
    // Refuses a bad level and a corrupt .zst clearly.
    let run = run_script(
        dir.path(),
        "l.rhai",
        r#"compress("./b.txt", #{ compression: "zstd", level: 30 });"#,
        &[],
    );
    run.expect_code(1);
    assert!(run.all().contains("1 to 22"), "{}", run.all());
    fs::write(
        dir.path().join("bad.zst"),
        [0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3],
    )
    .unwrap();
    let run = run_script(dir.path(), "x.rhai", r#"decompress("./bad.zst");"#, &[]);
    run.expect_code(1);
    assert!(
        run.all().contains("not valid gzip or zstd"),
        "{}",
        run.all()
    );
    assert!(!dir.path().join("bad").exists());
}

#[test]
fn sqlite_dump_zstd_verifies_restores_and_retention_sees_it() {
    let dir = tempdir();
    let db = dir.path().join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000)
         INSERT INTO t SELECT i, 'value ' || i FROM n;",
    )
    .unwrap();
    drop(c);
    let script = r#"
let d = dump_db("sqlite://app.db", #{ to: "backups/", compress: "zstd:19" });
print(`DUMP ${d.path}`);
let v = verify_backup(d.path);
print("VERIFY " + v.to_json());
restore_db(d.path, "sqlite://copy.db", #{ create: true });
let x = export_table("sqlite://app.db", "t", "backups/t.csv.zst");
print(`EXPORT ${x.path} ${x.rows}`);
let r = retention("./backups", #{ keep_last: 5 }, #{ pattern: "app_*.db.zst" });
print(`KEPT ${r.kept.len()}`);
"#;
    let run = run_script(dir.path(), "s.rhai", script, &[]);
    run.expect_code(0);
    let all = run.all();
    let path = text_after(&run, "DUMP ");
    assert!(path.ends_with(".db.zst"), "{path}");
    let dump = dir.path().join(&path);
    assert!(unzstd(&dump).starts_with(b"SQLite format 3\0"));
    let side = fs::read_to_string(format!("{}.sha256", dump.display())).unwrap();
    assert!(side.len() >= 64, "{side}");
    let v = json_after(&run, "VERIFY ");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["zstd"], "ok", "{v}");
    assert_eq!(v["sidecar"], "match", "{v}");
    let copy = rusqlite::Connection::open(dir.path().join("copy.db")).unwrap();
    let n: i64 = copy
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5000);
    let csv = unzstd(&dir.path().join("backups/t.csv.zst"));
    assert_eq!(String::from_utf8_lossy(&csv).lines().count(), 5001);
    assert!(all.contains("KEPT 1"), "{all}");

    // A damaged zstd dump is reported, not trusted.
    let mut bytes = fs::read(&dump).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(dir.path().join("broken.db.zst"), &bytes).unwrap();
    let run = run_script(
        dir.path(),
        "v.rhai",
        r#"print("VERIFY " + verify_backup("broken.db.zst").to_json());"#,
        &[],
    );
    run.expect_code(0);
    let v = json_after(&run, "VERIFY ");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["zstd"], "corrupt", "{v}");
}

#[test]
fn postgres_and_mariadb_plain_dumps_in_zstd_restore() {
    let dir = tempdir();
    let pg = env_var("MTN_TEST_PG_URL");
    let my = env_var("MTN_TEST_MY_URL");
    let script = format!(
        r#"
let p = dump_db("{pg}", #{{ to: "b/", compress: "zstd" }});
print(`PG ${{p.path}}`);
let t = restore_test(p.path, "{pg}", #{{ "SELECT 1": 1 }});
print(`PGOK ${{t.ok}}`);
let m = dump_db("{my}", #{{ to: "b/", compress: "zstd:5" }});
print(`MY ${{m.path}}`);
let u = restore_test(m.path, "{my}", #{{ "SELECT 1": 1 }});
print(`MYOK ${{u.ok}}`);
"#
    );
    let run = run_script(dir.path(), "p.rhai", &script, &[]);
    run.expect_code(0);
    let all = run.all();
    let get = |tag: &str| text_after(&run, tag);
    let p = get("PG ");
    assert!(p.ends_with(".sql.zst"), "{p}");
    let sql = unzstd(&dir.path().join(&p));
    assert!(String::from_utf8_lossy(&sql).contains("PostgreSQL database dump complete"));
    assert_eq!(get("PGOK "), "true", "{all}");
    let m = get("MY ");
    assert!(m.ends_with(".sql.zst"), "{m}");
    let sql = unzstd(&dir.path().join(&m));
    assert!(
        String::from_utf8_lossy(&sql).contains("Dump completed"),
        "mariadb trailer"
    );
    assert_eq!(get("MYOK "), "true", "{all}");
}

#[test]
fn mongodb_archive_in_zstd_is_a_tar_zst_and_restores() {
    let rt = mongo_rt();
    let server = env_var("MTN_TEST_MONGO_URL");
    let src = format!("zsrc_{}", std::process::id());
    let dst = format!("zdst_{}", std::process::id());
    let client = mongo_client(&rt);
    rt.block_on(async {
        let c = client.database(&src).collection::<Document>("items");
        c.insert_many((0..2000).map(|i| doc! { "i": i, "name": format!("item {i}") }))
            .await
            .unwrap();
    });
    let dir = tempdir();
    let script = format!(
        r#"
let d = dump_db("{server}/{src}", #{{ to: "b/", compress: "zstd" }});
print(`DUMP ${{d.path}}`);
restore_db(d.path, "{server}/{dst}", #{{}});
"#
    );
    let run = run_script(dir.path(), "m.rhai", &script, &[]);
    run.expect_code(0);
    let path = text_after(&run, "DUMP ");
    assert!(path.ends_with(".tar.zst"), "{path}");
    let list = Command::new("tar")
        .args(["--zstd", "-tf"])
        .arg(dir.path().join(&path))
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(names.contains(&format!("{src}/items.bson")), "{names}");
    let n = rt.block_on(async {
        client
            .database(&dst)
            .collection::<Document>("items")
            .count_documents(doc! {})
            .await
            .unwrap()
    });
    assert_eq!(n, 2000);
    rt.block_on(async {
        let _ = client.database(&src).drop().await;
        let _ = client.database(&dst).drop().await;
    });
}
