//! MariaDB and MongoDB in containers (tests/env/80-docker.sh: images built locally, servers on
//! the private bridge network, no published port). MariaDB's dumps and restores must come from
//! the container's own mariadb-dump / mariadb; MongoDB's are mtn's own, at the container's
//! address. Data is seeded and checked with the container's own client (MariaDB) or pymongo.

use std::process::Command;

use super::run;
use crate::support::*;

fn maria() -> String {
    env_var("MTN_TEST_DOCKER_MARIADB")
}

fn maria_url(db: &str) -> String {
    format!(
        "mysql://root:{}@container:{}/{db}",
        env_var("MTN_TEST_DOCKER_MARIADB_PASSWORD"),
        maria()
    )
}

/// SQL through the container's own client as root over its socket (the reference).
fn ctr_mariadb(sql: &str) -> String {
    docker(&["exec", &maria(), "mariadb", "-uroot", "-N", "-B", "-e", sql])
}

fn gunzip(path: &std::path::Path) -> String {
    cli(
        Command::new("gunzip").arg("-c").arg(path),
        &format!("gunzip {}", path.display()),
    )
}

#[test]
fn container_mariadb_dump_restore_with_the_containers_own_tools() {
    let copy = format!("shop_copy_{}", std::process::id());
    ctr_mariadb(&format!("DROP DATABASE IF EXISTS {copy}"));
    let want = ctr_mariadb("SELECT count(*) FROM shop.items");
    assert_eq!(want, "500");
    let dir = tempdir();
    let (url, copy_url) = (maria_url("shop"), maria_url(&copy));
    let r = run(
        dir.path(),
        &format!(
            r#"let d = dump_db("{url}", #{{ to: "backups/" }});
let q = db_query("{url}", "SELECT count(*) AS n, version() AS v FROM items WHERE id > ?", [100]);
let r = restore_db(d.path, "{copy_url}", #{{ create: true }});
let t = restore_test(d.path, "{url}", #{{ "SELECT count(*) FROM items": 500 }});
let s = db_stats("{url}");
print("RESULT " + #{{ d: d, q: q, r: r, t: t, s: s }}.to_json());"#
        ),
        &[],
    );
    r.expect_code(0);
    let pw = env_var("MTN_TEST_DOCKER_MARIADB_PASSWORD");
    assert!(!r.all().contains(&pw), "{}", r.all());
    let v = json_after(&r, "RESULT ");
    // The query reached the server on the container's address (its port is not published).
    assert_eq!(docker(&["port", &maria()]), "");
    assert_eq!(v["q"][0]["n"], 400, "{}", v["q"]);
    let version = v["q"][0]["v"].as_str().unwrap().to_string();
    let path = dir.path().join(v["d"]["path"].as_str().unwrap());
    assert!(path.to_string_lossy().ends_with(".sql.gz"), "{path:?}");
    let side = std::fs::read_to_string(format!("{}.sha256", path.display())).unwrap();
    assert!(side.starts_with(v["d"]["sha256"].as_str().unwrap()));
    assert_eq!(
        sha256_hex(&std::fs::read(&path).unwrap()),
        v["d"]["sha256"].as_str().unwrap()
    );
    let text = gunzip(&path);
    // Written by the container's mariadb-dump ("MariaDB dump 10.20-11.8.9-MariaDB, for ..."),
    // whose version is the server's.
    let release = version.split('-').next().unwrap();
    assert!(
        text.contains(&format!("-{release}-MariaDB, for")),
        "{}",
        &text[..300.min(text.len())]
    );
    assert!(text.contains("(500,'item 500')"), "rows in the dump");
    assert!(text.contains("Dump completed"));
    assert_eq!(v["r"]["database"], copy.as_str());
    assert_eq!(
        ctr_mariadb(&format!("SELECT count(*) FROM {copy}.items")),
        want
    );
    assert_eq!(v["t"]["ok"], true, "{}", v["t"]);
    assert_eq!(v["t"]["dropped"], true);
    assert_eq!(v["s"]["engine"], "mysql", "{}", v["s"]);
    let left = ctr_mariadb("SHOW DATABASES LIKE 'mtn_restore_test%'");
    assert_eq!(left, "", "scratch databases left behind");
    ctr_mariadb(&format!("DROP DATABASE {copy}"));
}

/// A wrong password: kind `auth`, exit 1, the password nowhere in the output, nothing written.
#[test]
fn container_mariadb_wrong_password_is_refused_without_echoing_it() {
    let dir = tempdir();
    let wrong = "Wrong-Pw-3141592";
    let url = format!("mysql://root:{wrong}@container:{}/shop", maria());
    let r = run(
        dir.path(),
        &format!(
            r#"try {{ db_query("{url}", "SELECT 1"); }} catch (e) {{ print("RESULT " + e.to_json()); }}
dump_db("{url}", #{{ to: "out/shop.sql.gz" }});"#
        ),
        &[],
    );
    r.expect_code(1);
    assert_eq!(json_after(&r, "RESULT ")["kind"], "auth", "{}", r.all());
    assert!(!r.all().contains(wrong), "{}", r.all());
    assert!(r.all().contains("Access denied"), "{}", r.all());
    assert!(!dir.path().join("out").exists(), "nothing written");
}

/// A missing container, for the MariaDB and MongoDB URL forms: kind `not_found` naming it,
/// exit 1, nothing written.
#[test]
fn container_mariadb_and_mongo_missing_container_is_not_found() {
    let dir = tempdir();
    for url in [
        "mariadb://root:pw@container:mtn_no_such_db/shop",
        "mongodb://u:pw@container:mtn_no_such_db/app",
    ] {
        let r = run(
            dir.path(),
            &format!(
                r#"try {{ dump_db("{url}", #{{ to: "x/a.gz" }}); }} catch (e) {{ print("RESULT " + e.to_json()); }}
dump_db("{url}", #{{ to: "out/dump.gz" }});"#
            ),
            &[],
        );
        r.expect_code(1);
        assert_eq!(
            json_after(&r, "RESULT ")["kind"],
            "not_found",
            "{url}: {}",
            r.all()
        );
        assert!(r.all().contains("mtn_no_such_db"), "{}", r.all());
        assert!(!dir.path().join("out").exists(), "nothing written");
        assert!(!dir.path().join("x").exists(), "nothing written");
    }
}

fn mongo_url(db: &str) -> String {
    format!(
        "mongodb://{}:{}@container:{}/{db}?authSource=admin",
        env_var("MTN_TEST_DOCKER_MONGO_USER"),
        env_var("MTN_TEST_DOCKER_MONGO_PASSWORD"),
        env_var("MTN_TEST_DOCKER_MONGO")
    )
}

/// pymongo against the container's address, as the container's admin user.
fn pymongo(code: &str, db: &str) -> String {
    let ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &env_var("MTN_TEST_DOCKER_MONGO"),
    ]);
    let url = format!(
        "mongodb://{}:{}@{ip}:27017/{db}?authSource=admin&serverSelectionTimeoutMS=10000",
        env_var("MTN_TEST_DOCKER_MONGO_USER"),
        env_var("MTN_TEST_DOCKER_MONGO_PASSWORD"),
    );
    let script = format!(
        "import sys, pymongo\nc = pymongo.MongoClient(sys.argv[1])\ndb = c.get_default_database()\n{code}"
    );
    cli(
        Command::new(env_var("MTN_TEST_MONGO_PYTHON")).args(["-c", &script, &url]),
        "pymongo",
    )
}

#[test]
fn container_mongo_dump_and_restore_test_at_the_containers_address() {
    let db = format!("ctr_{}", std::process::id());
    pymongo(
        "db.orders.drop()\ndb.orders.insert_many([{'n': i, 'item': f'item {i}'} for i in range(250)])",
        &db,
    );
    let dir = tempdir();
    let (url, copy) = (mongo_url(&db), mongo_url(&format!("{db}_copy")));
    let r = run(
        dir.path(),
        &format!(
            r#"let d = dump_db("{url}", #{{ to: "backups/" }});
let t = restore_test(d.path, "{url}", #{{ orders: 250 }});
let r = restore_db(d.path, "{copy}");
let n = mongo_count("{copy}", "orders", #{{ n: #{{ "$gte": 200 }} }});
print("RESULT " + #{{ d: d, t: t, r: r, n: n }}.to_json());"#
        ),
        &[],
    );
    r.expect_code(0);
    assert!(
        !r.all().contains(&env_var("MTN_TEST_DOCKER_MONGO_PASSWORD")),
        "{}",
        r.all()
    );
    let v = json_after(&r, "RESULT ");
    let path = dir.path().join(v["d"]["path"].as_str().unwrap());
    assert!(path.exists(), "{path:?}");
    assert!(std::fs::metadata(format!("{}.sha256", path.display())).is_ok());
    assert_eq!(v["t"]["ok"], true, "{}", v["t"]);
    assert_eq!(v["t"]["dropped"], true);
    assert_eq!(v["n"], 50, "{v}");
    // The restored copy, read back independently.
    assert_eq!(
        pymongo(
            "print(db.orders.count_documents({}))",
            &format!("{db}_copy")
        ),
        "250"
    );
    assert_eq!(docker(&["port", &env_var("MTN_TEST_DOCKER_MONGO")]), "");
    let left = pymongo(
        "print([n for n in c.list_database_names() if 'restore_test' in n])",
        &db,
    );
    assert_eq!(left, "[]", "scratch databases left behind");
    pymongo("c.drop_database(db.name)", &db);
    pymongo("c.drop_database(db.name)", &format!("{db}_copy"));
}
