//! Containers and Redis against a real Docker engine started by tests/env/80-docker.sh (private
//! dockerd, images built locally: PostgreSQL 17 and Redis in containers on a bridge network
//! whose ports are not published) and a private redis-server on the host.

use std::path::Path;
use std::process::Command;

use crate::support::*;

mod databases;

fn docker_host() -> String {
    env_var("MTN_TEST_DOCKER_HOST")
}

/// Run a script with DOCKER_HOST pointing at the test engine.
fn run(dir: &Path, text: &str, args: &[&str]) -> Run {
    let host = docker_host();
    run_script_env(dir, "t.rhai", text, args, &[("DOCKER_HOST", host.as_str())])
}

fn pg_url(db: &str) -> String {
    format!(
        "postgres://postgres:{}@container:{}/{db}",
        env_var("MTN_TEST_DOCKER_PG_PASSWORD"),
        env_var("MTN_TEST_DOCKER_PG")
    )
}

#[test]
fn containers_list_inspect_and_stats_match_the_engine() {
    let dir = tempdir();
    let (pg, web, stopped) = (
        env_var("MTN_TEST_DOCKER_PG"),
        env_var("MTN_TEST_DOCKER_WEB"),
        env_var("MTN_TEST_DOCKER_STOPPED"),
    );
    let r = run(
        dir.path(),
        &format!(
            r#"let all = containers();
let running = containers(#{{ all: false }});
print("RESULT " + #{{ all: all, running: running, pg: container("{pg}"), stats: container_stats("{pg}") }}.to_json());"#
        ),
        &[],
    );
    r.expect_code(0);
    let v = json_after(&r, "RESULT ");
    let names: Vec<&str> = v["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [&pg, &web, &stopped] {
        assert!(names.contains(&n.as_str()), "{n} missing from {names:?}");
    }
    let running: Vec<&str> = v["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!running.contains(&stopped.as_str()));
    let c = &v["pg"];
    assert_eq!(c["state"], "running");
    assert_eq!(c["running"], true);
    assert_eq!(c["image"], "local/mtn-pg:17");
    assert_eq!(c["ip"], env_var("MTN_TEST_DOCKER_PG_IP"));
    assert_eq!(c["restart_policy"], "unless-stopped");
    assert_eq!(
        c["restart_count"].as_i64().unwrap().to_string(),
        docker(&["inspect", "-f", "{{.RestartCount}}", &pg])
    );
    assert!(c["uptime_secs"].as_i64().unwrap() >= 0);
    assert!(c["ports"].as_object().unwrap().is_empty(), "not published");
    let s = &v["stats"];
    assert!(s["memory_bytes"].as_u64().unwrap() > 1_000_000, "{s}");
    assert!(s["memory_limit_bytes"].as_u64().unwrap() >= s["memory_bytes"].as_u64().unwrap());
    assert!(s["pids"].as_u64().unwrap() >= 1);
    assert!(s["cpu_percent"].as_f64().unwrap() >= 0.0);
}

#[test]
fn container_logs_match_counts() {
    let dir = tempdir();
    let web = env_var("MTN_TEST_DOCKER_WEB");
    let r = run(
        dir.path(),
        &format!(
            r#"let e = container_logs("{web}", #{{ pattern: "ERROR" }});
let out = container_logs("{web}", #{{ "match": "ERROR", stderr: false }});
let slow = container_logs("{web}", #{{ pattern: "/took [0-9]{{4,}}ms/" }});
let all = container_logs("{web}");
let tail = container_logs("{web}", #{{ tail: 2 }});
let future = container_logs("{web}", #{{ since: all.next_since + 3600 }});
print("RESULT " + #{{ e: e, out: out, slow: slow, all: all, tail: tail, future: future }}.to_json());"#
        ),
        &[],
    );
    r.expect_code(0);
    let v = json_after(&r, "RESULT ");
    // The container printed 3 ERROR lines on stdout and 2 on stderr, 4 INFO lines.
    assert_eq!(v["e"]["matched"], 5, "{}", v["e"]);
    assert_eq!(v["e"]["stdout_matched"], 3);
    assert_eq!(v["e"]["stderr_matched"], 2);
    assert_eq!(v["e"]["total"], 9);
    assert_eq!(v["out"]["matched"], 3);
    assert_eq!(v["out"]["total"], 7);
    assert_eq!(v["slow"]["matched"], 1);
    assert_eq!(v["slow"]["lines"][0], "INFO slow request took 2300ms");
    assert_eq!(v["all"]["matched"], 9);
    assert_eq!(v["tail"]["total"], 2);
    assert_eq!(v["future"]["total"], 0);
    // Same count as the CLI's `docker logs | grep ERROR`.
    let cli = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "DOCKER_API_VERSION=1.41 docker logs {web} 2>&1 | grep -c ERROR"
        ))
        .env("DOCKER_HOST", docker_host())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), "5");
}

#[test]
fn container_exec_is_allow_listed_and_redacted() {
    let dir = tempdir();
    let web = env_var("MTN_TEST_DOCKER_WEB");
    // Not allow-listed: refused, nothing runs.
    let r = run(
        dir.path(),
        &format!(
            r#"try {{ container_exec("{web}", "touch", ["/tmp/ran"]); }} catch (e) {{ print("RESULT " + e.to_json()); }}"#
        ),
        &[],
    );
    r.expect_code(0);
    let v = json_after(&r, "RESULT ");
    assert_eq!(v["kind"], "refused", "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains(&format!("--allow-exec {web}:touch")));
    assert!(!docker(&["exec", &web, "ls", "/tmp"]).contains("ran"));

    // Allowed: arguments as an array (no shell: `$HOME` and `;` stay literal), exit code,
    // stdin, a secret in the output masked.
    let host = docker_host();
    let r = run_script_env(
        dir.path(),
        "t2.rhai",
        &format!(
            r#"let s = secret("CTR_TOKEN");
let a = container_exec("{web}", "echo", ["$HOME;", "x", s]);
let b = container_exec("{web}", "sh", ["-c", "cat; echo err >&2; exit 3"], #{{ stdin: "from stdin" }});
print("RESULT " + #{{ a: a, b: b }}.to_json());"#
        ),
        &[
            "--allow-exec",
            &format!("{web}:echo"),
            "--allow-exec",
            &format!("{web}:sh"),
        ],
        &[
            ("DOCKER_HOST", host.as_str()),
            ("CTR_TOKEN", "tok-Very-Secret-77"),
        ],
    );
    r.expect_code(0);
    assert!(!r.all().contains("tok-Very-Secret-77"), "{}", r.all());
    let v = json_after(&r, "RESULT ");
    assert_eq!(v["a"]["code"], 0);
    assert_eq!(v["a"]["stdout"], "$HOME; x ***\n");
    assert_eq!(v["b"]["code"], 3);
    assert_eq!(v["b"]["ok"], false);
    assert_eq!(v["b"]["stdout"], "from stdin");
    assert_eq!(v["b"]["stderr"], "err\n");

    // Dry run: skipped unless readonly.
    let r = run(
        dir.path(),
        &format!(
            r#"let a = container_exec("{web}", "echo", ["hi"]);
let b = container_exec("{web}", "echo", ["hi"], #{{ readonly: true }});
print("RESULT " + #{{ a: a, b: b }}.to_json());"#
        ),
        &["--dry-run", "--allow-exec", &format!("{web}:echo")],
    );
    r.expect_code(0);
    let v = json_after(&r, "RESULT ");
    assert_eq!(v["a"]["dry_run"], true);
    assert_eq!(v["a"]["stdout"], "");
    assert_eq!(v["b"]["stdout"], "hi\n");
}

#[test]
fn container_exec_timeout_kills_the_process() {
    let dir = tempdir();
    let web = env_var("MTN_TEST_DOCKER_WEB");
    let r = run(
        dir.path(),
        &format!(
            r#"try {{ container_exec("{web}", "sleep", ["307"], #{{ timeout: "1s" }}); }} catch (e) {{ print("RESULT " + e.to_json()); }}"#
        ),
        &["--allow-exec", &format!("{web}:sleep")],
    );
    r.expect_code(0);
    let v = json_after(&r, "RESULT ");
    assert_eq!(v["kind"], "failed", "{v}");
    assert!(v["message"].as_str().unwrap().contains("timeout"));
    // The process is gone from the container.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ps = docker(&["top", &web]);
    assert!(!ps.contains("sleep 307"), "{ps}");
}

#[test]
fn stopped_or_missing_container_is_not_found_and_writes_nothing() {
    let dir = tempdir();
    let stopped = env_var("MTN_TEST_DOCKER_STOPPED");
    for name in [stopped.as_str(), "mtn_no_such_container"] {
        // exec, stats and a database dump: exit 1, kind not_found, nothing written.
        let r = run(
            dir.path(),
            &format!(r#"container_exec("{name}", "true", []);"#),
            &["--allow-exec", &format!("{name}:true")],
        );
        r.expect_code(1);
        assert!(r.all().contains("not_found"), "{}", r.all());
        assert!(r.all().contains(name), "{}", r.all());
        let url = format!("postgres://postgres:pw@container:{name}/postgres");
        let r = run(
            dir.path(),
            &format!(r#"dump_db("{url}", #{{ to: "out/x.sql.gz" }});"#),
            &[],
        );
        r.expect_code(1);
        assert!(r.all().contains("not_found"), "{}", r.all());
        assert!(!dir.path().join("out").exists(), "nothing written");
        let r = run(
            dir.path(),
            &format!(
                r#"try {{ container_stats("{name}"); }} catch (e) {{ print("RESULT " + e.to_json()); }}"#
            ),
            &[],
        );
        assert_eq!(json_after(&r, "RESULT ")["kind"], "not_found");
    }
    let r = run(dir.path(), r#"container("mtn_no_such_container");"#, &[]);
    r.expect_code(1);
    assert!(r.all().contains("no container named"), "{}", r.all());
}

/// No engine at DOCKER_HOST (a missing socket, or nothing listening): kind `network` with the
/// address and a hint, exit 1, nothing written — not a "bad argument" the user cannot fix.
#[test]
fn no_engine_is_a_network_error_naming_the_address() {
    let dir = tempdir();
    let missing = format!("unix://{}/no-docker.sock", dir.path().display());
    let port = free_port();
    let refused = format!("tcp://127.0.0.1:{port}");
    for host in [missing.as_str(), refused.as_str()] {
        let r = run_script_env(
            dir.path(),
            "t.rhai",
            r#"try { containers(); } catch (e) { print("RESULT " + e.to_json()); }
               dump_db("postgres://postgres:pw@container:db/postgres", #{ to: "out/x.sql.gz" });"#,
            &[],
            &[("DOCKER_HOST", host)],
        );
        r.expect_code(1);
        let v = json_after(&r, "RESULT ");
        assert_eq!(v["kind"], "network", "{host}: {v}");
        let addr = host.rsplit('/').next().unwrap_or(host);
        assert!(r.all().contains(addr), "{host}: {}", r.all());
        assert!(r.all().contains("DOCKER_HOST"), "{}", r.all());
        assert!(!dir.path().join("out").exists(), "nothing written");
    }
}

#[test]
fn restart_container_needs_policy_and_honours_dry_run() {
    let dir = tempdir();
    let web = env_var("MTN_TEST_DOCKER_WEB");
    let started = docker(&["inspect", "-f", "{{.State.StartedAt}}", &web]);
    let r = run(dir.path(), &format!(r#"restart_container("{web}");"#), &[]);
    r.expect_code(1);
    assert!(
        r.all().contains(&format!("--allow-exec {web}:@restart")),
        "{}",
        r.all()
    );
    let r = run(
        dir.path(),
        &format!(r#"print("RESULT " + restart_container("{web}").to_json());"#),
        &["--dry-run", "--allow-exec", &format!("{web}:@restart")],
    );
    r.expect_code(0);
    assert_eq!(json_after(&r, "RESULT ")["dry_run"], true);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.StartedAt}}", &web]),
        started,
        "a dry run restarts nothing"
    );
}

#[test]
fn container_postgres_dump_restore_with_the_containers_own_tools() {
    // The host's pg_dump is older than the server in the container: a host dump cannot work.
    let host = String::from_utf8_lossy(
        &Command::new("pg_dump")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    let major = env_var("MTN_TEST_DOCKER_PG_MAJOR");
    assert!(
        !host.contains(&format!(" {major}.")),
        "host pg_dump is {host}"
    );
    let db = format!("ctr_{}", std::process::id());
    ctr_psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    ctr_psql("postgres", &format!("CREATE DATABASE {db}"));
    ctr_psql(
        &db,
        "CREATE TABLE items(id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;",
    );
    let dir = tempdir();
    let url = pg_url(&db);
    let copy = pg_url(&format!("{db}_copy"));
    let r = run(
        dir.path(),
        &format!(
            r#"let d = dump_db("{url}", #{{ to: "backups/" }});
let c = dump_db("{url}", #{{ to: "backups/x.dump", format: "custom" }});
let q = db_query("{url}", "SELECT count(*) AS n, current_setting('server_version_num') AS v FROM items");
let r = restore_db(d.path, "{copy}", #{{ create: true }});
let r2 = restore_db(c.path, "{copy}", #{{ clean: true }});
let t = restore_test(d.path, "{url}", #{{ "SELECT count(*) FROM items": 500 }});
let s = db_stats("{url}");
print("RESULT " + #{{ d: d, c: c, q: q, r: r, r2: r2, t: t, s: s }}.to_json());"#
        ),
        &[],
    );
    r.expect_code(0);
    assert!(
        !r.all().contains(&env_var("MTN_TEST_DOCKER_PG_PASSWORD")),
        "{}",
        r.all()
    );
    let v = json_after(&r, "RESULT ");
    let path = v["d"]["path"].as_str().unwrap();
    assert!(path.ends_with(".sql.gz"), "{path}");
    let full = dir.path().join(path);
    assert!(full.exists());
    // The sidecar holds the file's hash; the dump is from the container's pg_dump 17.
    let side = std::fs::read_to_string(format!("{}.sha256", full.display())).unwrap();
    assert!(side.starts_with(v["d"]["sha256"].as_str().unwrap()));
    let text = Command::new("sh")
        .arg("-c")
        .arg(format!("gunzip -c '{}'", full.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("Dumped by pg_dump version {major}.")),
        "{}",
        &text[..400.min(text.len())]
    );
    assert!(text.contains("PostgreSQL database dump complete"));
    assert_eq!(v["c"]["format"], "custom");
    assert_eq!(v["q"][0]["n"], 500);
    assert!(v["q"][0]["v"].as_str().unwrap().starts_with(&major));
    assert_eq!(v["t"]["ok"], true, "{}", v["t"]);
    assert_eq!(v["t"]["dropped"], true);
    assert_eq!(
        ctr_psql(&format!("{db}_copy"), "SELECT count(*) FROM items"),
        "500"
    );
    // Queries reached the server on the container's address: its port is not published.
    assert_eq!(docker(&["port", &env_var("MTN_TEST_DOCKER_PG")]), "");
    ctr_psql("postgres", &format!("DROP DATABASE {db}_copy"));
    ctr_psql("postgres", &format!("DROP DATABASE {db}"));
}

#[test]
fn redis_info_matches_redis_cli() {
    let url = env_var("MTN_TEST_REDIS_URL");
    let port = env_var("MTN_TEST_REDIS_PORT");
    let pw = env_var("MTN_TEST_REDIS_PASSWORD");
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "--no-auth-warning",
                "-a",
                &pw,
            ])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    cli(&["SET", "k1", "v"]);
    cli(&["SET", "k2", "v", "EX", "1000"]);
    cli(&["GET", "k1"]);
    cli(&["GET", "nope"]);
    let dir = tempdir();
    let r = run(
        dir.path(),
        &format!(
            r#"print("RESULT " + #{{ i: redis_info("{url}"), p: redis_ping("{url}") }}.to_json());
redis_ping("redis://:wrong-Pass-1@127.0.0.1:{port}");"#
        ),
        &[],
    );
    r.expect_code(1);
    assert!(!r.all().contains(&pw), "{}", r.all());
    assert!(!r.all().contains("wrong-Pass-1"), "{}", r.all());
    assert!(r.all().contains("auth"), "{}", r.all());
    let v = json_after(&r, "RESULT ");
    let info = cli(&["INFO", "everything"]);
    let field = |k: &str| -> String {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{k}:")).map(str::to_string))
            .unwrap_or_default()
    };
    let i = &v["i"];
    assert_eq!(v["p"]["ok"], true);
    assert_eq!(i["version"], field("redis_version"));
    assert_eq!(i["memory"]["max_bytes"].to_string(), field("maxmemory"));
    assert_eq!(i["memory"]["policy"], field("maxmemory_policy"));
    assert_eq!(i["keyspace"]["db0"]["keys"], 2);
    assert_eq!(i["keyspace"]["db0"]["expires"], 1);
    assert_eq!(i["stats"]["hits"].to_string(), field("keyspace_hits"));
    assert_eq!(i["stats"]["misses"].to_string(), field("keyspace_misses"));
    assert_eq!(i["stats"]["hit_rate"], 50.0);
    assert_eq!(
        i["stats"]["evicted_keys"].to_string(),
        field("evicted_keys")
    );
    assert_eq!(i["persistence"]["ok"], true);
    assert_eq!(i["sections"]["server"]["tcp_port"].to_string(), port);
    // Every field redis-cli shows is in `sections`, section by section (the per-command and
    // per-error sections grow with the commands run in between, so they are left out).
    let mut section = String::new();
    let mut cli_keys: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for l in info.lines().map(str::trim) {
        if let Some(s) = l.strip_prefix("# ") {
            section = s.to_ascii_lowercase();
        } else if let Some((k, _)) = l.split_once(':') {
            cli_keys
                .entry(section.clone())
                .or_default()
                .push(k.to_string());
        }
    }
    for s in [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
    ] {
        let mut mine: Vec<String> = i["sections"][s]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut theirs = cli_keys[s].clone();
        mine.sort();
        theirs.sort();
        assert_eq!(mine, theirs, "section {s}");
    }
}

#[test]
fn cancelled_container_dump_kills_pg_dump_and_leaves_nothing() {
    let pg = env_var("MTN_TEST_DOCKER_PG");
    let db = format!("ctr_cancel_{}", std::process::id());
    ctr_psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    ctr_psql("postgres", &format!("CREATE DATABASE {db}"));
    ctr_psql(&db, "CREATE TABLE held(id int)");
    // A session holding an exclusive lock: pg_dump waits for it until the run's deadline.
    let mut holder = docker_command()
        .args([
            "exec", &pg, "psql", "-X", "-q", "-U", "postgres", "-d", &db, "-c",
        ])
        .arg("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30);")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("lock holder");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let dir = tempdir();
    let url = pg_url(&db);
    let r = run(
        dir.path(),
        &format!(r#"dump_db("{url}", #{{ to: "out/held.sql.gz" }});"#),
        &["--timeout", "3s"],
    );
    r.expect_code(124);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let top = docker(&["top", &pg]);
    assert!(
        !top.contains("pg_dump"),
        "pg_dump still runs in the container:\n{top}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = holder.kill();
    let _ = holder.wait();
    ctr_psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"),
    );
    ctr_psql("postgres", &format!("DROP DATABASE {db}"));
}
