//! Tests for the files capability: real files in temp dirs, compared against the real
//! logrotate, rsync, gzip and df from Debian (installed by tests/env/10-files.sh).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::support::*;

/// Every entry under `root`: relative path → (kind, mode, mtime for files/dirs/links, content or
/// link target). gzip files are decompressed so member layout does not matter.
fn snapshot(root: &Path, with_times: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let t = if with_times {
                format!(" mtime={}.{}", md.mtime(), md.mtime_nsec())
            } else {
                String::new()
            };
            let desc = if md.file_type().is_symlink() {
                format!("link -> {}{t}", fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}{t}", md.mode() & 0o7777)
            } else {
                format!(
                    "file {:o} uid={}{t} {}",
                    md.mode() & 0o7777,
                    md.uid(),
                    content(&p)
                )
            };
            out.insert(rel, desc);
        }
    }
    out
}

/// Assert two snapshots are equal, showing only the entries that differ.
#[track_caller]
fn assert_same(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, what: &str) {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}:\n  left:  {:?}\n  right: {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: {} entries differ\n{}",
        diff.len(),
        diff.join("\n")
    );
}

fn content(p: &Path) -> String {
    let raw = fs::read(p).unwrap();
    if p.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        match flate2::read::MultiGzDecoder::new(&raw[..]).read_to_string(&mut s) {
            Ok(_) => format!("gz:{s:?}"),
            Err(_) => format!("{:?}", String::from_utf8_lossy(&raw)),
        }
    } else {
        format!("{:?}", String::from_utf8_lossy(&raw))
    }
}

fn set_mtime(p: &Path, ago: Duration) {
    let t = filetime::FileTime::from_system_time(SystemTime::now() - ago);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

const DAY: Duration = Duration::from_secs(86400);

fn write(p: &Path, text: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, text).unwrap();
}

fn q(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

// ---------------------------------------------------------------- rotate vs logrotate

/// One logrotate stanza and the equivalent rotate() options, line for line.
struct Case {
    file: &'static str,
    logrotate: &'static str,
    mtn: &'static str,
}

const CASES: &[Case] = &[
    Case {
        file: "a.log",
        logrotate: "rotate 3\ncompress\ndelaycompress",
        mtn: "keep: 3, compress: true, delaycompress: true",
    },
    Case {
        file: "b.log",
        logrotate: "rotate 2\ncompress",
        mtn: "keep: 2, compress: true",
    },
    Case {
        file: "c.log",
        logrotate: "",
        mtn: "",
    },
    Case {
        file: "d.log",
        logrotate: "rotate 2\ndateext\ncompress",
        mtn: "keep: 2, dateext: true, compress: true",
    },
    Case {
        file: "e.log",
        logrotate: "rotate 2\nnotifempty\ncreate 0640",
        mtn: "keep: 2, notifempty: true, create: \"0640\"",
    },
    Case {
        file: "f.log",
        logrotate: "rotate 2\ncopytruncate",
        mtn: "keep: 2, copytruncate: true",
    },
    Case {
        file: "g.log",
        logrotate: "rotate 1\ncreate\nsize 1M",
        mtn: "keep: 1, create: true, size: \"1M\"",
    },
    Case {
        file: "h.log",
        logrotate: "missingok\nrotate 2",
        mtn: "missingok: true, keep: 2",
    },
    Case {
        file: "sub/*.log",
        logrotate: "rotate 2\ncompress\nmissingok",
        mtn: "keep: 2, compress: true, missingok: true",
    },
];

/// Append a line to every log of the tree, as an application would between rotations.
fn grow(root: &Path, round: usize) {
    for f in [
        "a.log",
        "b.log",
        "c.log",
        "d.log",
        "f.log",
        "g.log",
        "sub/x.log",
        "sub/y.log",
    ] {
        let p = root.join(f);
        let mut text = fs::read_to_string(&p).unwrap_or_default();
        text.push_str(&format!("{f} line {round}\n"));
        write(&p, &text);
    }
    // e.log stays empty in odd rounds, to exercise notifempty.
    let e = root.join("e.log");
    let mut text = fs::read_to_string(&e).unwrap_or_default();
    if round.is_multiple_of(2) {
        text.push_str(&format!("e line {round}\n"));
    }
    write(&e, &text);
}

#[test]
fn rotate_names_counts_and_contents_match_logrotate() {
    let logrotate = env_var("MTN_TEST_LOGROTATE");
    let dir = tempdir();
    let lr = dir.path().join("lr");
    let mt = dir.path().join("mt");
    for d in [&lr, &mt] {
        fs::create_dir_all(d.join("sub")).unwrap();
    }
    let mut conf = String::new();
    for c in CASES {
        conf.push_str(&format!(
            "{} {{\n{}\n}}\n",
            lr.join(c.file).display(),
            c.logrotate
        ));
    }
    fs::write(dir.path().join("lr.conf"), &conf).unwrap();
    let mut script = String::new();
    for c in CASES {
        // logrotate -f ignores size; force: true is rotate()'s -f. logrotate carries on after a
        // failing log (dateext twice a day), so the script catches errors per call.
        script.push_str(&format!(
            "try {{ rotate({}, #{{ force: true, {} }}); }} catch (e) {{ print(`ERR ${{e.message}}`); }}\n",
            q(&mt.join(c.file)),
            c.mtn
        ));
    }
    for round in 0..5 {
        grow(&lr, round);
        grow(&mt, round);
        let out = Command::new(&logrotate)
            .args(["-f", "-s"])
            .arg(dir.path().join("state"))
            .arg(dir.path().join("lr.conf"))
            .output()
            .unwrap();
        // Round 0 rotates everything; later rounds fail only on dateext's "already exists".
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines() {
            assert!(line.contains("already exists"), "logrotate: {stderr}");
        }
        let run = run_script(dir.path(), "rot.rhai", &script, &[]);
        run.expect_code(0);
        assert_eq!(
            run.all().matches("ERR ").count(),
            stderr.matches("already exists").count(),
            "{}",
            run.all()
        );
        let a = snapshot(&lr, false);
        let b = snapshot(&mt, false);
        assert_same(&a, &b, &format!("after round {round}"));
    }
    // Sanity: the comparison covered what it claims.
    let names: Vec<String> = snapshot(&mt, false).into_keys().collect();
    for n in [
        "a.log.1",
        "a.log.3.gz",
        "b.log.2.gz",
        "f.log.2",
        "sub/x.log.2.gz",
        "e.log",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    assert!(names
        .iter()
        .any(|n| n.starts_with("d.log-") && n.ends_with(".gz")));
    assert!(!names.contains(&"c.log".to_string()));
}

#[test]
fn rotate_postrotate_runs_once_before_compression() {
    let dir = tempdir();
    for n in ["a", "b", "c"] {
        write(&dir.path().join(format!("logs/{n}.log")), "hello\n");
    }
    let script = r#"
        let seen = [];
        let r = rotate("./logs/*.log", #{ keep: 2, compress: true, postrotate: |rotated| {
            print(`POST ${rotated.len()} gz=${exists("./logs/a.log.1.gz")}`);
        }});
        print(`ROTATED ${r.rotated.len()} COMPRESSED ${r.compressed.len()} RAN ${r.postrotate_ran}`);
    "#;
    let run = run_script(dir.path(), "p.rhai", script, &[]);
    run.expect_code(0);
    let all = run.all();
    assert_eq!(all.matches("POST ").count(), 1, "{all}");
    assert!(all.contains("POST 3 gz=false"), "{all}");
    assert!(all.contains("ROTATED 3 COMPRESSED 3 RAN true"), "{all}");
    // Rotating again must not rotate the rotated files themselves.
    for n in ["a", "b", "c"] {
        write(&dir.path().join(format!("logs/{n}.log")), "again\n");
    }
    run_script(dir.path(), "p.rhai", script, &[]).expect_code(0);
    assert!(dir.path().join("logs/a.log.2.gz").exists());
    assert!(!dir.path().join("logs/a.log.1.gz.1").exists());
}

#[test]
fn rotate_unknown_option_is_named() {
    let dir = tempdir();
    write(&dir.path().join("a.log"), "x\n");
    let run = run_script(
        dir.path(),
        "u.rhai",
        r#"rotate("./a.log", #{ compres: true });"#,
        &[],
    );
    run.expect_code(1);
    assert!(
        run.all()
            .contains("unknown option `compres` (did you mean `compress`?)"),
        "{}",
        run.all()
    );
}

// ---------------------------------------------------------------- crash safety

fn big_log(path: &Path, mib: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(mib << 20);
    let mut i = 0u64;
    while data.len() < mib << 20 {
        data.extend_from_slice(
            format!(
                "{i:012} the quick brown fox jumps over the lazy dog {}\n",
                i * 7919 % 10007
            )
            .as_bytes(),
        );
        i += 1;
    }
    fs::write(path, &data).unwrap();
    data
}

/// Start `script`, wait until the temporary file of `out` appears, SIGKILL the process, return.
fn kill_during(dir: &Path, script: &str, out: &Path) {
    fs::write(dir.join("k.rhai"), script).unwrap();
    let mut child = mtn()
        .current_dir(dir)
        .args(["run", "k.rhai"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while temp_of(out).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary file of {} appeared",
            out.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "mtn finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// The bytes of every file except temporaries, decompressing .gz.
fn files_except_tmp(dir: &Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && !n.ends_with(".tmp")
        })
        .map(|p| {
            let raw = fs::read(&p).unwrap();
            let data = if p.extension().is_some_and(|e| e == "gz") {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            } else {
                raw
            };
            (p.file_name().unwrap().to_string_lossy().to_string(), data)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_during_rotate_compression_keeps_every_byte_in_one_file() {
    let dir = tempdir();
    let log = dir.path().join("app.log");
    let data = big_log(&log, 192);
    kill_during(
        dir.path(),
        r#"rotate("./app.log", #{ keep: 3, compress: true, compress_level: 9 });"#,
        &dir.path().join("app.log.1.gz"),
    );
    let files = files_except_tmp(dir.path(), "app.log");
    assert_eq!(
        files.len(),
        1,
        "every byte must be in exactly one file: {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(files[0].0, "app.log.1");
    assert!(
        files[0].1 == data,
        "app.log.1 differs from the original log"
    );
    // The next rotation cleans up the temporary and finishes the job.
    write(&log, "new\n");
    run_script(
        dir.path(),
        "r.rhai",
        r#"rotate("./app.log", #{ keep: 3, compress: true });"#,
        &[],
    )
    .expect_code(0);
    let files = files_except_tmp(dir.path(), "app.log");
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["app.log.1.gz", "app.log.2.gz"]);
    assert!(files[1].1 == data);
    assert!(temp_of(&dir.path().join("app.log.1.gz")).is_none());
}

#[test]
fn sigkill_during_compress_keeps_the_original() {
    let dir = tempdir();
    let path = dir.path().join("dump.sql");
    let data = big_log(&path, 192);
    kill_during(
        dir.path(),
        r#"compress("./dump.sql", #{ level: 9 });"#,
        &dir.path().join("dump.sql.gz"),
    );
    let files = files_except_tmp(dir.path(), "dump.sql");
    assert_eq!(
        files.len(),
        1,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(files[0].0, "dump.sql");
    assert!(files[0].1 == data);
}

#[test]
fn compress_output_is_read_by_gunzip_and_decompress_restores() {
    let dir = tempdir();
    let path = dir.path().join("data.txt");
    let data = big_log(&path, 5);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    set_mtime(&path, DAY);
    let mtime = fs::metadata(&path).unwrap().mtime();
    let run = run_script(
        dir.path(),
        "c.rhai",
        r#"let r = compress("./data.txt", #{ level: 6 }); print(`RATIO ${r.ratio} IN ${r.bytes_in}`);"#,
        &[],
    );
    run.expect_code(0);
    assert!(
        run.all().contains(&format!("IN {}", data.len())),
        "{}",
        run.all()
    );
    assert!(!path.exists());
    let gz = dir.path().join("data.txt.gz");
    let md = fs::metadata(&gz).unwrap();
    assert_eq!(md.mode() & 0o777, 0o640);
    assert_eq!(md.mtime(), mtime);
    let out = Command::new("gunzip").arg("-c").arg(&gz).output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == data, "gunzip output differs");
    run_script(dir.path(), "d.rhai", r#"decompress("./data.txt.gz");"#, &[]).expect_code(0);
    assert!(fs::read(&path).unwrap() == data);
    assert!(!gz.exists());
    // Refuses to overwrite and reports a corrupt input clearly.
    fs::write(dir.path().join("bad.gz"), b"not gzip at all").unwrap();
    let run = run_script(dir.path(), "b.rhai", r#"decompress("./bad.gz");"#, &[]);
    run.expect_code(1);
    assert!(run.all().contains("not valid gzip"), "{}", run.all());
    assert!(dir.path().join("bad.gz").exists() && !dir.path().join("bad").exists());
}

// ---------------------------------------------------------------- delete_older_than

/// backups/ with old and new files, a subdir, and symlinks pointing out of the root.
fn backup_tree(root: &Path, outside: &Path) {
    for (name, age) in [
        ("a.sql.gz", 40),
        ("b.sql.gz", 35),
        ("c.sql.gz", 31),
        ("d.sql.gz", 2),
        ("notes.txt", 90),
        ("sub/e.sql.gz", 60),
    ] {
        let p = root.join(name);
        write(&p, name);
        set_mtime(&p, DAY * age);
    }
    let victim = outside.join("precious.sql.gz");
    write(&victim, "outside");
    set_mtime(&victim, DAY * 400);
    std::os::unix::fs::symlink(outside, root.join("link-dir")).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("link.sql.gz")).unwrap();
    set_mtime(&root.join("link.sql.gz"), DAY * 400);
}

#[test]
fn delete_older_than_recursive_never_follows_symlinks_out_of_the_root() {
    let dir = tempdir();
    let outside = tempdir();
    let root = dir.path().join("backups");
    backup_tree(&root, outside.path());
    let run = run_script(
        dir.path(),
        "d.rhai",
        r#"let r = delete_older_than("./backups", "30d", #{ pattern: "*.sql.gz", recursive: true });
           print(`DELETED ${r.deleted.len()} KEPT ${r.kept.len()} BYTES ${r.bytes_freed}`);"#,
        &[],
    );
    run.expect_code(0);
    assert!(
        run.all().contains("DELETED 4 KEPT 1 BYTES 36"),
        "{}",
        run.all()
    );
    let left: Vec<String> = snapshot(&root, false).into_keys().collect();
    assert_eq!(
        left,
        ["d.sql.gz", "link-dir", "link.sql.gz", "notes.txt", "sub"]
    );
    assert!(outside.path().join("precious.sql.gz").exists());
}

#[test]
fn delete_older_than_keep_at_least_and_max_delete() {
    let dir = tempdir();
    let root = dir.path().join("b");
    for (i, age) in [40u32, 50, 60, 70].iter().enumerate() {
        let p = root.join(format!("{i}.dump"));
        write(&p, "x");
        set_mtime(&p, DAY * *age);
    }
    // max_delete: 2 while 3 would go → refused, nothing deleted.
    let run = run_script(
        dir.path(),
        "m.rhai",
        r#"delete_older_than("./b", "30d", #{ max_delete: 2 });"#,
        &[],
    );
    run.expect_code(1);
    assert!(
        run.all()
            .contains("more than max_delete = 2; nothing was deleted"),
        "{}",
        run.all()
    );
    assert_eq!(fs::read_dir(&root).unwrap().count(), 4);
    // Default keep_at_least 1: all are old, the newest survives.
    run_script(
        dir.path(),
        "k.rhai",
        r#"delete_older_than("./b", "30d");"#,
        &[],
    )
    .expect_code(0);
    let left: Vec<String> = snapshot(&root, false).into_keys().collect();
    assert_eq!(left, ["0.dump"]);
    // keep_at_least: 0 lets the last one go too.
    run_script(
        dir.path(),
        "z.rhai",
        r#"delete_older_than("./b", "30d", #{ keep_at_least: 0 });"#,
        &[],
    )
    .expect_code(0);
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn delete_older_than_age_is_exact_not_whole_days() {
    let dir = tempdir();
    let root = dir.path().join("b");
    let young = root.join("young");
    let old = root.join("old");
    write(&young, "x");
    write(&old, "x");
    write(&root.join("newest"), "x");
    set_mtime(&young, Duration::from_secs(90 * 60 - 120)); // 1h28m
    set_mtime(&old, Duration::from_secs(90 * 60 + 120)); // 1h32m
    run_script(
        dir.path(),
        "a.rhai",
        r#"delete_older_than("./b", "90m");"#,
        &[],
    )
    .expect_code(0);
    assert!(young.exists());
    assert!(!old.exists());
}

#[test]
fn delete_older_than_reports_undeletable_file_and_processes_the_rest() {
    // Tests run as root, for whom a chmod'ed directory denies nothing. An immutable directory
    // (chattr +i) denies unlink even to root, which gives a real EPERM from the kernel.
    let dir = tempdir();
    let root = dir.path().join("b");
    for name in ["locked/old1", "x/old2", "x/old3", "new"] {
        let p = root.join(name);
        write(&p, "data");
        set_mtime(&p, if name == "new" { DAY } else { DAY * 60 });
    }
    let locked = root.join("locked");
    let st = Command::new("chattr")
        .arg("+i")
        .arg(&locked)
        .status()
        .unwrap();
    assert!(st.success(), "chattr +i failed: the permission test needs an ext4-like file system and CAP_LINUX_IMMUTABLE");
    let run = run_script(
        dir.path(),
        "p.rhai",
        r#"try { delete_older_than("./b", "30d", #{ recursive: true }); print("NO ERROR"); }
           catch (e) { print(`KIND ${e.kind} MSG ${e.message}`); }"#,
        &[],
    );
    let _ = Command::new("chattr").arg("-i").arg(&locked).status();
    run.expect_code(0);
    let all = run.all();
    assert!(all.contains("KIND io"), "{all}");
    assert!(
        all.contains("1 file(s) could not be deleted (2 others deleted"),
        "{all}"
    );
    assert!(
        all.contains("locked/old1: Operation not permitted"),
        "{all}"
    );
    assert!(locked.join("old1").exists());
    assert!(!root.join("x/old2").exists() && !root.join("x/old3").exists());
    assert!(root.join("new").exists());
}

#[test]
fn delete_older_than_removes_empty_dirs_and_refuses_a_symlinked_root() {
    let dir = tempdir();
    let root = dir.path().join("b");
    for name in ["keep/new", "gone/deeper/old", "gone/old"] {
        let p = root.join(name);
        write(&p, "x");
        set_mtime(&p, if name.ends_with("new") { DAY } else { DAY * 40 });
    }
    run_script(
        dir.path(),
        "e.rhai",
        r#"let r = delete_older_than("./b", "30d", #{ recursive: true, remove_empty_dirs: true }); print(`DIRS ${r.removed_dirs.len()}`);"#,
        &[],
    )
    .expect_code(0);
    let left: Vec<String> = snapshot(&root, false).into_keys().collect();
    assert_eq!(left, ["keep", "keep/new"]);
    std::os::unix::fs::symlink(&root, dir.path().join("alias")).unwrap();
    let run = run_script(
        dir.path(),
        "s.rhai",
        r#"delete_older_than("./alias", "1d");"#,
        &[],
    );
    run.expect_code(1);
    assert!(
        run.all().contains("symlinks are never followed"),
        "{}",
        run.all()
    );
}

// ---------------------------------------------------------------- dry run

#[test]
fn dry_run_leaves_the_tree_byte_for_byte_unchanged() {
    let dir = tempdir();
    let outside = tempdir();
    let root = dir.path().join("t");
    backup_tree(&root.join("backups"), outside.path());
    write(&root.join("logs/app.log"), "line\n");
    write(&root.join("logs/app.log.1"), "older\n");
    write(&root.join("big.txt"), &"x".repeat(100_000));
    write(&root.join("old.txt.gz"), "");
    fs::remove_file(root.join("old.txt.gz")).unwrap();
    write(&root.join("src/a"), "a");
    write(&root.join("mirror/extra"), "e");
    let before = snapshot(&root, true);
    let script = r#"
        let r = [];
        r += delete_older_than("./t/backups", "1d", #{ recursive: true, keep_at_least: 0, remove_empty_dirs: true }).deleted.len();
        r += rotate("./t/logs/*.log", #{ keep: 3, compress: true, create: true }).compressed.len();
        r += compress("./t/big.txt").bytes_in;
        r += remove_file("./t/src/a").removed;
        r += write_file("./t/new.txt", "new").bytes;
        r += copy("./t/big.txt", "./t/copy.txt").bytes;
        r += sync_dir("./t/src", "./t/mirror", #{ delete: true }).deleted.len();
        r += sync_dir("./t/src", "./t/fresh").copied.len();
        print(`DRY ${r}`);
    "#;
    let run = run_script(dir.path(), "dry.rhai", script, &["--dry-run"]);
    run.expect_code(0);
    // rotate: the new app.log.1 and the shifted, plain app.log.2 would both be compressed, as
    // a real run does.
    assert!(
        run.all()
            .contains("DRY [6, 2, 100000, true, 3, 100000, 1, 1]"),
        "{}",
        run.all()
    );
    assert_same(&before, &snapshot(&root, true), "dry run");
}

// ---------------------------------------------------------------- sync_dir vs rsync -a

fn sync_tree(src: &Path) {
    for (name, mode, age) in [
        ("a.txt", 0o644, 3u32),
        ("secret.env", 0o600, 10),
        ("bin/run.sh", 0o755, 20),
        ("deep/er/x.bin", 0o640, 5),
        ("empty", 0o644, 1),
    ] {
        let p = src.join(name);
        write(&p, &format!("{name} {}", "y".repeat(age as usize * 100)));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(&p, DAY * age);
    }
    std::os::unix::fs::symlink("a.txt", src.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    // rsync compares symlink times to the second and skips fixing one created within the same
    // second as its source; old link times make the comparison meaningful.
    set_mtime(&src.join("rel-link"), DAY * 4);
    set_mtime(&src.join("dangling"), DAY * 6);
    fs::create_dir(src.join("emptydir")).unwrap();
    fs::set_permissions(src.join("deep"), fs::Permissions::from_mode(0o750)).unwrap();
    for d in ["deep/er", "deep", "bin", "emptydir", ""] {
        set_mtime(&src.join(d), DAY * 7);
    }
}

#[test]
fn sync_dir_matches_rsync_archive() {
    let rsync = env_var("MTN_TEST_RSYNC");
    let dir = tempdir();
    let src = dir.path().join("src");
    let (r, m) = (dir.path().join("r"), dir.path().join("m"));
    sync_tree(&src);
    let rs = |extra: &[&str]| {
        let st = Command::new(&rsync)
            .arg("-a")
            .args(extra)
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", r.display()))
            .status()
            .unwrap();
        assert!(st.success());
    };
    rs(&[]);
    let run = run_script(
        dir.path(),
        "s.rhai",
        r#"let x = sync_dir("./src", "./m"); print(`COPIED ${x.copied.len()}`);"#,
        &[],
    );
    run.expect_code(0);
    assert!(run.all().contains("COPIED 5"), "{}", run.all());
    assert_same(&snapshot(&r, true), &snapshot(&m, true), "first sync");
    assert_eq!(
        fs::metadata(&r).unwrap().mtime(),
        fs::metadata(&m).unwrap().mtime()
    );

    // Change the source: new, changed (same size, new mtime), removed, mode change, type change.
    write(&src.join("new/file"), "new");
    // See sync_tree: rsync does not fix times that match its own to the second.
    set_mtime(&src.join("new/file"), DAY);
    set_mtime(&src.join("new"), DAY);
    let a = src.join("a.txt");
    let len = fs::metadata(&a).unwrap().len() as usize;
    fs::write(&a, "z".repeat(len)).unwrap();
    fs::remove_file(src.join("empty")).unwrap();
    fs::set_permissions(src.join("secret.env"), fs::Permissions::from_mode(0o400)).unwrap();
    fs::remove_dir(src.join("emptydir")).unwrap();
    write(&src.join("emptydir"), "now a file");
    fs::write(r.join("stray"), "s").unwrap();
    fs::write(m.join("stray"), "s").unwrap();
    rs(&["--delete"]);
    let run = run_script(
        dir.path(),
        "s2.rhai",
        r#"let x = sync_dir("./src", "./m", #{ delete: true }); print(`COPIED ${x.copied} DELETED ${x.deleted}`);"#,
        &[],
    );
    run.expect_code(0);
    assert_same(&snapshot(&r, true), &snapshot(&m, true), &run.all());
    // Unchanged files were not copied again.
    assert!(!run.all().contains("bin/run.sh"), "{}", run.all());
}

// ---------------------------------------------------------------- policy

#[test]
fn policy_refuses_outside_roots_system_paths_and_home() {
    let dir = tempdir();
    let allowed = dir.path().join("allowed");
    let other = dir.path().join("other");
    write(&allowed.join("f"), "x");
    write(&other.join("f"), "x");
    std::os::unix::fs::symlink(&other, allowed.join("escape")).unwrap();
    let allow = allowed.display().to_string();
    let cases = [
        (r#"remove_file("./other/f")"#, "outside the allowed roots"),
        (
            r#"write_file("./allowed/escape/f", "x")"#,
            "outside the allowed roots",
        ),
        (
            r#"delete_older_than("/etc", "1d")"#,
            "system paths are always refused",
        ),
        (
            r#"write_file("/usr/local/x", "x")"#,
            "system paths are always refused",
        ),
        (
            r#"delete_older_than("/", "1d")"#,
            "the root directory is never a valid target",
        ),
        (
            r#"delete_older_than("/root", "1d")"#,
            "a home directory itself is never a valid target",
        ),
        (
            r#"delete_older_than("/home/someone", "1d")"#,
            "a home directory itself is never a valid target",
        ),
        (
            r#"sync_dir("./allowed", "/boot/x")"#,
            "system paths are always refused",
        ),
        (r#"compress("./other/f")"#, "outside the allowed roots"),
        (r#"rotate("./other/f")"#, "outside the allowed roots"),
    ];
    for (call, msg) in cases {
        // System paths are refused even when "/" itself is an allowed root.
        let mut args = vec!["--allow-path", allow.as_str()];
        if msg != "outside the allowed roots" {
            args.extend(["--allow-path", "/"]);
        }
        let run = run_script(
            dir.path(),
            "p.rhai",
            &format!("try {{ {call}; print(\"ALLOWED\"); }} catch (e) {{ print(`KIND ${{e.kind}} ${{e.message}}`); }}"),
            &args,
        );
        run.expect_code(0);
        let all = run.all();
        assert!(
            all.contains("KIND refused") && all.contains(msg),
            "{call}: {all}"
        );
    }
    assert!(other.join("f").exists());
    assert!(!other.join("escape").exists());
    // Removing the symlink itself is allowed (it lives in the root); its target stays.
    run_script(
        dir.path(),
        "l.rhai",
        r#"remove_file("./allowed/escape");"#,
        &["--allow-path", &allow],
    )
    .expect_code(0);
    assert!(!allowed.join("escape").exists() && other.join("f").exists());
}

// ---------------------------------------------------------------- small functions

#[test]
fn disk_usage_matches_df_and_audits_work() {
    let dir = tempdir();
    let out = Command::new("df")
        .args(["-B1", "--output=size,used,avail,pcent"])
        .arg(dir.path())
        .output()
        .unwrap();
    let df = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<&str> = df.lines().nth(1).unwrap().split_whitespace().collect();
    write(&dir.path().join("ww"), "x");
    fs::set_permissions(dir.path().join("ww"), fs::Permissions::from_mode(0o666)).unwrap();
    write(&dir.path().join(".env"), "A=1");
    fs::set_permissions(dir.path().join(".env"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::create_dir(dir.path().join("sticky")).unwrap();
    fs::set_permissions(
        dir.path().join("sticky"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    let script = r#"
        let d = disk_usage(".");
        print(`DF ${d.total} ${d.percent}%`);
        print(`WW ${find_world_writable(".").map(|p| p.sub_string(p.len() - 2))}`);
        print(`MODE ${file_mode("./.env")}`);
        let s = dir_size(".");
        print(`SIZE ${s.files}`);
        print(`LIST ${list(".", #{ pattern: "*w*", dirs: false }).map(|f| f.name)}`);
        print(`STAT ${stat("./ww").kind} ${stat("./ww").size}`);
    "#;
    let run = run_script(dir.path(), "du.rhai", script, &[]);
    run.expect_code(0);
    let all = run.all();
    assert!(
        all.contains(&format!("DF {} {}", nums[0], nums[3])),
        "df: {df}\n{all}"
    );
    assert!(all.contains(r#"WW ["ww"]"#), "{all}");
    assert!(all.contains("MODE 0640"), "{all}");
    assert!(all.contains("SIZE 3"), "{all}");
    assert!(all.contains(r#"LIST ["ww"]"#), "{all}");
    assert!(all.contains("STAT file 1"), "{all}");
}

#[test]
fn example_scripts_pass_check_and_run() {
    let scripts = [
        repo().join("scripts/logs.rhai"),
        repo().join("scripts/prune_backups.rhai"),
    ];
    let out = mtn().arg("check").args(&scripts).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Run them for real against a temp tree.
    let dir = tempdir();
    let logs = dir.path().join("logs");
    write(&logs.join("app.log"), "hello\n");
    write(&logs.join("old.log.3"), "old\n");
    set_mtime(&logs.join("old.log.3"), DAY * 10);
    let backups = dir.path().join("backups");
    for (n, age) in [("a.tar.gz", 40u32), ("b.tar.gz", 2)] {
        write(&backups.join(n), n);
        set_mtime(&backups.join(n), DAY * age);
    }
    let run = |s: &PathBuf, env: &[(&str, &str)]| {
        let mut c = mtn();
        c.current_dir(dir.path()).arg("run").arg(s);
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.output().unwrap())
    };
    run(&scripts[0], &[("LOG_DIR", logs.to_str().unwrap())]).expect_code(0);
    assert!(logs.join("app.log.1").exists() && logs.join("app.log").exists());
    assert!(logs.join("old.log.3.gz").exists());
    run(
        &scripts[1],
        &[
            ("BACKUP_DIR", backups.to_str().unwrap()),
            ("BACKUP_KEEP_AT_LEAST", "1"),
        ],
    )
    .expect_code(0);
    assert!(!backups.join("a.tar.gz").exists() && backups.join("b.tar.gz").exists());
}
