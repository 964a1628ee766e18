//! Tests for the db capability: real PostgreSQL and MariaDB servers started by
//! tests/env/20-postgres.sh and 21-mariadb.sh, real SQLite files, the real mtn binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn pg_url() -> String {
    env_var("MTN_TEST_PG_URL")
}
fn pg_password() -> String {
    env_var("MTN_TEST_PG_PASSWORD")
}
fn pg_port() -> String {
    env_var("MTN_TEST_PG_PORT")
}
/// The server URL pointing at another database.
fn pg_db(db: &str) -> String {
    url_with_db(&pg_url(), db)
}
fn my_url() -> String {
    env_var("MTN_TEST_MY_URL")
}
fn my_db(db: &str) -> String {
    url_with_db(&my_url(), db)
}

fn mariadb(db: &str, sql: &str) -> String {
    let port = env_var("MTN_TEST_MY_PORT");
    cli(
        Command::new("mariadb")
            .args([
                "--no-defaults",
                "--protocol=TCP",
                "-h",
                "127.0.0.1",
                "-P",
                &port,
                "-uroot",
                "-N",
                "-B",
            ])
            .args(["-e", sql])
            .args(if db.is_empty() {
                vec![]
            } else {
                vec![db.to_string()]
            })
            .env("MYSQL_PWD", env_var("MTN_TEST_MY_PASSWORD")),
        &format!("mariadb {sql}"),
    )
}

const PG_SCHEMA: &str = "
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text, meta jsonb, created_at timestamptz DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(12,2), note text, placed date);
INSERT INTO customers (name, email, meta) SELECT 'name ' || g || E' with\\ttab and ''quote''', 'c' || g || '@example.com',
  jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b')) FROM generate_series(1, 3000) g;
INSERT INTO orders (customer_id, total, note, placed) SELECT 1 + g % 3000, g * 1.25, repeat('x', g % 50) || E'\\n\\u00e9', date '2024-01-01' + g % 365
  FROM generate_series(1, 8000) g;
";

/// Per table: row count and an order-independent content checksum.
fn pg_fingerprint(db: &str) -> Vec<String> {
    ["customers", "orders"]
        .iter()
        .map(|t| {
            psql(&pg_db(db), &format!("SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"))
        })
        .collect()
}

/// The dump a test script logged as `PATH=...`, after `gzip -t` found it whole.
fn logged_gzip(run: &Run) -> String {
    let all = run.all();
    let (_, rest) = all
        .split_once("PATH=")
        .unwrap_or_else(|| panic!("no PATH= in output:\n{all}"));
    let path = rest
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    cli(
        Command::new("gzip").arg("-t").arg(&path),
        &format!("gzip -t {path}"),
    );
    path
}

fn assert_no_secret(text: &str, secret: &str) {
    assert!(!text.contains(secret), "the password leaked:\n{text}");
}

/// A new PostgreSQL database (named from `prefix`) holding PG_SCHEMA's tables and rows.
fn pg_schema_db(prefix: &str) -> String {
    let db = unique(prefix);
    psql(&pg_db("postgres"), &format!("CREATE DATABASE {db}"));
    psql(&pg_db(&db), PG_SCHEMA);
    db
}

#[test]
fn pg_dump_restore_roundtrip_identical_and_plain_gunzip_psql() {
    let src = pg_schema_db("mtn_src");
    let dir = tempdir();
    let dst = unique("mtn_dst");
    let script = format!(
        r#"
let r = dump_db("{src_url}", #{{ to: "out/", min_size: 1000 }});
assert(r.bytes > 0 && r.raw_bytes > r.bytes, "sizes");
log(`PATH=${{r.path}}`);
let x = restore_db(r.path, "{dst_url}", #{{ create: true }});
assert(x.format == "plain", "format");
// A second restore into the now non-empty target is refused.
try {{ restore_db(r.path, "{dst_url}"); fail("not refused"); }} catch (e) {{ assert(e.kind == "refused", e.message); }}
"#,
        src_url = pg_db(&src),
        dst_url = pg_db(&dst)
    );
    let run = run_script_env(dir.path(), "t.rhai", &script, &["-v"], &[]);
    run.expect_code(0);
    assert_no_secret(&run.all(), &pg_password());
    let path = logged_gzip(&run);
    assert!(path.ends_with(".sql.gz"), "{path}");
    let side = std::fs::read_to_string(format!("{path}.sha256")).unwrap();
    let sum = Command::new("sha256sum").arg(&path).output().unwrap();
    assert_eq!(
        side.split_whitespace().next(),
        String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
    );
    assert_eq!(pg_fingerprint(&src), pg_fingerprint(&dst));

    // The file is an ordinary gzip of an ordinary SQL dump: `gunzip -c f | psql` restores it.
    let plain = unique("mtn_plain");
    psql(&pg_db("postgres"), &format!("CREATE DATABASE {plain}"));
    let mut gz = Command::new("gunzip")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let st = psql_command(&pg_db(&plain))
        .stdin(gz.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(gz.wait().unwrap().success());
    assert_eq!(pg_fingerprint(&src), pg_fingerprint(&plain));
    for d in [&src, &dst, &plain] {
        psql(
            &pg_db("postgres"),
            &format!("DROP DATABASE {d} WITH (FORCE)"),
        );
    }
}

#[test]
fn pg_custom_format_lists_and_restores() {
    let src = pg_schema_db("mtn_csrc");
    let dst = unique("mtn_cdst");
    let dir = tempdir();
    let script = format!(
        r#"let r = dump_db("{}", #{{ to: "out/db.dump", format: "custom" }});
restore_db(r.path, "{}", #{{ create: true, jobs: 2 }});"#,
        pg_db(&src),
        pg_db(&dst)
    );
    run_script(dir.path(), "t.rhai", &script, &[]).expect_code(0);
    assert!(Command::new("pg_restore")
        .arg("--list")
        .arg(dir.path().join("out/db.dump"))
        .output()
        .unwrap()
        .status
        .success());
    assert_eq!(pg_fingerprint(&src), pg_fingerprint(&dst));
    psql(
        &pg_db("postgres"),
        &format!("DROP DATABASE {src} WITH (FORCE)"),
    );
    psql(
        &pg_db("postgres"),
        &format!("DROP DATABASE {dst} WITH (FORCE)"),
    );
}

#[test]
fn pg_sigkill_mid_dump_leaves_no_final_file_and_password_not_in_ps() {
    let src = unique("mtn_big");
    psql(&pg_db("postgres"), &format!("CREATE DATABASE {src}"));
    // ~150 MB of text: long enough to catch the dump in flight.
    psql(&pg_db(&src), "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 8) AS payload FROM generate_series(1, 500000) g");
    let dir = tempdir();
    let dest = dir.path().join("big.sql.gz");
    std::fs::write(
        dir.path().join("t.rhai"),
        format!(
            r#"dump_db("{}", #{{ to: "{}", threads: 1, compress: "gzip:9" }});"#,
            pg_db(&src),
            dest.display()
        ),
    )
    .unwrap();
    let mut child = mtn()
        .current_dir(dir.path())
        .arg("run")
        .arg("t.rhai")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !temp_of(&dest).is_some_and(|tmp| {
        std::fs::metadata(&tmp)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "dump never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "mtn ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // pg_dump is running now: neither its command line nor mtn's shows the password.
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.contains("pg_dump"), "pg_dump not running:\n{ps}");
    assert_no_secret(&ps, &pg_password());
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !dest.exists(),
        "a file exists under the final name after SIGKILL"
    );
    psql(
        &pg_db("postgres"),
        &format!("DROP DATABASE {src} WITH (FORCE)"),
    );
}

#[test]
fn pg_clear_errors_exit_1_and_no_file() {
    let dir = tempdir();
    let u = pg_url();
    let wrong = u.replace(&pg_password(), "not-the-password");
    type Case<'a> = (String, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (wrong, vec![], "authentication failed"),
        (
            format!(
                "postgres://postgres:x@127.0.0.1:{}/postgres?connect_timeout=3",
                free_port()
            ),
            vec![],
            "cannot connect",
        ),
        (
            u.clone(),
            vec![("PATH", dir.path().join("empty-bin").display().to_string())],
            "pg_dump not found in PATH: install the Debian package postgresql-client",
        ),
    ];
    for (i, (url, env, expect)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out{i}"));
        let script = format!(r#"dump_db("{url}", #{{ to: "{}/" }});"#, out.display());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = run_script_env(dir.path(), "t.rhai", &script, &[], &env);
        run.expect_code(1);
        assert!(
            run.all().contains(expect),
            "case {i}: expected {expect:?} in\n{}",
            run.all()
        );
        assert_no_secret(&run.all(), &pg_password());
        let files = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
        assert_eq!(files, 0, "case {i}: files were written");
    }
}

#[test]
fn pg_restore_test_drops_scratch_when_check_fails_and_records_success() {
    let src = pg_schema_db("mtn_rt");
    let dir = tempdir();
    let script = format!(
        r#"
let d = dump_db("{src}", #{{ to: "out/" }}).path;
let bad = restore_test(d, "{server}", #{{ "SELECT count(*) FROM customers": 3000, "SELECT count(*) FROM orders": 1 }});
assert(!bad.ok, "a failing check must make ok false");
assert(bad.checks.len() == 2 && bad.dropped, "report");
let thrown = restore_test(d, "{server}", |url| {{ db_query(url, "SELECT * FROM no_such_table"); true }});
assert(!thrown.ok, "a throwing closure fails");
let good = restore_test(d, "{server}", |url| db_query(url, "SELECT count(*) AS n FROM orders")[0].n == 8000);
assert(good.ok, `closure check: ${{good}}`);
log(`SCRATCH=${{bad.database}},${{thrown.database}},${{good.database}}`);
"#,
        src = pg_db(&src),
        server = pg_url()
    );
    let run = run_script_env(
        dir.path(),
        "t.rhai",
        &script,
        &["--state-dir", "state"],
        &[],
    );
    run.expect_code(0);
    // This run's scratch databases are gone (by name: other tests drill on the same server
    // at the same time).
    let names = run
        .all()
        .split("SCRATCH=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let names: Vec<&str> = names.split(',').collect();
    assert_eq!(names.len(), 3);
    assert!(
        names.iter().all(|n| n.starts_with("mtn_restore_test_")),
        "{names:?}"
    );
    let list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        psql(
            &pg_db("postgres"),
            &format!("SELECT count(*) FROM pg_database WHERE datname IN ({list})")
        ),
        "0"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/last_restore_test.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["ok"], true);
    assert!(state["timestamp"].as_i64().unwrap() > 1_600_000_000);
    assert!(!state["url"].as_str().unwrap().contains(&pg_password()));
    psql(
        &pg_db("postgres"),
        &format!("DROP DATABASE {src} WITH (FORCE)"),
    );
}

#[test]
fn pg_export_table_csv_with_where_and_jsonl_match_psql() {
    let db = pg_schema_db("mtn_exp");
    let dir = tempdir();
    let u = pg_db(&db);
    let script = format!(
        r#"let c = export_table("{u}", "customers", "out/c.csv", #{{ where: "id <= 10" }});
let j = export_table("{u}", "orders", "out/o.jsonl.gz", #{{ format: "jsonl" }});
print("JSON:" + #{{ c: c, j: j }}.to_json());"#
    );
    let run = run_script(dir.path(), "e.rhai", &script, &[]);
    let v = json_after(run.expect_code(0), "JSON:");
    assert_eq!(v["c"]["rows"], 10, "{v}");
    assert_eq!(v["j"]["rows"], 8000, "{v}");
    // The CSV is psql's own COPY of the same rows; the JSON lines parse and hold the text as
    // stored (tabs, quotes, newlines and é undone from COPY's escaping).
    let csv = std::fs::read_to_string(dir.path().join("out/c.csv")).unwrap();
    let reference = psql(
        &pg_db(&db),
        "COPY (SELECT * FROM customers WHERE id <= 10) TO STDOUT WITH (FORMAT csv, HEADER true)",
    );
    assert_eq!(csv.trim_end(), reference);
    let gz = cli(
        Command::new("gunzip")
            .arg("-c")
            .arg(dir.path().join("out/o.jsonl.gz")),
        "gunzip",
    );
    let first: serde_json::Value = serde_json::from_str(gz.lines().next().unwrap()).unwrap();
    let note = psql(
        &pg_db(&db),
        &format!("SELECT note FROM orders WHERE id = {}", first["id"]),
    );
    assert_eq!(first["note"].as_str().unwrap().trim(), note);
    assert_eq!(gz.lines().count(), 8000);
    psql(
        &pg_db("postgres"),
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
}

#[test]
fn pg_delete_rows_older_than_deletes_in_batches() {
    let db = unique("mtn_del");
    psql(&pg_db("postgres"), &format!("CREATE DATABASE {db}"));
    psql(
        &pg_db(&db),
        "CREATE TABLE events (id serial, at timestamptz); \
        INSERT INTO events (at) SELECT now() - interval '100 days' FROM generate_series(1, 2500); \
        INSERT INTO events (at) SELECT now() FROM generate_series(1, 10);",
    );
    let dir = tempdir();
    let u = pg_db(&db);
    let dry_script = format!(
        r#"let dry = delete_rows_older_than("{u}", "events", "at", "90d", #{{ batch: 1000 }});
assert(dry.dry_run && dry.deleted == 0 && dry.matching == 2500, `dry: ${{dry}}`);"#
    );
    run_script(dir.path(), "d.rhai", &dry_script, &["--dry-run"]).expect_code(0);
    assert_eq!(psql(&pg_db(&db), "SELECT count(*) FROM events"), "2510");
    let script = format!(
        r#"let r = delete_rows_older_than("{u}", "events", "at", "90d", #{{ batch: 1000, pause: "10ms" }});
log(`BATCHES=${{r.batches}} DELETED=${{r.deleted}}`);"#
    );
    let run = run_script(dir.path(), "t.rhai", &script, &[]);
    run.expect_code(0);
    assert!(
        run.all().contains("BATCHES=3 DELETED=2500"),
        "{}",
        run.all()
    );
    assert_eq!(psql(&pg_db(&db), "SELECT count(*) FROM events"), "10");
    psql(
        &pg_db("postgres"),
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
}

#[test]
fn mysql_dump_restore_roundtrip_identical() {
    let src = unique("mtn_msrc");
    mariadb("", &format!("CREATE DATABASE {src}"));
    mariadb(&src, "CREATE TABLE people (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), bio TEXT, born DATE, score DECIMAL(8,2), photo BLOB);
        INSERT INTO people (name, bio, born, score, photo) VALUES ('Ada', 'tab\there', '1815-12-10', 99.5, X'00FF10'), ('O''Brien', NULL, '1990-01-01', 1.25, NULL);
        INSERT INTO people (name, bio, born, score) SELECT CONCAT('p', seq), REPEAT('z', seq % 40), '2000-01-01', seq / 4 FROM seq_1_to_3000;");
    let dst = unique("mtn_mdst");
    let dir = tempdir();
    let script = format!(
        r#"let r = dump_db("{}", #{{ to: "out/" }});
log(`PATH=${{r.path}}`);
restore_db(r.path, "{}", #{{ create: true }});
let t = restore_test(r.path, "{}", #{{ "SELECT COUNT(*) FROM people": 3002 }});
assert(t.ok, `${{t}}`);"#,
        my_db(&src),
        my_db(&dst),
        my_url()
    );
    let run = run_script_env(dir.path(), "t.rhai", &script, &["-v"], &[]);
    run.expect_code(0);
    assert_no_secret(&run.all(), &env_var("MTN_TEST_MY_PASSWORD"));
    logged_gzip(&run);
    let sum = |db: &str| {
        mariadb(db, "SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, IFNULL(bio,'~'), born, score, HEX(IFNULL(photo,''))) ORDER BY id SEPARATOR ',')) FROM people")
    };
    mariadb("", "SET GLOBAL group_concat_max_len = 100000000");
    assert_eq!(sum(&src), sum(&dst));
    assert_eq!(mariadb("", "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'mtn_restore_test%'"), "0");
    mariadb("", &format!("DROP DATABASE {src}; DROP DATABASE {dst}"));
}

fn sqlite_fingerprint(path: &Path) -> Vec<(String, i64, String)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let mut rows: Vec<String> = Vec::new();
            let mut st = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = st.column_count();
            let mut q = st.query([]).unwrap();
            while let Some(r) = q.next().unwrap() {
                rows.push(
                    (0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"),
                );
            }
            rows.sort();
            use sha2::Digest;
            let h = hex::encode(sha2::Sha256::digest(rows.join("\n").as_bytes()));
            (t, rows.len() as i64, h)
        })
        .collect()
}

#[test]
fn sqlite_dump_restore_roundtrip_identical_and_nightly_script() {
    let dir = sandbox();
    let script = r#"
let r = dump_db("sqlite://examples/app.db", #{ to: "out/" });
log(`PATH=${r.path}`);
restore_db(r.path, "sqlite://restored/app.db", #{ create: true });
let rows = db_query("sqlite://restored/app.db", "SELECT count(*) AS n FROM orders WHERE status = ?", ["paid"]);
assert(rows[0].n > 0, "paid orders");
let x = export_table("sqlite://restored/app.db", "customers", "out/customers.csv");
assert(x.rows == 200, `${x}`);
"#;
    let run = run_script(dir.path(), "t.rhai", script, &[]);
    run.expect_code(0);
    logged_gzip(&run);
    let fp = sqlite_fingerprint(&dir.path().join("examples/app.db"));
    assert_eq!(fp.len(), 5);
    assert_eq!(fp, sqlite_fingerprint(&dir.path().join("restored/app.db")));
    let csv = std::fs::read_to_string(dir.path().join("out/customers.csv")).unwrap();
    assert_eq!(csv.lines().count(), 201);

    // The shipped nightly procedure works on a machine with no server.
    let nightly = mtn()
        .current_dir(dir.path())
        .arg("run")
        .arg(repo().join("scripts/nightly.rhai"))
        .args(["--state-dir", "state"])
        .output()
        .unwrap();
    let nightly = Run::from(nightly);
    nightly.expect_code(0);
    let backups: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(backups.iter().any(|b| b.ends_with(".db.gz")), "{backups:?}");
    assert!(
        backups.iter().any(|b| b.ends_with(".db.gz.sha256")),
        "{backups:?}"
    );
    assert!(dir.path().join("state/last_restore_test.json").exists());
}

#[test]
fn sqlite_delete_batches_and_restore_test_closure() {
    let dir = tempdir();
    let db = dir.path().join("ev.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE ev (id INTEGER PRIMARY KEY, at TEXT); \
        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 250) INSERT INTO ev (at) SELECT datetime('now', '-200 days') FROM s; \
        INSERT INTO ev (at) VALUES (datetime('now'));").unwrap();
    drop(c);
    let script = format!(
        r#"let r = delete_rows_older_than("sqlite://{db}", "ev", "at", "90d", #{{ batch: 100, pause: 0 }});
assert(r.deleted == 250 && r.batches == 3, `${{r}}`);
let d = dump_db("sqlite://{db}", #{{ to: "out/" }});
let t = restore_test(d.path, "sqlite://{db}", #{{ "SELECT count(*) FROM ev": 2 }});
assert(!t.ok && !t.checks[0].ok && t.checks[0].actual == 1, `${{t}}`);
"#,
        db = db.display()
    );
    run_script(dir.path(), "t.rhai", &script, &[]).expect_code(0);
}

/// A private (0600) file for passwords: libpq and the MySQL clients ignore readable ones.
fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Run `probe` (a script that logs `RESULT=ok` or `RESULT=<kind>|<message>`) with `env`, from
/// a folder whose HOME is private, so the machine's own ~/.pgpass or ~/.my.cnf never count.
fn probe(dir: &Path, script: &str, env: &[(&str, &str)]) -> Run {
    let home = dir.to_string_lossy().to_string();
    let mut all: Vec<(&str, &str)> = vec![("HOME", home.as_str())];
    all.extend_from_slice(env);
    run_script_env(dir, "probe.rhai", script, &[], &all)
}

fn probe_script(call: &str) -> String {
    format!(
        "let r = \"\";\ntry {{ {call}; r = \"ok\"; }} catch (e) {{ r = e.kind + \"|\" + e.message; }}\nlog(`RESULT=${{r}}`);\n"
    )
}

fn result_of(run: &Run) -> String {
    run.expect_code(0);
    let all = run.all();
    all.split("RESULT=")
        .nth(1)
        .unwrap_or_else(|| panic!("no RESULT in\n{all}"))
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn pg_password_convention_every_source_and_auth_errors() {
    let dir = tempdir();
    let pw = pg_password();
    let port = pg_port();
    let bare = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let query = probe_script(&format!("db_query(\"{bare}\", \"SELECT 1 AS one\")"));

    // Nothing anywhere: kind auth (never network), naming every place mtn looked.
    let r = result_of(&probe(dir.path(), &query, &[]));
    assert!(r.starts_with("auth|"), "{r}");
    for place in [
        "the URL",
        "DB_PASSWORD",
        "DB_PASSWORD_FILE",
        "PGPASSWORD",
        ".pgpass",
    ] {
        assert!(r.contains(place), "{place} missing from: {r}");
    }

    // Each source on its own works.
    let pw_file = dir.path().join("db.pw");
    private_file(&pw_file, &format!("{pw}\n"));
    let pw_path = pw_file.to_string_lossy().to_string();
    let pgpass = dir.path().join("pgpass");
    private_file(
        &pgpass,
        &format!("other:1:*:*:nope\n127.0.0.1:{port}:*:postgres:{pw}\n"),
    );
    let pgpass_path = pgpass.to_string_lossy().to_string();
    for env in [
        vec![("PGPASSWORD", pw.as_str())],
        vec![("PGPASSFILE", pgpass_path.as_str())],
        vec![("DB_PASSWORD", pw.as_str())],
        vec![("DB_PASSWORD_FILE", pw_path.as_str())],
    ] {
        let run = probe(dir.path(), &query, &env);
        assert_eq!(result_of(&run), "ok", "{env:?}");
        assert_no_secret(&run.all(), &pw);
    }
    // ~/.pgpass (HOME is the test folder).
    private_file(
        &dir.path().join(".pgpass"),
        &format!("*:{port}:postgres:postgres:{pw}\n"),
    );
    assert_eq!(result_of(&probe(dir.path(), &query, &[])), "ok");
    std::fs::remove_file(dir.path().join(".pgpass")).unwrap();

    // The password_file option, on a function with options.
    let stats = probe_script(&format!(
        "db_stats(\"{bare}\", #{{ password_file: \"{pw_path}\" }})"
    ));
    assert_eq!(result_of(&probe(dir.path(), &stats, &[])), "ok");

    // A wrong password: auth, saying where it came from; the URL's password wins over the rest.
    let wrong = dir.path().join("wrong.pw");
    private_file(&wrong, "Wrong-Pw-4711\n");
    let bad = probe_script(&format!(
        "db_stats(\"{bare}\", #{{ password_file: \"{}\" }})",
        wrong.display()
    ));
    let run = probe(dir.path(), &bad, &[("PGPASSWORD", pw.as_str())]);
    let r = result_of(&run);
    assert!(
        r.starts_with("auth|") && r.contains("password_file") && r.contains("wrong.pw"),
        "{r}"
    );
    assert_no_secret(&run.all(), "Wrong-Pw-4711");
    let with_url = probe_script(&format!("db_query(\"{}\", \"SELECT 1\")", pg_url()));
    let run = probe(dir.path(), &with_url, &[("PGPASSWORD", "Wrong-Pw-4711")]);
    assert_eq!(result_of(&run), "ok");
}

#[test]
fn mysql_password_convention_and_auth_errors() {
    let dir = tempdir();
    let pw = env_var("MTN_TEST_MY_PASSWORD");
    let port = env_var("MTN_TEST_MY_PORT");
    let bare = format!("mysql://root@127.0.0.1:{port}/mysql");
    let query = probe_script(&format!("db_query(\"{bare}\", \"SELECT 1 AS one\")"));
    let r = result_of(&probe(dir.path(), &query, &[]));
    assert!(
        r.starts_with("auth|") && r.contains("MYSQL_PWD") && r.contains(".my.cnf"),
        "{r}"
    );
    let run = probe(dir.path(), &query, &[("MYSQL_PWD", pw.as_str())]);
    assert_eq!(result_of(&run), "ok");
    assert_no_secret(&run.all(), &pw);
    private_file(
        &dir.path().join(".my.cnf"),
        &format!("[mysqld]\npassword=nope\n[client]\npassword=\"{pw}\"\n"),
    );
    assert_eq!(result_of(&probe(dir.path(), &query, &[])), "ok");
    // The dump tool gets the resolved password too (through its private defaults file).
    let dump = probe_script(&format!("dump_db(\"{bare}\", #{{ to: \"out/\" }})"));
    let run = probe(dir.path(), &dump, &[]);
    assert_eq!(result_of(&run), "ok");
    assert_no_secret(&run.all(), &pw);
    std::fs::remove_file(dir.path().join(".my.cnf")).unwrap();
    let r = result_of(&probe(
        dir.path(),
        &query,
        &[("MYSQL_PWD", "Wrong-Pw-4712")],
    ));
    assert!(r.starts_with("auth|") && r.contains("MYSQL_PWD"), "{r}");
}

#[test]
fn libpq_keyword_strings_work_and_never_echo_their_password() {
    let dir = tempdir();
    let pw = pg_password();
    let good = format!(
        "host=127.0.0.1 port={} user=postgres password='{pw}' dbname=postgres",
        pg_port()
    );
    let script = format!(
        r#"let rows = db_query("{good}", "SELECT current_user AS u, $1::int AS n", [7]);
assert(rows[0].u == "postgres" && rows[0].n == 7, `${{rows}}`);
let s = db_stats("{good}");
log(`STATS=${{s.engine}} ${{s.database}}`);
"#
    );
    let run = run_script(dir.path(), "kw.rhai", &script, &["-v"]);
    run.expect_code(0);
    assert!(
        run.all().contains("STATS=postgres postgres"),
        "{}",
        run.all()
    );
    assert_no_secret(&run.all(), &pw);

    // Strings mtn cannot use: an error naming the problem, the password masked, exit 1.
    for (i, bad) in [
        "host=127.0.0.1 user=u password=Sup3r-Secret-77 dbnme=d",
        "host=127.0.0.1 password='Sup3r-Secret-77",
        "Server=x;Password=Sup3r-Secret-77;Database=y",
    ]
    .iter()
    .enumerate()
    {
        // From the environment, as a real script would get it (a literal in the script would
        // show in the error's source excerpt: that is the user's own text).
        let run = run_script_env(
            dir.path(),
            &format!("bad{i}.rhai"),
            "db_query(env(\"CONN\"), \"SELECT 1\");",
            &[],
            &[("CONN", bad)],
        );
        run.expect_code(1);
        assert!(
            !run.all().contains("Sup3r-Secret-77"),
            "case {i} leaked:\n{}",
            run.all()
        );
        assert!(run.all().contains("***"), "case {i}:\n{}", run.all());
    }
}

#[test]
fn mysql_queries_bind_parameters_and_keep_types() {
    let db = unique("mtn_myq");
    mariadb("", &format!("CREATE DATABASE {db}"));
    mariadb(
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50), price DECIMAL(8,2), whole DECIMAL(8,0), born DATE, at DATETIME, raw VARBINARY(8), doc JSON, ratio DOUBLE); \
         CREATE TABLE ev (id INT PRIMARY KEY AUTO_INCREMENT, at DATETIME); \
         INSERT INTO ev (at) SELECT NOW() - INTERVAL 200 DAY FROM seq_1_to_250; INSERT INTO ev (at) VALUES (NOW());",
    );
    let dir = tempdir();
    let u = my_db(&db);
    let script = format!(
        r#"let n = db_exec("{u}", "INSERT INTO t (name, price, whole, born, at, raw, doc, ratio) VALUES (?, ?, ?, ?, ?, UNHEX('00FF'), ?, ?)",
    ["it's a ? mark; DROP TABLE t; --", "12.50", 7, "2024-02-29", "2024-03-01 10:20:30", "{{\"a\": [1, 2]}}", 0.5]);
assert(n == 1, `inserted ${{n}}`);
let rows = db_query("{u}", "SELECT * FROM t WHERE name = ?", ["it's a ? mark; DROP TABLE t; --"]);
let r = rows[0];
assert(r.id == 1 && r.whole == 7 && r.price == "12.50" && r.ratio == 0.5, `${{r}}`);
assert(r.born == "2024-02-29" && r.at == "2024-03-01 10:20:30" && r.raw == "\\x00ff", `${{r}}`);
// MariaDB's JSON is LONGTEXT with a check: it comes back as text (MySQL's JSON type as a map).
assert(r.doc.contains("\"a\""), `${{r}}`);
let text = db_query("{u}", "SELECT COUNT(*) AS c, SUM(whole) AS s FROM t");
assert(text[0].c == 1 && text[0].s == 7, `${{text}}`);
let x = export_table("{u}", "t", "out/t.jsonl", #{{ format: "jsonl" }});
assert(x.rows == 1, `${{x}}`);
let c = export_table("{u}", "ev", "out/ev.csv.gz", #{{ where: "id > 240" }});
assert(c.rows == 11, `${{c}}`);
let d = delete_rows_older_than("{u}", "ev", "at", "90d", #{{ batch: 100, pause: 0 }});
assert(d.deleted == 250 && d.batches == 3 && d.matching == 0, `${{d}}`);
let s = db_stats("{u}");
assert(s.engine == "mysql" && s.max_connections > 0 && s.largest_tables.len() == 2, `${{s}}`);
let v = vacuum("{u}");
assert(v.tables.len() == 2, `${{v}}`);
let bad = "";
try {{ db_query("{u}", "SELECT * FROM no_such_table"); }} catch (e) {{ bad = e.kind + "|" + e.message; }}
log(`BAD=${{bad}}`);
"#
    );
    let run = run_script(dir.path(), "q.rhai", &script, &[]);
    run.expect_code(0);
    assert!(
        run.all().contains("BAD=server|") && run.all().contains("no_such_table"),
        "{}",
        run.all()
    );
    let jsonl = std::fs::read_to_string(dir.path().join("out/t.jsonl")).unwrap();
    let row: serde_json::Value = serde_json::from_str(jsonl.trim()).unwrap();
    assert_eq!(row["name"], "it's a ? mark; DROP TABLE t; --");
    assert_eq!(mariadb(&db, "SELECT COUNT(*) FROM t"), "1");
    assert_eq!(mariadb(&db, "SELECT COUNT(*) FROM ev"), "1");
    mariadb("", &format!("DROP DATABASE {db}"));
}

/// `application_name` in a URL reaches the server as written, spaces included (operators find
/// mtn's sessions in pg_stat_activity by it; the fleet names its sessions `mtn fleet HOST`).
#[test]
fn db_pg_application_name_from_the_url_keeps_its_spaces() {
    let dir = tempdir();
    let url = pg_db("postgres");
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = run_script(
        dir.path(),
        "a.rhai",
        &format!(
            r#"let rows = db_query("{url}{sep}application_name=nightly+backup", "SELECT current_setting('application_name') AS n");
print("NAME=" + rows[0].n);"#
        ),
        &[],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("NAME=nightly backup"), "{}", r.all());
}
