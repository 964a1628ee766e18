//! Messages an operator can act on (issue 12, item 4): every deleted file named, "would" in a dry
//! run, human sizes, colour only where wanted, progress only on a terminal.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

/// Files dated `days` ago (through touch(1), so the test does not need its own time code).
fn old_file(path: &Path, bytes: usize, days: u32) {
    std::fs::write(path, vec![b'x'; bytes]).unwrap();
    let ok = Command::new("touch")
        .arg("-d")
        .arg(format!("{days} days ago"))
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "touch {}", path.display());
}

#[test]
fn messages_deleting_functions_name_each_file_and_a_dry_run_says_would() {
    let dir = tempdir();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    old_file(&logs.join("a.log"), 1500, 40);
    old_file(&logs.join("b.log"), 2_500_000, 40);
    old_file(&logs.join("new.log"), 10, 1);
    let script = r#"let r = delete_older_than("./logs", "30d", #{ pattern: "*.log" });
print(r.deleted.len());"#;

    let dry = run_script(dir.path(), "d.rhai", script, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stderr.contains("would delete"), "{}", dry.stderr);
    assert!(
        dry.stderr.contains("logs/a.log (1.5 kB)"),
        "each file named with a human size: {}",
        dry.stderr
    );
    assert!(dry.stderr.contains("logs/b.log (2.5 MB)"), "{}", dry.stderr);
    assert!(!dry.stderr.contains("new.log"), "{}", dry.stderr);
    assert!(
        !dry.stderr.contains("INFO deleted"),
        "a dry run never says deleted: {}",
        dry.stderr
    );
    assert!(logs.join("a.log").exists());

    let real = run_script(dir.path(), "d.rhai", script, &[]);
    assert_eq!(real.code, 0, "{real:?}");
    assert_eq!(real.stdout.trim(), "2");
    for name in ["a.log", "b.log"] {
        let line = real
            .stderr
            .lines()
            .find(|l| l.contains(&format!("logs/{name}")))
            .unwrap_or_else(|| panic!("{name} not named: {}", real.stderr));
        assert!(line.contains("deleted"), "{line}");
        assert!(!line.contains("would"), "{line}");
        assert!(!logs.join(name).exists());
    }
    assert!(logs.join("new.log").exists());

    // remove_file and retention on a folder name what they delete too.
    old_file(&dir.path().join("lock"), 3, 0);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    for day in 1..=5 {
        old_file(&backups.join(format!("app-2026-01-0{day}.sql.gz")), 100, 0);
    }
    let r = run_script(
        dir.path(),
        "r.rhai",
        r#"remove_file("./lock");
retention("./backups/", #{ keep_last: 3 }, #{ pattern: "app-*.sql.gz" });"#,
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("deleted "), "{}", r.stderr);
    assert!(r.stderr.contains("lock (3 B)"), "{}", r.stderr);
    for day in 1..=2 {
        assert!(
            r.stderr
                .contains(&format!("deleted app-2026-01-0{day}.sql.gz from")),
            "{}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("app-2026-01-03"), "{}", r.stderr);
}

#[test]
fn messages_sizes_in_errors_are_human() {
    let dir = sandbox();
    let r = run_script(
        dir.path(),
        "s.rhai",
        r#"dump_db("sqlite://examples/app.db", #{ to: "./out/", min_size: "5GB" });"#,
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("under min_size 5.0 GB"), "{}", r.stderr);
    assert!(
        r.stderr.contains(" kB,") || r.stderr.contains(" MB,"),
        "the dump's size is human: {}",
        r.stderr
    );
}

/// Run a command under a pseudo-terminal (util-linux script(1)) and return what the terminal saw.
fn on_a_terminal(dir: &Path, cmd: &str, env: &[(&str, &str)]) -> String {
    let mut c = Command::new("script");
    c.current_dir(dir)
        .args(["-qec", cmd, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("MTN_STDLIB", repo().join("stdlib"))
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("script(1)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn messages_color_follows_the_flag_no_color_and_the_terminal() {
    let dir = tempdir();
    std::fs::write(dir.path().join("hi.rhai"), r#"log("hello");"#).unwrap();
    let mtn = mtn_path().display().to_string();

    let piped = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = crate::support::mtn();
        c.current_dir(dir.path()).env_remove("NO_COLOR").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(
        !piped(&["run", "hi.rhai"], &[]).contains('\x1b'),
        "no colour into a pipe"
    );
    assert!(piped(&["--color", "always", "run", "hi.rhai"], &[]).contains("\x1b["));
    assert!(
        piped(&["run", "hi.rhai", "--color=always"], &[("NO_COLOR", "1")]).contains("\x1b["),
        "an explicit --color always wins over NO_COLOR"
    );

    let tty = on_a_terminal(dir.path(), &format!("{mtn} run hi.rhai"), &[]);
    assert!(tty.contains("hello") && tty.contains("\x1b["), "{tty:?}");
    let tty = on_a_terminal(
        dir.path(),
        &format!("{mtn} run hi.rhai"),
        &[("NO_COLOR", "1")],
    );
    assert!(tty.contains("hello") && !tty.contains('\x1b'), "{tty:?}");
    let tty = on_a_terminal(dir.path(), &format!("{mtn} --color never run hi.rhai"), &[]);
    assert!(tty.contains("hello") && !tty.contains('\x1b'), "{tty:?}");
}

#[test]
fn messages_progress_shows_on_a_terminal_only() {
    let dir = tempdir();
    // Incompressible data, large enough for the bar's first ticks.
    let mut data = vec![0u8; 96 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let script = r#"compress("./big.bin", #{ keep: true }); log("compressed");"#;
    std::fs::write(dir.path().join("c.rhai"), script).unwrap();
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    let mtn = mtn_path().display().to_string();

    let tty = on_a_terminal(dir.path(), &format!("{mtn} run c.rhai"), &[]);
    assert!(tty.contains("compressed"), "{tty:?}");
    assert!(
        tty.contains("compressing big.bin") && tty.contains("MB"),
        "a terminal sees the transfer: {tty:?}"
    );

    std::fs::remove_file(dir.path().join("big.bin.gz")).unwrap();
    let quiet = on_a_terminal(dir.path(), &format!("{mtn} run -q c.rhai"), &[]);
    assert!(!quiet.contains("compressing big.bin"), "-q: {quiet:?}");

    std::fs::remove_file(dir.path().join("big.bin.gz")).unwrap();
    let piped = run_script(dir.path(), "c.rhai", script, &[]);
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(
        !piped.stderr.contains("compressing big.bin"),
        "no bar into a log file: {}",
        piped.stderr
    );
}

#[test]
fn messages_a_missing_database_is_said_once() {
    let dir = tempdir();
    for (url, engine) in [
        (env_var("MTN_TEST_PG_URL"), "postgres"),
        (env_var("MTN_TEST_MY_URL"), "mysql"),
    ] {
        let missing = url_with_db(&url, "no_such_db_here");
        let r = run_script(
            dir.path(),
            "q.rhai",
            &format!(r#"db_query("{missing}", "select 1");"#),
            &[],
        );
        assert_eq!(r.code, 1, "{engine}: {r:?}");
        let first = r.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
        assert!(first.contains("[not_found]"), "{engine}: {first}");
        assert_eq!(
            first.matches("no_such_db_here").count(),
            1,
            "{engine}: the database is named once: {first}"
        );
    }
}

#[test]
fn messages_an_option_of_another_notify_channel_is_refused_not_ignored() {
    let dir = tempdir();
    let r = run_script(
        dir.path(),
        "n.rhai",
        r#"notify("http://127.0.0.1:9/hook", "disk full", #{ to: "ops@example.com" });"#,
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("option `to` does not apply to a webhook"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("[invalid_input]"), "{}", r.stderr);
    let r = run_script(
        dir.path(),
        "e.rhai",
        r#"notify("smtp://127.0.0.1:9?to=ops@example.com", "disk full", #{ format: "slack", priority: 5 });"#,
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("options `format`, `priority` do not apply to an email"),
        "{}",
        r.stderr
    );
}
