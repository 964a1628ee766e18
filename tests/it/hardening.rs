//! Hardening (issue 19): mtn runs as root over folders other users can write. Each test here
//! plays the hostile local user: the working folder belongs to `nobody`, symlinks planted in it
//! belong to `nobody` and point at a root-owned 0600 "victim" outside the allowed roots. The
//! tests run as root (tests/run.sh runs as root on these machines); they fail, never skip, when
//! they cannot set that up.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::support::*;

const NOBODY: u32 = 65534;
const VICTIM_TEXT: &str = "VICTIM: must never change\n";

struct Attack {
    _tmp: tempfile::TempDir,
    /// The allowed root, owned by `nobody` (the attacker can write it).
    root: PathBuf,
    /// A root-owned 0600 file outside the allowed roots.
    victim: PathBuf,
}

impl Attack {
    fn new() -> Attack {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the hardening tests play root against a local user: run them as root"
        );
        let tmp = tempdir();
        let root = tmp.path().join("work");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::chown(&root, Some(NOBODY), Some(NOBODY)).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let victim = outside.join("victim");
        fs::write(&victim, VICTIM_TEXT).unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        Attack {
            _tmp: tmp,
            root,
            victim,
        }
    }

    /// Plant `root/name` as a symlink (owned by nobody) to the victim.
    fn plant(&self, name: &str) {
        let p = self.root.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        std::os::unix::fs::symlink(&self.victim, &p).unwrap();
        std::os::unix::fs::lchown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    }

    fn run(&self, script: &str) -> Run {
        run_script(
            &self.root,
            "attack.rhai",
            script,
            &["--allow-path", &self.root.display().to_string()],
        )
    }

    #[track_caller]
    fn assert_victim_intact(&self, what: &str) {
        let md = fs::symlink_metadata(&self.victim).unwrap();
        assert_eq!(
            fs::read_to_string(&self.victim).unwrap(),
            VICTIM_TEXT,
            "{what}: the victim's content was overwritten"
        );
        assert_eq!(md.uid(), 0, "{what}: the victim was chowned");
        assert_eq!(md.mode() & 0o7777, 0o600, "{what}: the victim was chmod-ed");
        assert!(md.is_file(), "{what}: the victim was replaced");
    }
}

fn is_regular(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.is_file())
        .unwrap_or(false)
}

#[test]
fn planted_symlinks_never_redirect_a_write() {
    let a = Attack::new();
    let r = &a.root;
    fs::write(r.join("src.txt"), "source data\n").unwrap();
    fs::write(r.join("app.log"), "log line\n".repeat(1000)).unwrap();
    fs::write(r.join("rot.log"), "rotate me\n".repeat(100)).unwrap();
    {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(
            fs::File::create(r.join("d.txt.gz")).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(b"decompressed\n").unwrap();
        gz.finish().unwrap();
    }
    let db = r.join("app.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (1,'x'),(2,'y');")
            .unwrap();
    }
    fs::create_dir(r.join("tree")).unwrap();
    fs::write(r.join("tree/f.txt"), "tree file\n").unwrap();
    // The names earlier versions wrote through: `<final>.tmp` next to every output, and a
    // symlink at the final name itself.
    for name in [
        "out.txt.tmp",
        "out.txt",
        "copy.txt.tmp",
        "app.log.gz.tmp",
        "d.txt.tmp",
        "dumps/app.db.gz.tmp",
        "dumps/app.db.gz.sha256.tmp",
        "t.csv.tmp",
        "rot.log.1.gz.tmp",
        "dl.txt.tmp",
    ] {
        a.plant(name);
    }
    let store = r.join("store");
    let run = a.run(&format!(
        r#"
write_file("out.txt", "written");
copy("src.txt", "copy.txt");
compress("app.log");
decompress("d.txt.gz");
dump_db("sqlite://app.db", #{{ to: "dumps/app.db.gz" }});
export_table("sqlite://app.db", "t", "t.csv");
rotate("rot.log", #{{ keep: 3, compress: true }});
upload("src.txt", "file://{store}/");
download("file://{store}/src.txt", "dl.txt");
sync_dir("tree", "mirror");
"#,
        store = store.display()
    ));
    run.expect_code(0);
    a.assert_victim_intact("writers with planted links");
    for out in [
        "out.txt",
        "copy.txt",
        "app.log.gz",
        "d.txt",
        "dumps/app.db.gz",
        "dumps/app.db.gz.sha256",
        "t.csv",
        "rot.log.1.gz",
        "dl.txt",
        "mirror/f.txt",
    ] {
        assert!(is_regular(&r.join(out)), "{out} is not a regular file");
    }
    assert_eq!(fs::read_to_string(r.join("out.txt")).unwrap(), "written");
    assert_eq!(
        fs::read_to_string(r.join("dl.txt")).unwrap(),
        "source data\n"
    );
    // Data files are private: a dump of the database is never world-readable.
    let mode = fs::metadata(r.join("dumps/app.db.gz")).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "the dump is {mode:o}");
    // Nothing temporary is left behind.
    for e in fs::read_dir(r).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!n.contains(".mtn-"), "left behind: {n}");
    }
}

#[test]
fn compress_keeps_the_logs_owner_not_a_planted_links() {
    let a = Attack::new();
    let log = a.root.join("svc.log");
    fs::write(&log, "x\n".repeat(5000)).unwrap();
    std::os::unix::fs::chown(&log, Some(NOBODY), Some(NOBODY)).unwrap();
    a.plant("svc.log.gz.tmp");
    a.run(r#"compress("svc.log");"#).expect_code(0);
    a.assert_victim_intact("compress");
    let md = fs::symlink_metadata(a.root.join("svc.log.gz")).unwrap();
    assert!(md.is_file());
    assert_eq!(md.uid(), NOBODY, "gzip keeps the log's owner");
}

#[test]
fn a_symlinked_source_is_not_compressed() {
    let a = Attack::new();
    a.plant("evil.log");
    let run = a.run(r#"compress("evil.log");"#);
    run.expect_code(1);
    assert!(run.all().contains("symlink"), "{}", run.all());
    a.assert_victim_intact("compress of a link");
    assert!(!a.root.join("evil.log.gz").exists());
}

#[test]
fn rotate_dateformat_cannot_leave_the_folder() {
    let a = Attack::new();
    let log = a.root.join("app.log");
    fs::write(&log, "line\n").unwrap();
    let escape = a.victim.parent().unwrap().join("stolen");
    let run = a.run(&format!(
        r#"rotate("app.log", #{{ dateext: true, dateformat: "-x/../../{up}/stolen" }});"#,
        up = escape.parent().unwrap().display()
    ));
    run.expect_code(1);
    assert!(
        run.all().contains("path separator"),
        "the refusal names the reason: {}",
        run.all()
    );
    assert!(log.exists(), "the log stays in place");
    assert!(!escape.exists());
}

#[test]
fn sqlite_writes_outside_the_roots_are_refused() {
    let a = Attack::new();
    let outside = a.victim.parent().unwrap().to_path_buf();
    let foreign = outside.join("foreign.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE t(a)").unwrap();
    }
    let before = fs::read(&foreign).unwrap();
    let db = a.root.join("app.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1)")
            .unwrap();
    }
    let cases = [
        (
            format!(
                r#"db_exec("sqlite://{}", "INSERT INTO t VALUES (1)");"#,
                foreign.display()
            ),
            "outside the allowed roots",
        ),
        (
            format!(
                r#"db_exec("sqlite://app.db", "VACUUM INTO '{}/vac.db'");"#,
                outside.display()
            ),
            "not authorized",
        ),
        (
            format!(
                r#"db_query("sqlite://app.db", "VACUUM INTO '{}/vac2.db'");"#,
                outside.display()
            ),
            "not authorized",
        ),
        (
            format!(
                r#"db_exec("sqlite://app.db", "ATTACH '{}/att.db' AS x; CREATE TABLE x.t(a)");"#,
                outside.display()
            ),
            "not authorized",
        ),
        (
            format!(
                r#"db_exec("sqlite://app.db", "ATTACH 'file:{}/uri.db?mode=rwc' AS x");"#,
                outside.display()
            ),
            "not authorized",
        ),
    ];
    for (script, why) in &cases {
        let run = a.run(script);
        run.expect_code(1);
        assert!(run.all().contains(why), "{script}: {}", run.all());
    }
    assert_eq!(fs::read(&foreign).unwrap(), before);
    for n in ["vac.db", "vac2.db", "att.db", "uri.db"] {
        assert!(
            !outside.join(n).exists(),
            "{n} was written outside the roots"
        );
    }
    // Inside the roots the same statements work.
    a.run(r#"db_exec("sqlite://app.db", "VACUUM INTO 'copy.db'"); db_exec("sqlite://app.db", "ATTACH 'copy.db' AS x; CREATE TABLE x.u(a)");"#)
        .expect_code(0);
    let copy = rusqlite::Connection::open(a.root.join("copy.db")).unwrap();
    let n: i64 = copy
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('t','u')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2, "VACUUM INTO copied t and ATTACH created u");
    // A database that is a symlink is not opened for writing.
    a.plant("link.db");
    let run = a.run(r#"db_exec("sqlite://link.db", "CREATE TABLE z(a)");"#);
    run.expect_code(1);
    a.assert_victim_intact("sqlite through a link");
}

#[test]
fn exec_runs_the_allow_listed_file_whatever_path_the_script_passes() {
    let a = Attack::new();
    let bin = a.root.join("bin");
    fs::create_dir(&bin).unwrap();
    let marker = a.root.join("pwned");
    for name in ["true", "mtn-test-tool"] {
        let fake = bin.join(name);
        fs::write(&fake, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let script = format!(
        r#"let r = exec("true", [], #{{ env: #{{ PATH: "{}" }} }}); if !r.ok {{ throw "true failed"; }}"#,
        bin.display()
    );
    fs::write(a.root.join("x.rhai"), &script).unwrap();
    let out = mtn()
        .current_dir(&a.root)
        .args(["run", "x.rhai", "--allow-exec", "true"])
        .output()
        .unwrap();
    Run::from(out).expect_code(0);
    assert!(!marker.exists(), "a PATH in env chose another `true`");
    // A program only found in the script's PATH is not found at all.
    fs::write(
        a.root.join("y.rhai"),
        format!(
            r#"exec("mtn-test-tool", [], #{{ env: #{{ PATH: "{}" }} }});"#,
            bin.display()
        ),
    )
    .unwrap();
    let run = Run::from(
        mtn()
            .current_dir(&a.root)
            .args(["run", "y.rhai", "--allow-exec", "mtn-test-tool"])
            .output()
            .unwrap(),
    );
    run.expect_code(1);
    assert!(
        run.all().contains("not found in mtn's PATH"),
        "{}",
        run.all()
    );
    assert!(!marker.exists());
    // mtn's own PATH with a folder another user controls: its programs are skipped.
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o777)).unwrap();
    let run = Run::from(
        mtn()
            .current_dir(&a.root)
            .env("PATH", &path)
            .args(["run", "y.rhai", "--allow-exec", "mtn-test-tool"])
            .output()
            .unwrap(),
    );
    run.expect_code(1);
    assert!(
        !marker.exists(),
        "a program in a world-writable PATH folder ran"
    );
}

#[test]
fn a_slash_temp_dir_is_not_a_default_root() {
    let tmp = tempdir();
    let target = PathBuf::from("/mtn-hardening-test-should-not-exist");
    let run = run_script_env(
        tmp.path(),
        "t.rhai",
        &format!(r#"write_file("{}", "x");"#, target.display()),
        &[],
        &[("TMPDIR", "/")],
    );
    run.expect_code(1);
    assert!(!target.exists());
}

#[test]
fn time_overflow_is_an_invalid_input_error_not_a_panic() {
    let tmp = tempdir();
    for expr in [
        "now() - 9223372036854775807",
        "now() + 9223372036854775807",
        "now() - 1e300",
        "now() + (0.0 / 0.0)",
    ] {
        let run = run_script(
            tmp.path(),
            "t.rhai",
            &format!("let t = {expr};\ntry {{ let u = {expr}; }} catch (e) {{ if e.kind != \"invalid_input\" {{ throw `kind ${{e.kind}}`; }} }}\n"),
            &[],
        );
        run.expect_code(1);
        assert!(
            run.stderr.contains("outside the dates") && !run.stderr.contains("panic"),
            "{expr}: {}",
            run.stderr
        );
    }
}

/// Run `script` in `dir` with `--timeout 1s`; it must end with 124 within a few seconds.
#[track_caller]
fn times_out(dir: &Path, script: &str) -> Run {
    let started = std::time::Instant::now();
    let run = run_script(dir, "slow.rhai", script, &["--timeout", "1s"]);
    let took = started.elapsed();
    run.expect_code(124);
    assert!(
        took < std::time::Duration::from_secs(4),
        "{script}: took {took:?} after a 1 s timeout"
    );
    run
}

#[test]
fn a_timeout_reaches_long_host_calls() {
    let tmp = tempdir();
    let d = tmp.path();
    // compress: 4 × 61 MB at level 9 on one thread takes about 4 s on a fast machine (61 MB
    // took 1.06 s on round 7's, a race with the 1 s timeout); the test waits only for the timeout.
    let big = d.join("big.log");
    {
        use std::io::Write;
        let mut block = Vec::new();
        for i in 0..1_500_000u64 {
            writeln!(
                block,
                "{i:012} {} the quick brown fox {}",
                i * 7919 % 10007,
                i % 97
            )
            .unwrap();
        }
        let mut f = fs::File::create(&big).unwrap();
        for _ in 0..4 {
            f.write_all(&block).unwrap();
        }
    }
    let before = fs::metadata(&big).unwrap().len();
    times_out(d, r#"compress("big.log", #{ level: 9, threads: 1 });"#);
    assert_eq!(
        fs::metadata(&big).unwrap().len(),
        before,
        "the source is intact"
    );
    assert!(!d.join("big.log.gz").exists());
    assert!(
        temp_of(&d.join("big.log.gz")).is_none(),
        "no temporary left"
    );
    // copy from a FIFO that never ends.
    let fifo = d.join("endless");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut writer = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("yes > {}", fifo.display()))
        .spawn()
        .unwrap();
    times_out(d, r#"copy("endless", "copied");"#);
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(!d.join("copied").exists());
    // A recursive SQLite query that never ends.
    rusqlite::Connection::open(d.join("q.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t(a)")
        .unwrap();
    times_out(
        d,
        r#"db_query("sqlite://q.db", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c");"#,
    );
}

#[test]
fn compress_refuses_a_file_that_grows_while_it_is_read() {
    let tmp = tempdir();
    let d = tmp.path();
    let log = d.join("app.log");
    fs::write(&log, "x".repeat(16 << 20)).unwrap();
    // An appender that keeps writing while compress reads (level 9, one thread: slow enough).
    let mut appender = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while [ $i -lt 200000 ]; do echo line $i >> {}; i=$((i+1)); done",
            log.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let run = run_script(
        d,
        "c.rhai",
        r#"compress("app.log", #{ level: 9, threads: 1 });"#,
        &[],
    );
    let _ = appender.kill();
    let _ = appender.wait();
    run.expect_code(1);
    assert!(
        run.stderr.contains("changed while it was being compressed"),
        "{}",
        run.stderr
    );
    assert!(log.exists(), "the growing log is kept");
    assert!(!d.join("app.log.gz").exists());
}

#[test]
fn wrong_results_are_fixed() {
    let tmp = tempdir();
    let d = tmp.path();
    // A password with a percent sign is encoded, not decoded.
    let run = run_script(
        d,
        "p.rhai",
        r#"let u = with_password("postgres://app@127.0.0.1/app", "a%41");
           let parsed = u.split("@")[0];
           print(parsed);
           if !parsed.ends_with("a%2541") { throw `encoded as ${parsed}`; }"#,
        &[],
    );
    run.expect_code(0);
    // verify_backup does not call an empty or random .dump intact.
    fs::write(d.join("empty.dump"), "").unwrap();
    fs::write(d.join("random.dump"), "this is not a pg_dump archive").unwrap();
    fs::write(d.join("plain.sql"), "SELECT 1;\n").unwrap();
    let run = run_script(
        d,
        "v.rhai",
        r#"for f in ["empty.dump", "random.dump", "plain.sql"] {
               let v = verify_backup(f);
               if v.ok { throw `${f} called intact: ${v}`; }
               if v.error == "" { throw `${f}: no reason given`; }
           }"#,
        &[],
    );
    run.expect_code(0);
    // delete_older_than accepts seconds, as documented.
    fs::create_dir(d.join("old")).unwrap();
    let run = run_script(
        d,
        "a.rhai",
        r#"let r = delete_older_than("old", 86400); let s = delete_older_than("old", 3600, #{ keep_at_least: 0 });"#,
        &[],
    );
    run.expect_code(0);
    // --max-operations 0 is refused, not read as "unlimited".
    let run = run_script(d, "m.rhai", "let x = 1;", &["--max-operations", "0"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("max-operations"), "{}", run.stderr);
}

#[test]
fn a_full_disk_during_a_sqlite_dump_is_an_io_error_and_leaves_nothing() {
    let tmp = tempdir();
    let d = tmp.path();
    let small = d.join("small");
    let _disk = SmallDisk::mount(&small, "256k");
    {
        let c = rusqlite::Connection::open(d.join("big.db")).unwrap();
        c.execute_batch(
            "CREATE TABLE t(a); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 20000) INSERT INTO t SELECT hex(randomblob(64)) FROM c;",
        )
        .unwrap();
    }
    let run = run_script(
        d,
        "f.rhai",
        r#"dump_db("sqlite://big.db", #{ to: "small/" });"#,
        &[],
    );
    run.expect_code(1);
    assert!(run.stderr.contains("[io]"), "{}", run.stderr);
    let left: Vec<_> = fs::read_dir(&small).unwrap().collect();
    assert!(left.is_empty(), "left on the full disk: {left:?}");
}

#[test]
fn a_script_that_hoards_memory_stops_with_a_clear_error() {
    let tmp = tempdir();
    let d = tmp.path();
    fs::write(d.join("mtn.toml"), "[limits]\nmax_memory = 268435456\n").unwrap();
    let started = std::time::Instant::now();
    let run = run_script(
        d,
        "hoard.rhai",
        r#"let s = "x"; while s.len() < 8000000 { s += s; }
           let m = #{};
           for i in 0..1000 { m[`k${i}`] = s + i; }"#,
        &["--config", "mtn.toml"],
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("over its limit of 256 MiB"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn an_oversized_script_is_refused_before_compiling() {
    let tmp = tempdir();
    let d = tmp.path();
    let text = "let a = 1;\n".repeat(200_000);
    let started = std::time::Instant::now();
    let run = run_script(d, "huge.rhai", &text, &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("limited to 1024 KiB"), "{}", run.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn data_files_are_private_whatever_the_umask() {
    let tmp = tempdir();
    let d = tmp.path();
    {
        let c = rusqlite::Connection::open(d.join("app.db")).unwrap();
        c.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1), (2);")
            .unwrap();
    }
    fs::write(
        d.join("p.rhai"),
        r#"let r = dump_db("sqlite://app.db", #{ to: "dumps/nightly/" });
           export_table("sqlite://app.db", "t", "exports/t.csv");
           write_file("exports/note.txt", "x");
           print(r.path);"#,
    )
    .unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec {} run p.rhai",
            mtn_path().display()
        ))
        .current_dir(d)
        .env("MTN_STDLIB", repo().join("stdlib"))
        .output()
        .unwrap();
    let run = Run::from(out);
    run.expect_code(0);
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
    let dump = PathBuf::from(run.stdout.trim());
    assert_eq!(mode(&dump), 0o600, "dump");
    assert_eq!(
        mode(&PathBuf::from(format!("{}.sha256", dump.display()))),
        0o600,
        "sidecar"
    );
    assert_eq!(mode(&d.join("dumps")), 0o700, "dump folder");
    assert_eq!(mode(&d.join("dumps/nightly")), 0o700, "dump folder");
    assert_eq!(mode(&d.join("exports/t.csv")), 0o600, "export");
    assert_eq!(mode(&d.join("exports/note.txt")), 0o600, "written file");
}
