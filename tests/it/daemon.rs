//! Tests for the daemon: the real `mtn daemon` process, real files edited under it, real
//! signals, its real HTTP endpoints, Prometheus' `promtool` and headless Chromium. Each test
//! uses its own temp dir and port, so they run in parallel.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{history, http, http_with, Daemon};
use crate::support::{env_var, free_port, mtn, tempdir};

fn time_of(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("time string")).expect("rfc3339")
}

fn log_has(entry: &Value, text: &str) -> bool {
    entry["log_tail"].as_array().is_some_and(|l| {
        l.iter()
            .any(|x| x.as_str().is_some_and(|s| s.contains(text)))
    })
}

#[test]
fn daemon_reloads_edited_scripts_and_keeps_old_version_on_error() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(
        dir.join("job.rhai"),
        "import \"lib\" as lib;\nlog(`code v1 ${lib::tag()}`);\n",
    )
    .unwrap();
    std::fs::write(dir.join("lib.rhai"), "fn tag() { \"lib1\" }\n").unwrap();
    let d = Daemon::start(
        dir,
        "[[job]]\nname = \"tick\"\nscript = \"job.rhai\"\nschedule = \"* * * * * *\"\n",
    );
    d.wait_history("tick", 3.0, "a first run", |h| {
        h.iter().any(|e| log_has(e, "code v1 lib1"))
    });

    // Runs that start more than 1 s after a change must use the new code.
    let check_switch = |marker: &str, changed_at: chrono::DateTime<chrono::Local>| {
        let h = d.wait_history("tick", 4.0, marker, |h| {
            h.iter().any(|e| {
                log_has(e, marker)
                    && time_of(&e["start"]) <= changed_at + chrono::Duration::milliseconds(1100)
            })
        });
        for e in &h {
            if time_of(&e["start"]) > changed_at + chrono::Duration::milliseconds(1000) {
                assert!(
                    log_has(e, marker),
                    "run after the edit used old code: {e:#}\n{}",
                    d.log()
                );
            }
        }
    };

    // 1. Edit in place.
    let t = chrono::Local::now();
    std::fs::write(
        dir.join("job.rhai"),
        "import \"lib\" as lib;\nlog(`code v2 ${lib::tag()}`);\n",
    )
    .unwrap();
    check_switch("code v2 lib1", t);

    // 2. Editor style: write a temporary file, rename it over the script.
    let t = chrono::Local::now();
    std::fs::write(
        dir.join(".job.rhai.swp"),
        "import \"lib\" as lib;\nlog(`code v3 ${lib::tag()}`);\n",
    )
    .unwrap();
    std::fs::rename(dir.join(".job.rhai.swp"), dir.join("job.rhai")).unwrap();
    check_switch("code v3 lib1", t);

    // 3. A change to an imported module recompiles the script that imports it.
    let t = chrono::Local::now();
    std::fs::write(dir.join("lib.rhai"), "fn tag() { \"lib2\" }\n").unwrap();
    check_switch("code v3 lib2", t);

    // 4. A broken edit: the previous version keeps running, the error is reported with its location.
    let v3 = d.job_status("tick")["version"].clone();
    std::fs::write(
        dir.join("job.rhai"),
        "import \"lib\" as lib;\nlog(\"broken\" ;\n",
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    let js = loop {
        let js = d.job_status("tick");
        if !js["reload_error"].is_null() || Instant::now() > until {
            break js;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = js["reload_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no reload error: {js:#}"));
    assert!(
        err.contains("job.rhai:2:14"),
        "error lacks file:line:col: {err}"
    );
    assert_eq!(js["version"], v3, "version changed on a broken edit");
    let broke_at = chrono::Local::now();
    d.wait_history("tick", 3.0, "runs after the broken edit", |h| {
        h.iter().filter(|e| time_of(&e["start"]) > broke_at).count() >= 2
    })
    .iter()
    .filter(|e| time_of(&e["start"]) > broke_at)
    .for_each(|e| {
        assert!(
            e["status"] == "ok" && log_has(e, "code v3 lib2"),
            "old version did not keep running: {e:#}"
        )
    });
    let metrics = d.get("/metrics").1;
    assert!(
        metrics.contains("mtn_script_reload_errors_total{job=\"tick\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mtn_script_broken{job=\"tick\"} 1"),
        "{metrics}"
    );
    assert!(
        d.log().contains("job.rhai:2:14"),
        "error not logged with its location:\n{}",
        d.log()
    );

    // 5. Fixing it clears the error.
    let t = chrono::Local::now();
    std::fs::write(
        dir.join("job.rhai"),
        "import \"lib\" as lib;\nlog(`code v5 ${lib::tag()}`);\n",
    )
    .unwrap();
    check_switch("code v5 lib2", t);
    assert!(d.job_status("tick")["reload_error"].is_null());
}

#[test]
fn daemon_overlap_skip_and_queue() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("slow.rhai"), "sleep(vars.secs);\n").unwrap();
    let d = Daemon::start(
        dir,
        "[[job]]\nname = \"skipper\"\nscript = \"slow.rhai\"\nschedule = \"* * * * * *\"\noverlap = \"skip\"\nvars = { secs = 2.3 }\n\
         [[job]]\nname = \"queuer\"\nscript = \"slow.rhai\"\nschedule = \"* * * * * *\"\noverlap = \"queue\"\nvars = { secs = 1.4 }\n\
         [[job]]\nname = \"replacer\"\nscript = \"slow.rhai\"\nschedule = \"* * * * * *\"\noverlap = \"replace\"\nvars = { secs = 30 }\n",
    );
    let h = d.wait_history("skipper", 8.0, "two skip runs", |h| h.len() >= 2);
    let s0 = time_of(&h[0]["start"]);
    let s1 = time_of(&h[1]["start"]);
    assert!(
        (s1 - s0).num_milliseconds() >= 2300,
        "skip: runs overlapped: {h:#?}"
    );
    let e0 = time_of(&h[0]["end"]);
    assert!(s1 >= e0, "skip: second run started before the first ended");
    let metrics = d.get("/metrics").1;
    assert!(
        !metrics.contains("mtn_job_skipped_total{job=\"skipper\"} 0"),
        "no skip counted:\n{metrics}"
    );

    let h = d.wait_history("queuer", 8.0, "a queued run", |h| {
        h.iter().any(|e| e["trigger"] == "queued")
    });
    let i = h.iter().position(|e| e["trigger"] == "queued").unwrap();
    assert!(i > 0);
    let gap = time_of(&h[i]["start"]) - time_of(&h[i - 1]["end"]);
    assert!(
        (0..300).contains(&gap.num_milliseconds()),
        "queued run did not start right after the previous one ({gap:?}): {h:#?}"
    );
    for w in h.windows(2) {
        assert!(
            time_of(&w[1]["start"]) >= time_of(&w[0]["end"]),
            "queue: runs overlapped"
        );
    }
}

/// A real webhook receiver: records the body of each POST it gets.
fn webhook() -> (u16, std::sync::mpsc::Receiver<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let _ =
                            s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                        let _ = tx.send(body.to_string());
                        break;
                    }
                }
            }
        }
    });
    (port, rx)
}

#[test]
fn daemon_timeout_retries_trigger_and_on_failure() {
    let tmp = tempdir();
    let dir = tmp.path();
    let (hook, bodies) = webhook();
    std::fs::write(dir.join("hang.rhai"), "log(\"hanging\");\nsleep(30);\n").unwrap();
    std::fs::write(
        dir.join("boom.rhai"),
        "log(\"about to fail\");\nfail(\"boom\");\n",
    )
    .unwrap();
    let d = Daemon::start(
        dir,
        &format!(
            "[[job]]\nname = \"hang\"\nscript = \"hang.rhai\"\nschedule = \"*/2 * * * * *\"\ntimeout = \"700ms\"\n\
             [[job]]\nname = \"boom\"\nscript = \"boom.rhai\"\nschedule = \"0 0 1 1 *\"\nretries = 2\nretry_delay = \"200ms\"\non_failure = \"http://127.0.0.1:{hook}/hook\"\n"
        ),
    );
    let out = mtn()
        .current_dir(dir)
        .args(["trigger", "boom", "--config", "mtn.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trigger failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("started"));

    // Timeout: each run is cancelled after 700 ms and the next tick still runs.
    let h = d.wait_history("hang", 6.0, "two timed-out runs", |h| h.len() >= 2);
    for e in &h[..2] {
        assert_eq!(e["status"], "timeout", "{e:#}");
        let secs = (time_of(&e["end"]) - time_of(&e["start"])).num_milliseconds();
        assert!((600..1500).contains(&secs), "timeout took {secs} ms");
        assert!(log_has(e, "hanging"));
    }

    // Retries: three attempts with growing delays, then one webhook call.
    let h = d.wait_history("boom", 5.0, "three attempts", |h| h.len() >= 3);
    let attempts: Vec<i64> = h.iter().map(|e| e["attempt"].as_i64().unwrap()).collect();
    assert_eq!(attempts, vec![0, 1, 2]);
    assert_eq!(h[0]["trigger"], "manual");
    assert_eq!(h[1]["trigger"], "retry");
    assert!(h.iter().all(|e| e["status"] == "failed"));
    assert!(
        h[2]["error"].as_str().unwrap().contains("boom.rhai:2:1"),
        "{:#}",
        h[2]
    );
    let gap1 = (time_of(&h[1]["start"]) - time_of(&h[0]["end"])).num_milliseconds();
    let gap2 = (time_of(&h[2]["start"]) - time_of(&h[1]["end"])).num_milliseconds();
    assert!(
        (180..600).contains(&gap1) && (380..900).contains(&gap2),
        "backoff gaps {gap1} {gap2}"
    );
    let body = bodies
        .recv_timeout(Duration::from_secs(5))
        .expect("webhook called");
    let v: Value = serde_json::from_str(&body).expect("webhook body is JSON");
    assert_eq!(v["job"], "boom");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["attempt"], 2);
    assert!(
        bodies.recv_timeout(Duration::from_millis(300)).is_err(),
        "webhook called more than once"
    );

    // Unknown job: clear error, exit 1.
    let out = mtn()
        .current_dir(dir)
        .args(["trigger", "nope", "--config", "mtn.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job named \"nope\""));

    // The daemon survived all of it.
    assert_eq!(d.get("/healthz").0, 200);
    let out = mtn()
        .current_dir(dir)
        .args(["history", "boom", "--config", "mtn.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("failed").count(), 3, "{text}");
    let out = mtn()
        .current_dir(dir)
        .args(["jobs", "--config", "mtn.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hang") && text.contains("timeout") && text.contains("*/2 * * * * *"),
        "{text}"
    );
}

#[test]
fn daemon_catches_up_missed_runs_after_restart() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("job.rhai"), "log(\"ran\");\n").unwrap();
    // The daemon was down for two days: its last runs are from then.
    let old = (chrono::Local::now() - chrono::Duration::days(2)).to_rfc3339();
    std::fs::create_dir_all(dir.join(".mtn/history")).unwrap();
    for job in ["persistent", "plain"] {
        let line = format!("{{\"job\":\"{job}\",\"trigger\":\"schedule\",\"start\":\"{old}\",\"end\":\"{old}\",\"status\":\"ok\",\"attempt\":0}}\n");
        std::fs::write(dir.join(format!(".mtn/history/{job}.jsonl")), line).unwrap();
    }
    let config = "[[job]]\nname = \"persistent\"\nscript = \"job.rhai\"\nschedule = \"@daily\"\ncatch_up = true\n\
                  [[job]]\nname = \"plain\"\nscript = \"job.rhai\"\nschedule = \"@daily\"\n";
    let mut d = Daemon::start(dir, config);
    let h = d.wait_history("persistent", 3.0, "a catch-up run", |h| h.len() >= 2);
    assert_eq!(h[1]["trigger"], "catch_up");
    assert_eq!(h[1]["status"], "ok");
    assert_eq!(d.history("plain").len(), 1, "a job without catch_up ran");
    let (code, _) = d.terminate();
    assert_eq!(code, 0);

    // Restart: the missed run was made up for, so nothing runs again.
    let d = Daemon::spawn(dir, d.port);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        d.history("persistent").len(),
        2,
        "caught up twice:\n{}",
        d.log()
    );
    assert_eq!(
        d.job_status("persistent")["last"]["status"],
        "ok",
        "last result not restored from history"
    );
}

#[test]
fn daemon_sigterm_waits_for_runs_then_cancels() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(
        dir.join("short.rhai"),
        "sleep(0.8);\nlog(\"short done\");\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("long.rhai"),
        "log(\"long start\");\nsleep(60);\nlog(\"long done\");\n",
    )
    .unwrap();
    let mut d = Daemon::start(
        dir,
        "shutdown_grace = \"1500ms\"\n\
         [[job]]\nname = \"short\"\nscript = \"short.rhai\"\nschedule = \"0 0 1 1 *\"\n\
         [[job]]\nname = \"long\"\nscript = \"long.rhai\"\nschedule = \"0 0 1 1 *\"\n",
    );
    assert_eq!(d.trigger("short"), 202);
    assert_eq!(d.trigger("long"), 202);
    std::thread::sleep(Duration::from_millis(300));
    let (code, took) = d.terminate();
    assert_eq!(code, 0, "{}", d.log());
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    assert!(
        took >= Duration::from_millis(1400),
        "did not wait for the grace period: {took:?}"
    );
    let short = history(dir, "short");
    assert_eq!(short.len(), 1);
    assert_eq!(
        short[0]["status"], "ok",
        "a run within the grace period must finish: {short:#?}"
    );
    let long = history(dir, "long");
    assert_eq!(long.len(), 1);
    assert_eq!(long[0]["status"], "interrupted", "{long:#?}");
    assert!(log_has(&long[0], "long start") && !log_has(&long[0], "long done"));
    assert!(
        !dir.join(".mtn/daemon.json").exists(),
        "daemon.json left behind"
    );
}

#[test]
fn daemon_metrics_pass_promtool_and_page_renders_in_chromium() {
    let promtool = env_var("MTN_TEST_PROMTOOL");
    let chromium = env_var("MTN_TEST_CHROMIUM");
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("ok.rhai"), "log(\"fine\");\n").unwrap();
    std::fs::write(dir.join("bad.rhai"), "fail(\"<b>broken</b>\");\n").unwrap();
    std::fs::create_dir_all(dir.join(".mtn")).unwrap();
    std::fs::write(
        dir.join(".mtn/last_restore_test.json"),
        "{\"timestamp\": 1700000000, \"ok\": true}",
    )
    .unwrap();
    let d = Daemon::start(
        dir,
        "[[job]]\nname = \"nightly-backup\"\nscript = \"ok.rhai\"\nschedule = \"0 2 * * *\"\n\
         [[job]]\nname = \"weekly-restore\"\nscript = \"bad.rhai\"\nschedule = \"@weekly\"\ntimezone = \"Europe/Paris\"\n",
    );
    d.trigger("nightly-backup");
    d.trigger("weekly-restore");
    d.wait_history("weekly-restore", 3.0, "a run", |h| !h.is_empty());
    d.wait_history("nightly-backup", 3.0, "a run", |h| !h.is_empty());

    let (code, metrics) = d.get("/metrics");
    assert_eq!(code, 200);
    for want in [
        "mtn_job_runs_total{job=\"nightly-backup\",status=\"ok\"} 1",
        "mtn_job_runs_total{job=\"weekly-restore\",status=\"failed\"} 1",
        "mtn_last_restore_test_timestamp_seconds 1700000000",
        "mtn_job_duration_seconds_count{job=\"nightly-backup\"} 1",
        "mtn_script_reload_errors_total{job=\"nightly-backup\"} 0",
    ] {
        assert!(metrics.contains(want), "missing {want}:\n{metrics}");
    }
    assert!(metrics.contains("mtn_job_last_success_timestamp_seconds{job=\"nightly-backup\"} 1"));
    let mut p = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    p.stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool rejected /metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let status = d.status();
    assert_eq!(status["jobs"].as_array().unwrap().len(), 2);

    let profile = tempdir();
    let out = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://127.0.0.1:{}/", d.port))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<table id=\"jobs\""),
        "page did not load: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("<td>nightly-backup</td>") && dom.contains("<td>weekly-restore</td>"),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;b&gt;broken&lt;/b&gt;"),
        "error not shown (escaped): {dom}"
    );
    assert!(!dom.contains("<b>broken</b>"), "error not escaped");
}

#[test]
fn daemon_config_errors_name_the_place() {
    let tmp = tempdir();
    let dir = tmp.path();
    let run = |config: &str| {
        std::fs::write(dir.join("mtn.toml"), config).unwrap();
        let out = mtn()
            .current_dir(dir)
            .args(["daemon", "--config", "mtn.toml"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) =
        run("[[job]]\nname = \"a\"\nscript = \"a.rhai\"\nschedule = \"@daily\"\nschedul = \"x\"\n");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("mtn.toml:5:1") && err.contains("schedul"),
        "{err}"
    );
    let (code, err) =
        run("[[job]]\nname = \"a\"\nscript = \"a.rhai\"\nschedule = \"61 * * * *\"\n");
    assert_eq!(code, Some(2));
    assert!(
        // The `schedule =` line itself, not only its [[job]] header.
        err.contains("mtn.toml:4:1") && err.contains("job \"a\"") && err.contains("schedule"),
        "{err}"
    );
    let (code, err) = run("[[job]]\nname = \"a\"\nscript = \"a.rhai\"\nschedule = \"@daily\"\noverlap = \"sometimes\"\n");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("overlap") && err.contains("skip, queue or replace"),
        "{err}"
    );
    let (code, err) = run("[[job]]\nname = \"a\"\nscript = \"a.rhai\"\nschedule = \"@daily\"\ntimezone = \"Mars/Base\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("Mars/Base"), "{err}");
}

/// `on_failure = "smtp://..."` mails the failure (a real aiosmtpd sink, plain SMTP on loopback).
#[test]
fn daemon_on_failure_emails_via_smtp() {
    let python = env_var("MTN_TEST_CHECKS_PYTHON");
    let tmp = tempdir();
    let dir = tmp.path();
    let out = dir.join("mail");
    std::fs::create_dir(&out).unwrap();
    let sink = dir.join("sink.py");
    std::fs::write(
        &sink,
        "import sys, time, pathlib\nfrom aiosmtpd.controller import Controller\nout = pathlib.Path(sys.argv[2])\nclass H:\n    async def handle_DATA(self, server, session, envelope):\n        n = len(list(out.glob('*.eml')))\n        (out / f'{n}.eml').write_bytes(envelope.original_content or envelope.content)\n        return '250 OK'\nc = Controller(H(), hostname='127.0.0.1', port=int(sys.argv[1]))\nc.start()\nprint('ready', flush=True)\nwhile True:\n    time.sleep(3600)\n",
    )
    .unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(&python)
        .arg(&sink)
        .arg(port.to_string())
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start aiosmtpd");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
    }
    assert_eq!(line.trim(), "ready");
    std::fs::write(
        dir.join("boom.rhai"),
        "log(\"about to fail\");\nfail(\"disk exploded\");\n",
    )
    .unwrap();
    let d = Daemon::start(
        dir,
        &format!(
            "[[job]]\nname = \"boom\"\nscript = \"boom.rhai\"\nschedule = \"0 0 1 1 *\"\non_failure = \"smtp://127.0.0.1:{port}?to=ops@example.com&tls=none\"\n"
        ),
    );
    let r = mtn()
        .current_dir(dir)
        .args(["trigger", "boom", "--config", "mtn.toml"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let mail = out.join("0.eml");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !mail.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(d);
    let text = std::fs::read_to_string(&mail).expect("the failure email arrived");
    assert!(text.contains("Subject: mtn job boom failed"), "{text}");
    assert!(text.contains("disk exploded"), "{text}");
    assert!(text.contains("about to fail"), "log tail missing: {text}");
}

/// Issue #18 item 5: state-changing endpoints need the token from the state dir (0600), browsers'
/// cross-origin requests are refused, read-only endpoints stay open on loopback, and a
/// non-loopback `listen` is refused unless `insecure_listen = true` (then reads need the token too).
#[test]
fn daemon_trigger_needs_token_and_refuses_cross_origin() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("j.rhai"), "log(\"ran\");\n").unwrap();
    let job = "[[job]]\nname = \"j\"\nscript = \"j.rhai\"\nschedule = \"0 0 1 1 *\"\n";
    let d = Daemon::start(dir, job);
    let mode = std::fs::metadata(dir.join(".mtn/trigger.token"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {:o}", mode & 0o777);
    let token = d.token();
    assert_eq!(token.len(), 64);
    let auth = format!("Authorization: Bearer {token}");

    let post = |headers: &[&str]| http_with(d.port, "POST", "/trigger/j", headers).unwrap();
    let (code, body) = post(&[]);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    assert_eq!(post(&["Authorization: Bearer nope"]).0, 403);
    // A page on another site posting from the operator's browser, even if it knew the token.
    let (code, body) = post(&[&auth, "Origin: https://evil.example"]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cross-origin"), "{body}");
    assert_eq!(post(&[&auth, "Sec-Fetch-Site: cross-site"]).0, 403);
    assert!(d.history("j").is_empty(), "a refused trigger ran the job");
    // The daemon's own origin and non-browser clients with the token are fine.
    let own = format!("Origin: http://127.0.0.1:{}", d.port);
    assert_eq!(post(&[&auth, &own]).0, 202);
    d.wait_history("j", 5.0, "the triggered run", |h| h.len() == 1);
    for path in ["/healthz", "/status", "/metrics", "/"] {
        assert_eq!(d.get(path).0, 200, "GET {path} stays open on loopback");
    }
    let out = mtn()
        .current_dir(dir)
        .args(["trigger", "j", "--config", "mtn.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_history("j", 5.0, "the run from `mtn trigger`", |h| h.len() == 2);
    drop(d);

    // Non-loopback without TLS: refused at start with a clear error.
    let port = free_port();
    std::fs::write(
        dir.join("mtn.toml"),
        format!("listen = \"0.0.0.0:{port}\"\nstate_dir = \".mtn\"\n{job}"),
    )
    .unwrap();
    let out = mtn()
        .current_dir(dir)
        .args(["daemon", "--config", "mtn.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refusing to listen") && err.contains("insecure_listen"),
        "{err}"
    );

    // insecure_listen = true: starts; reads need the token, /healthz does not.
    std::fs::write(
        dir.join("mtn.toml"),
        format!("listen = \"0.0.0.0:{port}\"\nstate_dir = \".mtn\"\ninsecure_listen = true\n{job}"),
    )
    .unwrap();
    let d = Daemon::spawn(dir, port);
    assert_eq!(d.token(), token, "the token survives restarts");
    assert_eq!(http(port, "GET", "/status").unwrap().0, 401);
    assert_eq!(http(port, "GET", "/metrics").unwrap().0, 401);
    assert_eq!(http_with(port, "GET", "/status", &[&auth]).unwrap().0, 200);
    let out = mtn()
        .current_dir(dir)
        .args(["jobs", "--config", "mtn.toml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("daemon at"),
        "`mtn jobs` sends the token too: {err}"
    );
}

/// Issue #18 item 3: on_failure hears when a job starts failing (once, not every run), once when
/// it recovers, again after `notify_every`; the state survives a restart.
#[test]
fn daemon_alerts_on_transitions_only() {
    let tmp = tempdir();
    let dir = tmp.path();
    let (hook, bodies) = webhook();
    let flag = dir.join("broken");
    std::fs::write(&flag, "").unwrap();
    std::fs::write(
        dir.join("j.rhai"),
        format!(
            "if exists({:?}) {{ fail(\"still broken\"); }}\nlog(\"fine\");\n",
            flag.display().to_string()
        ),
    )
    .unwrap();
    let config = |extra: &str| {
        format!("[[job]]\nname = \"flaky\"\nscript = \"j.rhai\"\nschedule = \"* * * * * *\"\non_failure = \"http://127.0.0.1:{hook}/hook\"\n{extra}")
    };
    let mut d = Daemon::start(dir, &config(""));
    let event = |v: &str| {
        serde_json::from_str::<Value>(v).unwrap()["event"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = bodies
        .recv_timeout(Duration::from_secs(10))
        .expect("a failure alert");
    assert_eq!(event(&first), "job_failed");
    d.wait_history("flaky", 10.0, "three more failed runs", |h| {
        h.iter().filter(|e| e["status"] == "failed").count() >= 4
    });
    assert!(
        bodies.try_recv().is_err(),
        "alerted again for a job already failing"
    );

    // Restart while failing: no new alert (the state is on disk).
    d.terminate();
    let before = d.history("flaky").len();
    let d2 = Daemon::spawn(dir, d.port);
    drop(d);
    d2.wait_history("flaky", 10.0, "failed runs after the restart", |h| {
        h.len() >= before + 2
    });
    assert!(bodies.try_recv().is_err(), "a restart repeated the alert");
    assert!(dir.join(".mtn/alerts/flaky.json").exists());

    // notify_every: the alert repeats while the job keeps failing (config reloaded live).
    let text = std::fs::read_to_string(dir.join("mtn.toml")).unwrap();
    std::fs::write(
        dir.join("mtn.toml"),
        text.replace("on_failure", "notify_every = \"2s\"\non_failure"),
    )
    .unwrap();
    let again = bodies
        .recv_timeout(Duration::from_secs(15))
        .expect("a repeated alert");
    let v: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["event"], "job_still_failing", "{v:#}");
    assert!(v["failed_runs"].as_u64().unwrap() >= 4, "{v:#}");

    // Recovery: one notice, then silence while it stays healthy.
    std::fs::remove_file(&flag).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let recovered = loop {
        let b = bodies
            .recv_timeout(Duration::from_secs(15))
            .expect("a recovery notice");
        if event(&b) == "job_recovered" {
            break b;
        }
        assert!(Instant::now() < deadline, "no recovery notice");
    };
    let v: Value = serde_json::from_str(&recovered).unwrap();
    assert_eq!(v["status"], "ok");
    d2.wait_history("flaky", 10.0, "two more good runs", |h| {
        h.iter().rev().take(2).all(|e| e["status"] == "ok")
    });
    assert!(bodies.try_recv().is_err(), "more than one recovery notice");
}

/// Issue #18 item 2: every line of a run carries the job and run id, JSON and human; a failed
/// run is an ERROR; the daemon logs each job's next run at start.
#[test]
fn daemon_logs_carry_job_and_run_id() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(
        dir.join("ok.rhai"),
        "print(\"from print\");\nlog(\"from log\");\n",
    )
    .unwrap();
    std::fs::write(dir.join("bad.rhai"), "fail(\"it broke\");\n").unwrap();
    let cfg = "[[job]]\nname = \"good\"\nscript = \"ok.rhai\"\nschedule = \"0 3 * * *\"\ntimezone = \"UTC\"\n\
               [[job]]\nname = \"bad\"\nscript = \"bad.rhai\"\nschedule = \"0 0 1 1 *\"\n";
    let port = free_port();
    std::fs::write(
        dir.join("mtn.toml"),
        format!("listen = \"127.0.0.1:{port}\"\nstate_dir = \".mtn\"\n{cfg}"),
    )
    .unwrap();
    let mut d = Daemon::spawn_args(dir, port, &["--log-format", "json"]);
    assert_eq!(d.trigger("good"), 202);
    d.wait_history("good", 5.0, "a run", |h| h.len() == 1);
    assert_eq!(d.trigger("bad"), 202);
    d.wait_history("bad", 5.0, "a run", |h| h.len() == 1);
    d.terminate();
    let log = d.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let msg = |v: &Value| v["message"].as_str().unwrap_or("").to_string();
    for text in ["from print", "from log"] {
        let l = lines
            .iter()
            .find(|l| msg(l).contains(text))
            .unwrap_or_else(|| panic!("{text}\n{log}"));
        assert_eq!(l["job"], "good", "{l}");
        assert_eq!(l["run"], 1, "{l}");
    }
    let failed = lines
        .iter()
        .find(|l| msg(l).contains("job bad: failed"))
        .unwrap_or_else(|| panic!("no failure line\n{log}"));
    assert_eq!(failed["level"], "ERROR", "{failed}");
    assert_eq!(failed["job"], "bad");
    assert_eq!(failed["run"], 1);
    let next = lines
        .iter()
        .find(|l| msg(l).contains("job good: next run"))
        .unwrap_or_else(|| panic!("no next-run line\n{log}"));
    assert!(
        next["next_run"].as_str().unwrap().contains("T03:00:00"),
        "{next}"
    );
    assert!(
        !log.contains("\"host_call\""),
        "host-call DEBUG events without -v\n{log}"
    );

    // Human format, after a restart: run ids keep counting from the history.
    let mut d = Daemon::spawn(dir, port);
    assert_eq!(d.trigger("good"), 202);
    d.wait_history("good", 5.0, "a second run", |h| h.len() == 2);
    d.terminate();
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("[good#2]") && l.contains("from log")),
        "{log}"
    );
    let h = d.history("good");
    assert_eq!(h[1]["run"], 2);
}

/// Issue #18 item 6: `mtn history JOB --failed --since`, `--json`, `--tail RUN`.
#[test]
fn history_filters_and_tail() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(
        dir.join("mtn.toml"),
        "state_dir = \".mtn\"\n[[job]]\nname = \"nightly\"\nscript = \"n.rhai\"\nschedule = \"@daily\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join(".mtn/history")).unwrap();
    let now = chrono::Local::now();
    let mut text = String::new();
    for (run, days, status) in [
        (1, 20, "failed"),
        (2, 3, "ok"),
        (3, 2, "failed"),
        (4, 1, "timeout"),
    ] {
        let t = (now - chrono::Duration::days(days)).to_rfc3339();
        text.push_str(&format!(
            "{{\"job\":\"nightly\",\"run\":{run},\"trigger\":\"schedule\",\"start\":\"{t}\",\"end\":\"{t}\",\"status\":\"{status}\",\"attempt\":0,\"error\":\"error: boom {run}\",\"log_tail\":[\"info: step {run}\"]}}\n"
        ));
    }
    std::fs::write(dir.join(".mtn/history/nightly.jsonl"), text).unwrap();
    let hist = |args: &[&str]| {
        let out = mtn()
            .current_dir(dir)
            .arg("history")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = hist(&["nightly", "--failed", "--since", "7d", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let runs: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["run"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(runs, vec![3, 4]);
    let (_, out, _) = hist(&["nightly"]);
    assert!(
        out.contains("nightly#2") && out.contains("nightly#1"),
        "{out}"
    );
    let (code, out, err) = hist(&["--tail", "nightly#3"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("error: boom 3") && out.contains("info: step 3"),
        "{out}"
    );
    let (code, out, _) = hist(&["nightly", "--tail", "2"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("run nightly#2: ok"), "{out}");
    let (code, _, err) = hist(&["nightly", "--tail", "99"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no run"), "{err}");
    let (code, _, err) = hist(&["nightly", "--since", "soon"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--since"), "{err}");
}

/// Issue #18 item 4: the daemon honours --state-dir and MTN_STATE_DIR (over the config) and
/// systemd's $STATE_DIRECTORY (under it), and refuses to start when it cannot write its state.
#[test]
fn daemon_state_dir_flag_env_and_systemd() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("j.rhai"), "log(\"x\");\n").unwrap();
    let job = "[[job]]\nname = \"j\"\nscript = \"j.rhai\"\nschedule = \"0 0 1 1 *\"\n";
    std::fs::write(dir.join("mtn.toml"), job).unwrap();
    let check = |envs: &[(&str, &std::path::Path)], args: &[&str], expect: &std::path::Path| {
        let port = free_port();
        let mut c = mtn();
        c.current_dir(dir)
            .env_remove("MTN_STATE_DIR")
            .env_remove("STATE_DIRECTORY")
            .args([
                "daemon",
                "--config",
                "mtn.toml",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in envs {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while !expect.join("daemon.json").exists() {
            assert!(Instant::now() < until, "no state in {}", expect.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        // `mtn history` finds the same place with the same settings.
        let mut h = mtn();
        h.current_dir(dir)
            .env_remove("MTN_STATE_DIR")
            .env_remove("STATE_DIRECTORY")
            .args(["trigger", "j", "--config", "mtn.toml"])
            .args(args);
        for (k, v) in envs {
            h.env(k, v);
        }
        let out = h.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let until = Instant::now() + Duration::from_secs(10);
        while !expect.join("history/j.jsonl").exists() {
            assert!(Instant::now() < until, "no history in {}", expect.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    };
    let env_dir = dir.join("from-env");
    let flag_dir = dir.join("from-flag");
    let systemd_dir = dir.join("from-systemd");
    check(&[("MTN_STATE_DIR", &env_dir)], &[], &env_dir);
    let flag = flag_dir.display().to_string();
    check(
        &[("MTN_STATE_DIR", &env_dir)],
        &["--state-dir", &flag],
        &flag_dir,
    );
    check(&[("STATE_DIRECTORY", &systemd_dir)], &[], &systemd_dir);
    assert!(
        !dir.join(".mtn").exists(),
        "state written into the config folder"
    );

    // Not writable: a clear refusal at start, exit 2.
    std::fs::write(dir.join("file"), "").unwrap();
    let out = mtn()
        .current_dir(dir)
        .args(["daemon", "--config", "mtn.toml", "--state-dir"])
        .arg(dir.join("file/state"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("state dir") && err.contains("StateDirectory"),
        "{err}"
    );
}

/// Issue #18 item 1: `mtn check` on a config (by extension or content) and on a folder; `mtn
/// daemon --check`; problems with file:line:col and hints; the next three fire times.
#[test]
fn check_validates_configs_and_folders() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/good.rhai"), "log(\"hi\");\n").unwrap();
    std::fs::write(dir.join("scripts/typo.rhai"), "dump_bd(\"x\");\n").unwrap();
    let check = |args: &[&str]| {
        let out = mtn().current_dir(dir).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // A valid config: exit 0, each job's next three fire times in its time zone.
    std::fs::write(
        dir.join("mtn.toml"),
        "[[job]]\nname = \"nightly\"\nscript = \"scripts/good.rhai\"\nschedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n",
    )
    .unwrap();
    let (code, out, err) = check(&["check", "mtn.toml"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let next = out
        .lines()
        .find(|l| l.contains("next:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(next.matches("02:30:00").count(), 3, "{next}");
    let (code, out, _) = check(&["daemon", "--config", "mtn.toml", "--check"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("next:"), "{out}");
    let (code, out, _) = check(&["jobs", "--config", "mtn.toml", "--next", "5"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.matches("02:30:00").count(), 5, "{out}");

    // An unknown key: file:line:col and the closest key.
    std::fs::write(
        dir.join("typo.toml"),
        "[[job]]\nname = \"nightly\"\nscript = \"scripts/good.rhai\"\nschedul = \"@daily\"\n",
    )
    .unwrap();
    let (code, _, err) = check(&["check", "typo.toml"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("typo.toml:4:1"), "{err}");
    assert!(err.contains("did you mean `schedule`"), "{err}");

    // Every job problem at once: bad cron, bad zone, missing script, a script's unknown function.
    let bad = "[[job]]\nname = \"a\"\nscript = \"scripts/good.rhai\"\nschedule = \"61 * * * *\"\n\
               [[job]]\nname = \"b\"\nscript = \"scripts/good.rhai\"\nschedule = \"@daily\"\ntimezone = \"Mars/Base\"\n\
               [[job]]\nname = \"c\"\nscript = \"scripts/gone.rhai\"\nschedule = \"@daily\"\n\
               [[job]]\nname = \"d\"\nscript = \"scripts/typo.rhai\"\nschedule = \"@daily\"\n";
    // No extension: recognised as a config by its content.
    std::fs::write(dir.join("jobs.conf"), bad).unwrap();
    let (code, _, err) = check(&["check", "jobs.conf"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("jobs.conf:4:1") && err.contains("`schedule` \"61 * * * *\""),
        "{err}"
    );
    assert!(
        err.contains("jobs.conf:9:1") && err.contains("Mars/Base"),
        "{err}"
    );
    assert!(
        err.contains("jobs.conf:12:1") && err.contains("gone.rhai does not exist"),
        "{err}"
    );
    assert!(
        err.contains("dump_bd") && err.contains("typo.rhai:1:1"),
        "{err}"
    );
    assert!(err.contains("4 problems found"), "{err}");
    let (code, _, err) = check(&["daemon", "--config", "jobs.conf", "--check"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Mars/Base"), "{err}");

    // A folder: every script and config under it.
    std::fs::remove_file(dir.join("typo.toml")).unwrap();
    std::fs::remove_file(dir.join("jobs.conf")).unwrap();
    let (code, out, err) = check(&["check", "scripts/"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("ok: scripts/good.rhai"), "{out}");
    assert!(err.contains("dump_bd"), "{err}");
    assert!(!err.contains("Is a directory"), "{err}");
}

/// Issue #18 item 1: a config fixed after a broken edit is logged as fixed.
#[test]
fn daemon_logs_a_fixed_config() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("j.rhai"), "log(\"x\");\n").unwrap();
    let job = "[[job]]\nname = \"j\"\nscript = \"j.rhai\"\nschedule = \"0 0 1 1 *\"\n";
    let d = Daemon::start(dir, job);
    let good = std::fs::read_to_string(dir.join("mtn.toml")).unwrap();
    std::fs::write(dir.join("mtn.toml"), good.replace("schedule", "schedul")).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !d.log().contains("did you mean `schedule`") {
        assert!(
            Instant::now() < until,
            "broken config not reported\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(dir.join("mtn.toml"), &good).unwrap();
    while !d.log().contains("fixed, now valid") {
        assert!(
            Instant::now() < until,
            "fixed config not logged\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.status()["config_error"].is_null());
}

#[test]
fn daemon_refuses_an_emptied_script_and_one_swapped_for_a_foreign_symlink() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("job.rhai"), "log(\"real work\");\n").unwrap();
    let d = Daemon::start(
        dir,
        "[[job]]\nname = \"tick\"\nscript = \"job.rhai\"\nschedule = \"0 3 * * *\"\n",
    );
    let good = d.job_status("tick")["version"].clone();
    let wait_error = |what: &str| {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let js = d.job_status("tick");
            if let Some(e) = js["reload_error"].as_str() {
                if e.contains(what) {
                    return js;
                }
            }
            assert!(
                Instant::now() < until,
                "no reload error with {what:?}: {js:#}\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // An emptied file (a truncated save) is an error, not a no-op job; the last version stays.
    std::fs::write(dir.join("job.rhai"), "// nothing left\n").unwrap();
    let js = wait_error("is empty");
    assert_eq!(js["version"], good);
    // A symlink planted by another user is not read: /status never shows the target's lines.
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "root:SECRET-HASH:19000:0:99999:7:::\n").unwrap();
    std::fs::remove_file(dir.join("job.rhai")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("job.rhai")).unwrap();
    std::os::unix::fs::lchown(dir.join("job.rhai"), Some(65534), Some(65534)).unwrap();
    let js = wait_error("symlink owned by another user");
    assert_eq!(js["version"], good);
    assert!(!d.get("/status").1.contains("SECRET-HASH"));
    assert!(!d.log().contains("SECRET-HASH"));
}
