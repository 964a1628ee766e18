//! Tests for the engine and the CLI: exit codes, rendered errors, limits, signals, secrets.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn engine_exit_code_ok_and_set_vars() {
    let d = tempdir();
    let r = run_script(
        d.path(),
        "ok.rhai",
        "assert(vars.name == \"bob\", \"name\"); assert(vars.keep == 14, \"typed int\"); assert(var_or(\"missing\", 7) == 7, \"default\"); assert(var_or(\"keep\", 1) == 14, \"set\"); log(`hi ${vars.name}`);",
        &["--set", "name=bob", "--set", "keep=14"],
    );
    r.expect_code(0);
    assert!(r.stderr.contains("hi bob"), "{}", r.stderr);
    assert!(
        r.stderr.contains("run ok:"),
        "summary line missing: {}",
        r.stderr
    );
}

#[test]
fn engine_exit_code_failure_renders_location() {
    let d = tempdir();
    let r = run_script(
        d.path(),
        "bad.rhai",
        "let x = 1;\nlet y = 2;\nfail(\"disk is gone\");\n",
        &[],
    );
    r.expect_code(1);
    assert!(r.stderr.contains("error: disk is gone"), "{}", r.stderr);
    assert!(r.stderr.contains("bad.rhai:3:1"), "{}", r.stderr);
    assert!(
        r.stderr.contains("3 | fail(\"disk is gone\");"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("run failed:"), "{}", r.stderr);
}

#[test]
fn engine_syntax_error_is_exit_1_with_caret() {
    let d = tempdir();
    let r = run_script(d.path(), "syn.rhai", "let a = 1;\nlet b = (a + ;\n", &[]);
    r.expect_code(1);
    assert!(r.stderr.contains("syntax error"), "{}", r.stderr);
    assert!(r.stderr.contains("syn.rhai:2:"), "{}", r.stderr);
    assert!(r.stderr.contains('^'), "{}", r.stderr);
}

#[test]
fn engine_usage_errors_exit_2() {
    let d = tempdir();
    // Missing script file.
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .args(["run", "nope.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(2);
    assert!(r.stderr.contains("nope.rhai"), "{}", r.stderr);
    // Bad flag, bad --set, bad --timeout.
    Run::from(
        mtn()
            .args(["run", "--no-such-flag", "x.rhai"])
            .output()
            .unwrap(),
    )
    .expect_code(2);
    std::fs::write(d.path().join("t.rhai"), "1;").unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .args(["run", "t.rhai", "--set", "novalue"])
            .output()
            .unwrap(),
    );
    r.expect_code(2);
    assert!(r.stderr.contains("NAME=VALUE"), "{}", r.stderr);
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .args(["run", "t.rhai", "--timeout", "soon"])
            .output()
            .unwrap(),
    );
    r.expect_code(2);
    assert!(r.stderr.contains("--timeout"), "{}", r.stderr);
}

#[test]
fn engine_warning_exit_codes() {
    let d = tempdir();
    let r = run_script(d.path(), "w.rhai", "warn(\"disk 85% full\");", &[]);
    r.expect_code(0);
    assert!(r.stderr.contains("run warning:"), "{}", r.stderr);
    run_script(
        d.path(),
        "w.rhai",
        "warn(\"disk 85% full\");",
        &["--fail-on-warning"],
    )
    .expect_code(3);
}

#[test]
fn engine_operation_limit_stops_endless_loop() {
    let d = tempdir();
    let started = Instant::now();
    let r = run_script(
        d.path(),
        "loop.rhai",
        "let i = 0;\nloop { i += 1; }\n",
        &["--max-operations", "100000"],
    );
    r.expect_code(1);
    assert!(r.stderr.contains("operation limit"), "{}", r.stderr);
    assert!(r.stderr.contains("loop.rhai:2:"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn engine_timeout_exits_124_also_inside_host_sleep() {
    let d = tempdir();
    let started = Instant::now();
    let r = run_script(d.path(), "spin.rhai", "loop { }", &["--timeout", "500ms"]);
    r.expect_code(124);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    let r = run_script(
        d.path(),
        "sleepy.rhai",
        "sleep(\"60s\");",
        &["--timeout", "300ms"],
    );
    r.expect_code(124);
    // A timeout cannot be swallowed by try/catch.
    let r = run_script(
        d.path(),
        "catch.rhai",
        "try { sleep(60); } catch (e) { log(\"caught\"); }\nlog(\"after\");",
        &["--timeout", "300ms"],
    );
    r.expect_code(124);
    assert!(!r.stderr.contains("after"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn engine_sigterm_exits_130_within_a_second() {
    let d = tempdir();
    std::fs::write(
        d.path().join("long.rhai"),
        "log(\"started\");\nsleep(\"60s\");\n",
    )
    .unwrap();
    let child = mtn()
        .current_dir(d.path())
        .args(["run", "long.rhai"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let sent = Instant::now();
    let pid = child.id() as i32;
    let rc = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(rc.success());
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn engine_secret_never_appears_in_output() {
    let d = tempdir();
    let secret = "s3cr3t-Value-42";
    let script = "let s = secret(\"API_TOKEN\");\nprint(s);\nlog(`token=${s}`);\ndebug(s);\nlet u = `postgres://app:${s}@127.0.0.1:1/db`;\nlog(u);\nfail(`could not use ${s}`);\n";
    for fmt in ["human", "json"] {
        let r = run_script_env(
            d.path(),
            "sec.rhai",
            script,
            &["--log-format", fmt, "-v"],
            &[("API_TOKEN", secret)],
        );
        r.expect_code(1);
        assert!(
            !r.all().contains(secret),
            "secret leaked with {fmt}:\n{}",
            r.all()
        );
        assert!(r.stderr.contains("***"), "{}", r.stderr);
    }
    // From a file named by NAME_FILE.
    std::fs::write(d.path().join("tok"), format!("{secret}\n")).unwrap();
    let tok_path = d.path().join("tok");
    let r = run_script_env(
        d.path(),
        "sec2.rhai",
        "let s = secret(\"API_TOKEN\"); assert(s.len() == 15, \"trimmed\"); print(s);",
        &[],
        &[("API_TOKEN_FILE", tok_path.to_str().unwrap())],
    );
    r.expect_code(0);
    assert!(!r.all().contains(secret));
    // Missing secret: a clear error naming both variables.
    let r = run_script(d.path(), "sec3.rhai", "secret(\"NOPE_TOKEN\");", &[]);
    r.expect_code(1);
    assert!(r.stderr.contains("NOPE_TOKEN_FILE"), "{}", r.stderr);
}

#[test]
fn engine_json_log_has_one_object_per_event() {
    let d = tempdir();
    let r = run_script(
        d.path(),
        "j.rhai",
        "log(\"hello\"); let t = duration(\"5m\"); sleep(0);",
        &["--log-format", "json", "-v"],
    );
    r.expect_code(0);
    let events: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(events.iter().any(|e| e["event"] == "run_start"));
    let end = events
        .iter()
        .find(|e| e["event"] == "run_end")
        .expect("run_end");
    assert_eq!(end["status"], "ok");
    assert!(end["host_calls"].as_u64().unwrap() >= 1);
    assert!(events
        .iter()
        .any(|e| e["event"] == "host_call" && e["function"] == "sleep" && e["outcome"] == "ok"));

    // JSON logs follow -v/-q like human ones: host-call events are DEBUG, absent without -v.
    let r = run_script(d.path(), "j.rhai", "sleep(0);", &["--log-format", "json"]);
    r.expect_code(0);
    assert!(!r.stderr.contains("\"host_call\""), "{}", r.stderr);
    assert!(r.stderr.contains("run_end"), "{}", r.stderr);
    let r = run_script(
        d.path(),
        "j.rhai",
        "sleep(0);",
        &["--log-format", "json", "-q"],
    );
    r.expect_code(0);
    assert!(r.stderr.trim().is_empty(), "-q: {}", r.stderr);
}

#[test]
fn engine_host_error_is_catchable_with_kind() {
    let d = tempdir();
    let r = run_script(
        d.path(),
        "c.rhai",
        "try { duration(\"5 parsecs\"); } catch (e) { log(`kind=${e.kind} fn=${e.function} retryable=${e.retryable}`); }",
        &[],
    );
    r.expect_code(0);
    assert!(
        r.stderr
            .contains("kind=invalid_input fn=duration retryable=false"),
        "{}",
        r.stderr
    );
}

#[test]
fn engine_unknown_option_key_is_named() {
    let d = tempdir();
    let r = run_script(d.path(), "o.rhai", "\nretry(|| 1, #{ atempts: 2 });\n", &[]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("unknown option `atempts`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("did you mean `attempts`"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("allowed options: attempts, delay, backoff"),
        "{}",
        r.stderr
    );
    // Found by the check before the run: points at the options map.
    assert!(r.stderr.contains("o.rhai:2:13"), "{}", r.stderr);
}

#[test]
fn engine_imports_resolve_from_script_dir_and_stdlib_and_stay_confined() {
    let d = tempdir();
    let lib = tempdir();
    std::fs::write(d.path().join("util.rhai"), "fn double(x) { x * 2 }\n").unwrap();
    std::fs::write(
        lib.path().join("greet.rhai"),
        "fn hello(n) { `hello ${n}` }\nfn broken() {\n  fail(\"inside module\");\n}\n",
    )
    .unwrap();
    let ok = "import \"util\" as u;\nimport \"greet\" as g;\nassert(u::double(21) == 42, \"double\");\nlog(g::hello(\"x\"));\n";
    std::fs::write(d.path().join("main.rhai"), ok).unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .env("MTN_STDLIB", lib.path())
            .args(["run", "main.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(0);
    assert!(r.stderr.contains("hello x"), "{}", r.stderr);

    // An error inside a module names the module file and line.
    std::fs::write(
        d.path().join("m2.rhai"),
        "import \"greet\" as g;\ng::broken();\n",
    )
    .unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .env("MTN_STDLIB", lib.path())
            .args(["run", "m2.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(1);
    assert!(r.stderr.contains("inside module"), "{}", r.stderr);
    assert!(r.stderr.contains("greet.rhai:3:3"), "{}", r.stderr);

    // A syntax error inside a module.
    std::fs::write(d.path().join("bad_mod.rhai"), "fn x( {\n").unwrap();
    std::fs::write(d.path().join("m3.rhai"), "import \"bad_mod\" as b;\n").unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .env("MTN_STDLIB", lib.path())
            .args(["run", "m3.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(1);
    assert!(r.stderr.contains("bad_mod.rhai:1:"), "{}", r.stderr);

    // ../ cannot escape the roots.
    let outside = tempdir();
    std::fs::write(outside.path().join("evil.rhai"), "fn x() { 1 }\n").unwrap();
    let rel = format!(
        "../{}/evil",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    std::fs::write(
        d.path().join("m4.rhai"),
        format!("import \"{rel}\" as e;\n"),
    )
    .unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .env("MTN_STDLIB", lib.path())
            .args(["run", "m4.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(1);
    assert!(
        r.stderr.contains("outside the script and stdlib folders"),
        "{}",
        r.stderr
    );
}

#[test]
fn engine_check_reports_unknown_functions_with_hints() {
    let d = tempdir();
    std::fs::write(d.path().join("util.rhai"), "fn double(x) { x * 2 }\n").unwrap();
    std::fs::write(
        d.path().join("c.rhai"),
        "import \"util\" as u;\nlet t = durashun(\"5m\");\nu::dubble(2);\nlet n = \"x\".lenn();\nfn mine() { 1 }\nmine();\n",
    )
    .unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .args(["check", "c.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(1);
    assert!(
        r.stderr.contains("function `durashun` not found"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("c.rhai:2:9"), "{}", r.stderr);
    assert!(r.stderr.contains("`duration`"), "{}", r.stderr);
    assert!(r.stderr.contains("`u::dubble` not found"), "{}", r.stderr);
    assert!(r.stderr.contains("`u::double`"), "{}", r.stderr);
    assert!(r.stderr.contains("`lenn` not found"), "{}", r.stderr);
    assert!(!r.stderr.contains("`mine`"), "{}", r.stderr);
    assert!(r.stderr.contains("3 problems found"), "{}", r.stderr);

    std::fs::write(
        d.path().join("good.rhai"),
        "let x = duration(\"5m\");\nlog(x);\n",
    )
    .unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .args(["check", "good.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(0);
}

#[test]
fn engine_eval_is_disabled_and_strict_variables_on() {
    let d = tempdir();
    let r = run_script(d.path(), "e.rhai", "eval(\"1+1\");", &[]);
    r.expect_code(1);
    let r = run_script(d.path(), "v.rhai", "let a = 1;\nlog(b);\n", &[]);
    r.expect_code(1);
    assert!(r.stderr.contains("v.rhai:2:5"), "{}", r.stderr);
}

#[test]
fn engine_fns_lists_every_registered_function() {
    let r = Run::from(mtn().args(["fns", "--json"]).output().unwrap());
    r.expect_code(0);
    let fns: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = fns.iter().map(|f| f["name"].as_str().unwrap()).collect();
    for expected in [
        "log",
        "env",
        "secret",
        "now",
        "today",
        "format_time",
        "duration",
        "sleep",
        "assert",
        "fail",
        "warn",
        "hostname",
        "retry",
    ] {
        assert!(names.contains(&expected), "{expected} missing from mtn fns");
    }
    for f in &fns {
        assert!(
            !f["summary"].as_str().unwrap().is_empty(),
            "{} has no summary",
            f["name"]
        );
    }
    // The human listing has the same functions.
    let r = Run::from(mtn().arg("fns").output().unwrap());
    r.expect_code(0);
    for n in &names {
        assert!(
            r.stdout.contains(&format!("{n}(")),
            "{n} missing from human listing"
        );
    }
}

#[test]
fn engine_reference_doc_is_up_to_date() {
    let r = Run::from(mtn().arg("docs").output().unwrap());
    r.expect_code(0);
    let checked_in =
        std::fs::read_to_string(repo().join("docs/reference.md")).expect("docs/reference.md");
    assert!(
        checked_in == r.stdout,
        "docs/reference.md is out of date: regenerate it with `mtn docs --out docs/reference.md`"
    );
}

#[test]
fn engine_version_and_completions() {
    let r = Run::from(mtn().arg("--version").output().unwrap());
    r.expect_code(0);
    assert!(r.stdout.starts_with("mtn "), "{}", r.stdout);
    let r = Run::from(mtn().args(["completions", "bash"]).output().unwrap());
    r.expect_code(0);
    assert!(
        r.stdout.contains("_mtn"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
}

#[test]
fn engine_retry_retries_then_raises() {
    let d = tempdir();
    let r = run_script(
        d.path(),
        "r.rhai",
        "let n = 0;\nlet v = retry(|| { n += 1; if n < 3 { fail(\"flaky\"); } n }, #{ attempts: 5, delay: \"10ms\" });\nassert(v == 3, `got ${v}`);\nretry(|| fail(\"always\"), #{ attempts: 2, delay: 0 });\n",
        &[],
    );
    r.expect_code(1);
    assert!(r.stderr.contains("always"), "{}", r.stderr);
    assert!(r.stderr.contains("attempt 1/2 failed"), "{}", r.stderr);
}

#[test]
fn engine_check_reports_every_independent_syntax_error() {
    let d = tempdir();
    std::fs::write(
        d.path().join("s.rhai"),
        "let a = 1;\nlet b = (a + ;\nlet c = 2;\nlet d = c ** ;\nlog(a);\nlet e = [1, 2;\n",
    )
    .unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .args(["check", "s.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(1);
    for loc in ["s.rhai:2:14", "s.rhai:4:14", "s.rhai:6:14"] {
        assert!(r.stderr.contains(loc), "{loc} missing:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("3 problems found"), "{}", r.stderr);
    // An unclosed block is one problem, not a cascade.
    std::fs::write(
        d.path().join("u.rhai"),
        "let a = 1;\nif a > 0 {\n  log(a);\nlet b = 2;\n",
    )
    .unwrap();
    let r = Run::from(
        mtn()
            .current_dir(d.path())
            .args(["check", "u.rhai"])
            .output()
            .unwrap(),
    );
    r.expect_code(1);
    assert!(r.stderr.contains("1 problem found"), "{}", r.stderr);
}

#[test]
fn engine_defs_writes_editor_definitions_for_host_functions() {
    let d = tempdir();
    let out = d.path().join("defs");
    let r = Run::from(mtn().args(["defs", "--out"]).arg(&out).output().unwrap());
    r.expect_code(0);
    let text = std::fs::read_to_string(out.join("__static__.d.rhai")).expect("definitions");
    for f in ["fn dump_db(", "fn rotate(", "fn http_check(", "fn secret("] {
        assert!(text.contains(f), "{f} missing from the definitions");
    }
}
