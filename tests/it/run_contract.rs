//! One truth per run (issue 12): monitoring signals follow the exit code, `mtn run` checks the
//! script before the first host call, `print` is stdout, mtn's names win over Rhai built-ins.
//!
//! The monitoring endpoint is a real HTTP peer: a tiny HTTP/1.1 listener in this process that
//! records every request (method, path, body) and answers 200.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    body: String,
}

/// A recording HTTP server on loopback, one per test.
struct Recorder {
    port: u16,
    reqs: Arc<Mutex<Vec<Req>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let r2 = reqs.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let reqs = r2.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = reader.read_exact(&mut body);
                    reqs.lock().unwrap().push(Req {
                        method,
                        path,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK",
                    );
                });
            }
        });
        Recorder { port, reqs }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Req> {
        self.reqs.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    /// Wait until `n` requests arrived (or fail listing what did).
    fn wait_for(&self, n: usize, secs: u64) -> Vec<Req> {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.requests();
            if r.len() >= n {
                return r;
            }
            assert!(Instant::now() < until, "expected {n} requests, got {r:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A folder with a copy of the example SQLite database, the way nightly.rhai backs it up.
fn with_example_db() -> tempfile::TempDir {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("examples")).unwrap();
    std::fs::copy(
        repo().join("examples/app.db"),
        dir.path().join("examples/app.db"),
    )
    .expect("copy example db");
    dir
}

const NIGHTLY_LIKE: &str = r#"
import "backup" as backup;
let r = backup::run(#{
    url: "sqlite://examples/app.db",
    dir: "./backups",
    ping: vars.hc,
    notify: vars.hook,
});
log(`backup done: ${r.dump.path}`);
if vars.restore_fails { fail("restore test of the dump failed: 0 rows in customers"); }
"#;

#[test]
fn run_contract_backup_then_failing_restore_pings_fail_and_notifies_once() {
    let rec = Recorder::start();
    let dir = with_example_db();
    let hc = rec.url("/hc/nightly");
    let hook = rec.url("/hook/ops");
    let r = run_script(
        dir.path(),
        "nightly.rhai",
        NIGHTLY_LIKE,
        &[
            "--set",
            &format!("hc={hc}"),
            "--set",
            &format!("hook={hook}"),
            "--set",
            "restore_fails=true",
        ],
    );
    r.expect_code(1);
    let reqs = rec.requests();
    let paths: Vec<&str> = reqs.iter().map(|q| q.path.as_str()).collect();
    // /start when backup::run names the check, /fail at the end of the RUN, never success.
    assert_eq!(
        paths,
        ["/hc/nightly/start", "/hc/nightly/fail", "/hook/ops"],
        "{reqs:#?}"
    );
    assert!(reqs.iter().all(|q| q.method == "POST"));
    let fail = &reqs[1].body;
    assert!(fail.contains("exit 1"), "{fail}");
    assert!(fail.contains("0 rows in customers"), "{fail}");
    assert!(
        fail.contains("nightly.rhai:10"),
        "points at the failing line: {fail}"
    );
    assert!(
        fail.contains("last log lines") && fail.contains("backup done"),
        "log tail in the body: {fail}"
    );
    assert!(
        reqs[2].body.contains("0 rows in customers"),
        "{}",
        reqs[2].body
    );

    // The same run without the failing step: /start then success, and no alert.
    let rec = Recorder::start();
    let r = run_script(
        dir.path(),
        "nightly.rhai",
        NIGHTLY_LIKE,
        &[
            "--set",
            &format!("hc={}", rec.url("/hc/ok")),
            "--set",
            &format!("hook={}", rec.url("/hook/ops")),
            "--set",
            "restore_fails=false",
        ],
    );
    r.expect_code(0);
    assert_eq!(rec.paths(), ["/hc/ok/start", "/hc/ok"]);
}

#[test]
fn run_contract_cli_ping_timeout_and_warnings() {
    let rec = Recorder::start();
    let dir = tempdir();
    // --timeout: exit 124 and /fail saying so.
    let r = run_script(
        dir.path(),
        "slow.rhai",
        "log(\"working\");\nsleep(20);\n",
        &[
            "--ping",
            &rec.url("/hc/slow"),
            "--notify",
            &rec.url("/hook/slow"),
            "--timeout",
            "1s",
        ],
    );
    r.expect_code(124);
    let reqs = rec.requests();
    let paths: Vec<&str> = reqs.iter().map(|q| q.path.as_str()).collect();
    assert_eq!(paths, ["/hc/slow/start", "/hc/slow/fail", "/hook/slow"]);
    assert!(reqs[1].body.contains("exit 124"), "{}", reqs[1].body);
    assert!(reqs[1].body.contains("timed out"), "{}", reqs[1].body);

    // Warnings: exit 0 is success; with --fail-on-warning (exit 3) it is a failure.
    let rec = Recorder::start();
    run_script(
        dir.path(),
        "warn.rhai",
        "warn(\"disk 85% full\");\n",
        &["--ping", &rec.url("/hc/w")],
    )
    .expect_code(0);
    assert_eq!(rec.paths(), ["/hc/w/start", "/hc/w"]);
    let rec = Recorder::start();
    run_script(
        dir.path(),
        "warn.rhai",
        "warn(\"disk 85% full\");\n",
        &["--ping", &rec.url("/hc/w3"), "--fail-on-warning"],
    )
    .expect_code(3);
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(reqs[1].path, "/hc/w3/fail");
    assert!(reqs[1].body.contains("disk 85% full"), "{}", reqs[1].body);
}

#[test]
fn run_contract_sigterm_pings_fail() {
    let rec = Recorder::start();
    let dir = tempdir();
    let script = dir.path().join("long.rhai");
    std::fs::write(&script, "log(\"long job\");\nsleep(60);\n").unwrap();
    let child = mtn()
        .current_dir(dir.path())
        .args(["run", "long.rhai", "--ping", &rec.url("/hc/term")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    rec.wait_for(1, 10);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = Run::from(child.wait_with_output().unwrap());
    out.expect_code(130);
    let reqs = rec.requests();
    assert_eq!(
        reqs.iter().map(|q| q.path.as_str()).collect::<Vec<_>>(),
        ["/hc/term/start", "/hc/term/fail"]
    );
    assert!(reqs[1].body.contains("exit 130"), "{}", reqs[1].body);
}

#[test]
fn run_contract_undeliverable_ping_is_a_warning_not_a_failure() {
    let dir = tempdir();
    let closed = free_port();
    let r = run_script(
        dir.path(),
        "ok.rhai",
        "log(\"fine\");\n",
        &["--ping", &format!("http://127.0.0.1:{closed}/hc/x")],
    );
    r.expect_code(0);
    assert!(
        r.stderr.contains("not delivered"),
        "warning logged: {}",
        r.stderr
    );
    // A ping URL that can never work is refused before the run.
    let r = run_script(
        dir.path(),
        "ok.rhai",
        "log(\"fine\");\n",
        &["--ping", "ftp://x"],
    );
    r.expect_code(2);
    assert!(r.stderr.contains("--ping"), "{}", r.stderr);
}

#[test]
fn run_contract_daemon_job_ping_and_notify() {
    let rec = Recorder::start();
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(
        dir.join("boom.rhai"),
        "log(\"about to fail\");\nfail(\"boom\");\n",
    )
    .unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("mtn.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \".mtn\"\n\
             [[job]]\nname = \"boom\"\nscript = \"boom.rhai\"\nschedule = \"*/1 * * * * *\"\noverlap = \"skip\"\n\
             ping = \"{}\"\nnotify = \"{}\"\n",
            rec.url("/hc/job"),
            rec.url("/hook/job")
        ),
    )
    .unwrap();
    let mut child = mtn()
        .current_dir(dir)
        .args(["daemon", "--config", "mtn.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let reqs = rec.wait_for(3, 15);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    assert_eq!(
        reqs[..3]
            .iter()
            .map(|q| q.path.as_str())
            .collect::<Vec<_>>(),
        ["/hc/job/start", "/hc/job/fail", "/hook/job"],
        "{reqs:#?}"
    );
    assert!(reqs[1].body.contains("job boom"), "{}", reqs[1].body);
    assert!(reqs[1].body.contains("boom.rhai:2"), "{}", reqs[1].body);
}

/// Write `text` as a script and run `mtn run` on it; the file `marker` proves whether any host
/// call ran.
fn run_with_marker(dir: &Path, text: &str) -> Run {
    let script = format!("write_file(\"marker.txt\", \"ran\");\n{text}");
    let _ = std::fs::remove_file(dir.join("marker.txt"));
    run_script(dir, "typo.rhai", &script, &[])
}

#[test]
fn run_contract_checks_before_the_first_host_call() {
    let dir = tempdir();
    let d = dir.path();
    // Unknown function at the end of the script: nothing runs, the hint names `notify`.
    let r = run_with_marker(d, "log(\"x\");\nnotfy(\"x\");\n");
    r.expect_code(1);
    assert!(
        r.stderr.contains("function `notfy` not found"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("`notify`"), "{}", r.stderr);
    assert!(r.stderr.contains("typo.rhai:3:1"), "{}", r.stderr);
    assert!(
        !d.join("marker.txt").exists(),
        "a host call ran before the check"
    );

    // Unknown key in a literal option map of a host function (keys from the serde struct).
    let r = run_with_marker(d, "dump_db(\"sqlite://x.db\", #{ too: \"./b/\" });\n");
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("dump_db: unknown option `too` (did you mean `to`?)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("allowed options:"), "{}", r.stderr);
    assert!(!d.join("marker.txt").exists());

    // Unknown key in a literal map passed to a stdlib module function.
    let r = run_with_marker(
        d,
        "import \"backup\" as backup;\nbackup::run(#{ dir: \"./b\", kep: #{ keep_last: 1 } });\n",
    );
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("backup::run: unknown option `kep` (did you mean `keep`?)"),
        "{}",
        r.stderr
    );
    assert!(!d.join("marker.txt").exists());

    // Unresolvable import.
    let r = run_with_marker(d, "import \"nosuchmodule\" as m;\n");
    r.expect_code(1);
    assert!(r.stderr.contains("nosuchmodule"), "{}", r.stderr);
    assert!(!d.join("marker.txt").exists());

    // A map built at run time is checked when the stdlib function runs.
    let r = run_script(
        d,
        "dyn.rhai",
        "import \"backup\" as backup;\nlet o = #{};\no.kep = 1;\nbackup::run(o);\n",
        &[],
    );
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("unknown option `kep` (did you mean `keep`?)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("allowed options: url, dir, target, keep"),
        "{}",
        r.stderr
    );
}

#[test]
fn run_contract_print_is_stdout_and_survives_quiet() {
    let dir = tempdir();
    let r = run_script_env(
        dir.path(),
        "report.rhai",
        "let pw = secret(\"REPORT_PW\");\nprint(`report line 1 ${pw}`);\nlog(\"to the log\");\n",
        &["-q"],
        &[("REPORT_PW", "hunter2-secret")],
    );
    r.expect_code(0);
    assert_eq!(r.stdout, "report line 1 ***\n");
    assert!(!r.stderr.contains("report line"), "{}", r.stderr);
}

/// `log` collides with Rhai's logarithm `log(FLOAT)` / `log(FLOAT, FLOAT)`; `sleep` with Rhai's
/// uncancellable `sleep(INT)` / `sleep(FLOAT)`. mtn's must win for every argument type.
#[test]
fn run_contract_mtn_wins_rhai_builtin_collisions() {
    let dir = tempdir();
    // log(FLOAT): logged, not a logarithm.
    let r = run_script(dir.path(), "l1.rhai", "log(1.5);\n", &[]);
    r.expect_code(0);
    assert!(r.stderr.contains("1.5"), "{}", r.stderr);
    let r = run_script(dir.path(), "l2.rhai", "log(duration(\"1h\"));\n", &[]);
    r.expect_code(0);
    assert!(r.stderr.contains("3600"), "{}", r.stderr);
    // log(INT) and log(STRING) keep working.
    let r = run_script(dir.path(), "l3.rhai", "log(42);\nlog(\"text\");\n", &[]);
    r.expect_code(0);
    assert!(
        r.stderr.contains("42") && r.stderr.contains("text"),
        "{}",
        r.stderr
    );
    // log(FLOAT, FLOAT): mtn's log(level, message), so a number as level is an error naming levels.
    let r = run_script(dir.path(), "l4.rhai", "log(100.0, 10.0);\n", &[]);
    r.expect_code(1);
    assert!(r.stderr.contains("unknown level"), "{}", r.stderr);
    // sleep(INT) / sleep(FLOAT): mtn's, so --timeout stops them at once.
    for (name, call) in [("s1.rhai", "sleep(30);\n"), ("s2.rhai", "sleep(30.0);\n")] {
        let t = Instant::now();
        let r = run_script(dir.path(), name, call, &["--timeout", "500ms"]);
        r.expect_code(124);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{name} was not cancellable"
        );
    }
}

#[test]
fn run_contract_fns_filters_and_ends_quietly_on_a_closed_pipe() {
    let out = mtn().args(["fns", "monitor"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("monitor(opts: Map)"), "{text}");
    assert!(!text.contains("dump_db("), "{text}");

    // `mtn fns | head -0`: the reader is gone before mtn writes; no panic message, no error.
    let mut child = mtn()
        .arg("fns")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "{err}");
}
