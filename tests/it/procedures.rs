//! Tests for the procedures library: every script in scripts/ and module in stdlib/, run end to
//! end against real files, SQLite, PostgreSQL (tests/env/20-postgres.sh) and SeaweedFS S3
//! (tests/env/30-s3.sh), including dry-runs that must change nothing, and the docs' examples.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn script(name: &str) -> PathBuf {
    repo().join("scripts").join(name)
}

fn run_in(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = mtn();
    c.current_dir(dir).arg("run").arg(script(name)).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output().expect("run mtn"))
}

fn sh(cmd: &str, dir: &Path) -> String {
    cli(
        Command::new("bash").arg("-c").arg(cmd).current_dir(dir),
        cmd,
    )
}

/// Every file under `dir` with its size, mtime and content hash.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
                out.insert(p.display().to_string(), "dir".into());
            } else {
                let data = std::fs::read(&p).unwrap_or_default();
                let h = data
                    .iter()
                    .fold(0u64, |h, b| h.wrapping_mul(1099511628211) ^ *b as u64);
                out.insert(
                    p.display().to_string(),
                    format!("{} {:?} {h}", m.len(), m.modified().ok()),
                );
            }
        }
    }
    out
}

fn backups_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("backups"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| !p.to_string_lossy().ends_with(".sha256"));
    v.sort();
    v
}

#[test]
fn procedures_every_script_and_module_passes_check() {
    let mut files = Vec::new();
    for dir in ["scripts", "stdlib", "examples"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "rhai") {
                files.push(e.path());
            }
        }
    }
    assert!(
        files.len() >= 20,
        "expected the whole library, found {files:?}"
    );
    let r = Run::from(mtn().arg("check").args(&files).output().unwrap());
    r.expect_code(0);
}

#[test]
fn procedures_nightly_backs_up_the_bundled_sqlite_out_of_the_box() {
    let d = sandbox();
    let before = sh(
        "sqlite3 examples/app.db 'SELECT count(*) FROM orders'",
        d.path(),
    );
    let r = run_in(d.path(), "nightly.rhai", &[], &[]);
    r.expect_code(0);
    assert!(r.stderr.contains("restore test ok"), "{}", r.stderr);
    let b = backups_in(d.path());
    assert_eq!(b.len(), 1, "{b:?}");
    let name = b[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("app_") && name.ends_with(".db.gz"),
        "{name}"
    );
    // The standard tools accept the artifact: gzip -t, sha256sum -c, and sqlite3 reads it back.
    sh(&format!("gzip -t backups/{name}"), d.path());
    sh(
        &format!("cd backups && sha256sum -c {name}.sha256"),
        d.path(),
    );
    sh(&format!("gunzip -c backups/{name} > restored.db"), d.path());
    assert_eq!(
        sh(
            "sqlite3 restored.db 'SELECT count(*) FROM orders'",
            d.path()
        ),
        before
    );
    // A second night keeps both (keep_last 7) and the first is never touched.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run_in(d.path(), "nightly.rhai", &[], &[]).expect_code(0);
    assert_eq!(backups_in(d.path()).len(), 2);
}

#[test]
fn procedures_dry_runs_change_nothing() {
    let d = sandbox();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    std::fs::write(d.path().join("logs/app.log"), "line\n").unwrap();
    let before = snapshot(d.path());
    for (script, env) in [
        ("nightly.rhai", vec![]),
        ("cleanup.rhai", vec![("TEMP_DIR", "./logs")]),
        ("logs.rhai", vec![]),
        ("weekly_maintenance.rhai", vec![]),
    ] {
        let r = run_in(d.path(), script, &["--dry-run"], &env);
        assert!(r.code == 0 || r.code == 1, "{script}: {}", r.all());
        assert_eq!(
            snapshot(d.path()),
            before,
            "{script} --dry-run changed the tree:\n{}",
            r.all()
        );
    }
}

#[test]
fn procedures_restore_drill_proves_the_newest_backup_and_logs_it() {
    let d = sandbox();
    run_in(
        d.path(),
        "nightly.rhai",
        &["--set", "restore_test=false"],
        &[],
    )
    .expect_code(0);
    let r = run_in(
        d.path(),
        "monthly_restore_drill.rhai",
        &[],
        &[("MAINTENANCE_LOG", "maintenance.md")],
    );
    r.expect_code(0);
    assert!(r.stderr.contains("restore drill passed"), "{}", r.stderr);
    let log = std::fs::read_to_string(d.path().join("maintenance.md")).unwrap();
    assert!(
        log.contains("Restore drill") && log.contains("result: passed"),
        "{log}"
    );
    // A check that cannot pass fails the drill (exit 1) and says which.
    let r = run_in(
        d.path(),
        "monthly_restore_drill.rhai",
        &[],
        &[("CHECKS", "SELECT count(*) FROM orders=0")],
    );
    r.expect_code(1);
    assert!(r.stderr.contains("restore drill of"), "{}", r.stderr);
    // No backup at all is a clear failure, not a silent pass.
    let empty = sandbox();
    let r = run_in(empty.path(), "monthly_restore_drill.rhai", &[], &[]);
    r.expect_code(1);
}

#[test]
fn procedures_cleanup_archives_audit_rows_before_deleting_them() {
    let d = sandbox();
    let old = "SELECT count(*) FROM audit_log WHERE julianday(created_at) < julianday('now') - 90";
    let n_old: u64 = sh(&format!("sqlite3 examples/app.db \"{old}\""), d.path())
        .parse()
        .unwrap();
    let n_all: u64 = sh(
        "sqlite3 examples/app.db 'SELECT count(*) FROM audit_log'",
        d.path(),
    )
    .parse()
    .unwrap();
    assert!(n_old > 0, "the example needs old audit rows");
    // An orphaned order (its customer is gone), as "remove orders without users".
    sh("sqlite3 examples/app.db \"INSERT INTO orders (customer_id, status, total_cents, created_at) VALUES (999999, 'paid', 100, '2026-01-01 00:00:00')\"", d.path());
    let r = run_in(d.path(), "cleanup.rhai", &[], &[]);
    r.expect_code(0);
    assert_eq!(
        sh(&format!("sqlite3 examples/app.db \"{old}\""), d.path()),
        "0"
    );
    let left: u64 = sh(
        "sqlite3 examples/app.db 'SELECT count(*) FROM audit_log'",
        d.path(),
    )
    .parse()
    .unwrap();
    let archives: Vec<PathBuf> = std::fs::read_dir(d.path().join("archive"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".csv.gz"))
        .collect();
    assert_eq!(archives.len(), 1);
    let lines: u64 = sh(
        &format!("gunzip -c {} | wc -l", archives[0].display()),
        d.path(),
    )
    .parse()
    .unwrap();
    // Every deleted row is in the archive (header + rows; the archive may hold a few more).
    assert!(
        lines > n_all - left,
        "archived {} rows, deleted {}",
        lines - 1,
        n_all - left
    );
    assert_eq!(n_all - left, n_old);
    assert_eq!(
        sh(
            "sqlite3 examples/app.db 'SELECT count(*) FROM orders WHERE customer_id = 999999'",
            d.path()
        ),
        "0"
    );
}

#[test]
fn procedures_security_audit_finds_each_problem_and_passes_a_clean_tree() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempdir();
    let app = d.path().join("app");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::create_dir_all(app.join("uploads")).unwrap();
    std::fs::write(app.join(".env"), "DB_PASSWORD=x\n").unwrap();
    std::fs::set_permissions(app.join(".env"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(app.join("uploads"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(app.join("server.key"), "key").unwrap();
    std::fs::set_permissions(
        app.join("server.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::write(
        app.join("src/db.js"),
        "const password = \"hunter2hunter2\";\n",
    )
    .unwrap();
    let r = run_in(
        d.path(),
        "security_audit.rhai",
        &["--set", "audit_dir=app"],
        &[],
    );
    r.expect_code(1);
    for needle in [
        "env_permissions",
        "world_writable",
        "world_readable_secret",
        "hardcoded_secret",
        "db.js:1",
    ] {
        assert!(r.stderr.contains(needle), "{needle} missing:\n{}", r.stderr);
    }
    assert!(
        !r.all().contains("hunter2hunter2"),
        "the secret itself was printed"
    );
    std::fs::set_permissions(app.join(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(app.join("uploads"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        app.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        app.join("src/db.js"),
        "const password = process.env.DB_PASSWORD;\n",
    )
    .unwrap();
    run_in(
        d.path(),
        "security_audit.rhai",
        &["--set", "audit_dir=app"],
        &[],
    )
    .expect_code(0);
}

#[test]
fn procedures_weekly_maintenance_runs_every_step_and_logs_it() {
    let d = sandbox();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    std::fs::write(d.path().join("logs/app.log"), "hello\n").unwrap();
    let r = run_in(d.path(), "weekly_maintenance.rhai", &[], &[]);
    r.expect_code(0);
    assert!(
        !d.path().join(".maintenance").exists(),
        "maintenance flag left behind"
    );
    let log = std::fs::read_to_string(d.path().join("maintenance.md")).unwrap();
    for needle in [
        "Weekly maintenance",
        "- backup: ",
        "- logs: 1 rotated",
        "- disk: ",
        "- database: vacuum",
    ] {
        assert!(log.contains(needle), "{needle} missing in\n{log}");
    }
    assert!(d.path().join("logs/app.log.1").exists());
    assert_eq!(backups_in(d.path()).len(), 1);
    // A step that fails is reported, the others still run, and the run fails at the end.
    let r = run_in(
        d.path(),
        "weekly_maintenance.rhai",
        &[],
        &[("DATABASE_URL", "sqlite://missing.db")],
    );
    r.expect_code(1);
    let log = std::fs::read_to_string(d.path().join("maintenance.md")).unwrap();
    assert!(
        log.contains("- backup: FAILED") && log.contains("- disk: "),
        "{log}"
    );
    assert!(!d.path().join(".maintenance").exists());
}

#[test]
fn procedures_maintenance_mode_enter_status_exit() {
    let d = tempdir();
    let script = "import \"maintenance_mode\" as mm;\nlet s = mm::enter(\"flag\", \"db upgrade\");\nassert(s.active && s.reason == \"db upgrade\", `${s}`);\nlet again = false;\ntry { mm::enter(\"flag\", \"x\"); } catch (e) { again = true; }\nassert(again, \"entering twice must fail\");\nassert(mm::exit(\"flag\"), \"exit\");\nassert(!mm::status(\"flag\").active, \"still active\");\n";
    run_script(d.path(), "mm.rhai", script, &[]).expect_code(0);
    assert!(!d.path().join("flag").exists());
}

#[test]
fn procedures_nightly_postgres_to_s3_with_retention_and_restore_test() {
    let pg = env_var("MTN_TEST_PG_URL");
    let db = format!("shop_{}", std::process::id());
    let url = url_with_db(&pg, &db);
    psql(&pg, &format!("CREATE DATABASE {db}"));
    psql(
        &url,
        "CREATE TABLE orders (id serial primary key, total int); INSERT INTO orders (total) SELECT g FROM generate_series(1, 500) g",
    );
    let d = tempdir();
    let bucket = env_var("MTN_TEST_S3_BUCKET");
    let target = format!("s3://{bucket}/nightly-{}/", std::process::id());
    // As the getting-started guide says: no password in the URL, DB_PASSWORD_FILE instead; the
    // database functions resolve it (the script has no code for it).
    let pw_file = d.path().join("db_password");
    std::fs::write(&pw_file, format!("{}\n", env_var("MTN_TEST_PG_PASSWORD"))).unwrap();
    let bare_url = url.replacen(&format!(":{}@", env_var("MTN_TEST_PG_PASSWORD")), "@", 1);
    assert_ne!(bare_url, url);
    let pw_path = pw_file.to_string_lossy().to_string();
    let env = [
        ("DATABASE_URL", bare_url.as_str()),
        ("DB_PASSWORD_FILE", pw_path.as_str()),
        ("BACKUP_TARGET", target.as_str()),
        ("AWS_ACCESS_KEY_ID", &env_var("MTN_TEST_S3_ACCESS_KEY")),
        ("AWS_SECRET_ACCESS_KEY", &env_var("MTN_TEST_S3_SECRET_KEY")),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", &env_var("MTN_TEST_S3_ENDPOINT")),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, *v)).collect();
    let r = run_in(d.path(), "nightly.rhai", &[], &env);
    r.expect_code(0);
    assert!(r.stderr.contains("uploaded to s3://"), "{}", r.stderr);
    assert!(r.stderr.contains("restore test ok"), "{}", r.stderr);
    let password = env_var("MTN_TEST_PG_PASSWORD");
    assert!(!r.all().contains(&password), "password leaked");
    // The remote copy is there and is the same file.
    let listing = run_script_env(d.path(), "ls.rhai", &format!("let l = list_remote(\"{target}\", #{{ checksums: true }}); for o in l {{ print(`${{o.key}} ${{o.size}} ${{o.sha256}}`); }}"), &[], &env);
    listing.expect_code(0);
    let local = backups_in(d.path());
    assert_eq!(local.len(), 1);
    let (_, sha) = (
        0,
        sh(
            &format!("sha256sum {} | cut -d' ' -f1", local[0].display()),
            d.path(),
        ),
    );
    assert!(
        listing.stdout.contains(&sha),
        "remote copy differs:\n{}",
        listing.stdout
    );
    // Weekly DB maintenance on the same database.
    let r = run_in(d.path(), "weekly_db.rhai", &[], &env);
    r.expect_code(0);
    assert!(r.stderr.contains("vacuum:"), "{}", r.stderr);
    psql(&pg, &format!("DROP DATABASE {db}"));
}

/// ```rhai blocks of a Markdown file.
fn rhai_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```rhai") => cur = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => out.push(cur.take().unwrap_or_default()),
            (Some(c), _) => {
                c.push_str(line);
                c.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Functions whose examples need a network peer (a web server, a bucket, a mail server) that
/// only exists in the capability's own tests; their examples are compiled and checked here.
const NEEDS_PEER: &[&str] = &[
    "http_",
    "tls_expiry",
    "tcp_check",
    "resolve(",
    "notify(",
    "ping(",
    "upload(",
    "download(",
    "list_remote(",
    "delete_remote(",
    "retention(\"s3",
    // restic's examples need restic and a repository password.
    "snapshot_dir(",
    "restore_snapshot(",
    "mongo",
    "exec(",
    // The Docker engine and Redis examples name containers and servers of the reader's own.
    "container",
    "redis",
    "postgres://",
    "mysql://",
    "s3://",
    "https://",
    "/var/",
    "/etc/",
    "/mnt/",
    "smtp",
    "\"/backups",
    "\"/srv",
];

/// A fresh sandbox with the files the docs' examples name: the example database, a dump of it,
/// a plain and a gzipped "dump.sql", an uploads folder, a log, mtn.toml, recent dated backups.
fn example_sandbox() -> tempfile::TempDir {
    let d = sandbox();
    let p = d.path();
    for dir in ["backups", "logs", "uploads/img"] {
        std::fs::create_dir_all(p.join(dir)).unwrap();
    }
    std::fs::write(p.join("logs/app.log"), "x\n").unwrap();
    std::fs::write(p.join("uploads/img/a.png"), "png").unwrap();
    std::fs::write(p.join("dump.sql"), "CREATE TABLE t (x int);\n").unwrap();
    std::fs::copy(repo().join("mtn.toml"), p.join("mtn.toml")).unwrap();
    sh(
        "gzip -c dump.sql > dump.sql.gz && gzip -c examples/app.db > backups/app.db.gz",
        p,
    );
    sh("for h in 1 30 60; do n=$(date -u -d \"-$h hours\" +%Y-%m-%d_%H%M%S); echo x | gzip > backups/db_$n.sql.gz; done", p);
    d
}

#[test]
fn procedures_every_docs_example_compiles_and_the_local_ones_run() {
    let mut checked = 0;
    let mut ran = 0;
    let mut failures = Vec::new();
    for e in std::fs::read_dir(repo().join("docs")).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, block) in rhai_blocks(&text).into_iter().enumerate() {
            let d = example_sandbox();
            let name = format!("{}_{i}.rhai", path.file_stem().unwrap().to_string_lossy());
            std::fs::write(d.path().join(&name), &block).unwrap();
            // compress() and decompress() refuse to overwrite: give each only its input.
            let _ = std::fs::remove_file(d.path().join(if block.contains("decompress(") {
                "dump.sql"
            } else {
                "dump.sql.gz"
            }));
            let c = Run::from(
                mtn()
                    .current_dir(d.path())
                    .args(["check", "-q", &name])
                    .output()
                    .unwrap(),
            );
            checked += 1;
            if c.code != 0 {
                failures.push(format!(
                    "{} example {i} does not compile:\n{block}\n{}",
                    path.display(),
                    c.stderr
                ));
                continue;
            }
            if NEEDS_PEER.iter().any(|n| block.contains(n)) || block.contains("import ") {
                continue;
            }
            let r = Run::from(
                mtn()
                    .current_dir(d.path())
                    .env("SLACK_TOKEN", "xoxb-example")
                    .args(["run", &name])
                    .output()
                    .unwrap(),
            );
            ran += 1;
            if r.code != 0 && r.code != 3 {
                failures.push(format!(
                    "{} example {i} failed:\n{block}\n{}",
                    path.display(),
                    r.stderr
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} examples broken:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
    assert!(checked > 100 && ran > 40, "checked {checked}, ran {ran}");
}

#[test]
fn procedures_mtn_toml_schedules_every_procedure() {
    let r = Run::from(
        mtn()
            .current_dir(repo())
            .args(["jobs", "--config", "mtn.toml", "--json"])
            .output()
            .unwrap(),
    );
    r.expect_code(0);
    let text = std::fs::read_to_string(repo().join("mtn.toml")).unwrap();
    for s in [
        "nightly",
        "weekly_db",
        "monthly_restore_drill",
        "cleanup",
        "health",
        "security_audit",
        "mongo_maintenance",
        "logs",
    ] {
        assert!(
            text.contains(&format!("scripts/{s}.rhai")),
            "{s} not scheduled"
        );
        assert!(
            repo().join(format!("scripts/{s}.rhai")).exists(),
            "{s} missing"
        );
    }
    assert!(text.contains("schedule = \"0 2 * * *\""), "nightly at 2 AM");
    assert!(r.stdout.contains("nightly"), "{}", r.stdout);
}

#[test]
fn procedures_weekly_db_reads_its_settings_from_set_and_env() {
    let d = sandbox();
    std::fs::copy(d.path().join("examples/app.db"), d.path().join("other.db")).unwrap();
    let r = run_in(
        d.path(),
        "weekly_db.rhai",
        &[
            "--set",
            "database_url=sqlite://other.db",
            "--set",
            "dead_tuples_warn=5",
        ],
        &[],
    );
    r.expect_code(0);
    assert!(
        r.stderr.contains("other.db"),
        "--set reaches the script: {}",
        r.stderr
    );
    let r = run_in(
        d.path(),
        "weekly_db.rhai",
        &[],
        &[("DATABASE_URL", "sqlite://other.db")],
    );
    r.expect_code(0);
    assert!(
        r.stderr.contains("other.db"),
        "so does the environment: {}",
        r.stderr
    );
    let r = run_in(
        d.path(),
        "weekly_db.rhai",
        &["--set", "dead_tuples_warn=many"],
        &[],
    );
    assert_eq!(r.code, 1, "a setting of the wrong type is an error: {r:?}");
    assert!(r.stderr.contains("dead_tuples_warn"), "{}", r.stderr);
}
