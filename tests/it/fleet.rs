//! Fleet tests (issue 16): the `run` map a script reads, and jobs that run once per slot across
//! several real daemons sharing the real PostgreSQL that tests/env/20-postgres.sh starts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::daemon::{http, Daemon};
use crate::support::{free_port, mtn, psql, run_script, tempdir, unique, url_with_db, Run};

/// The host name the daemon reports by default (`run.host`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn run_map_in_mtn_run_has_no_job_and_no_slot() {
    let tmp = tempdir();
    let r = run_script(
        tmp.path(),
        "t.rhai",
        "print(`job=${run.job} slot=${run.slot} attempt=${run.attempt} trigger=${run.trigger} host=${run.host} id=${run.id}`);\n",
        &[],
    );
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!(
            "job= slot= attempt=0 trigger=cli host={} id=0",
            hostname()
        )),
        "{}",
        r.all()
    );
}

#[test]
fn run_map_in_the_daemon_names_the_slot_not_the_start_and_counts_retries() {
    let tmp = tempdir();
    let dir = tmp.path();
    // Attempt 0 fails; the retry (1 s later) writes what it sees. The slot stays the schedule
    // time of the first attempt, while the retry starts a second or more after it.
    std::fs::write(
        dir.join("job.rhai"),
        r#"if run.attempt == 0 { throw "first attempt fails"; }
write_file(`${vars.out}/run.txt`, `${run.job}|${run.slot}|${run.slot_unix}|${run.attempt}|${run.trigger}|${run.host}|${run.id}`);
"#,
    )
    .unwrap();
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let mut d = Daemon::start(
        dir,
        &format!(
            "[policy]\nallow_paths = [{out:?}]\n[[job]]\nname = \"slotty\"\nscript = \"job.rhai\"\nschedule = \"* * * * * *\"\nretries = 1\nretry_delay = \"1s\"\nvars = {{ out = {out:?} }}\n"
        ),
    );
    let file = out.join("run.txt");
    let until = Instant::now() + Duration::from_secs(15);
    while !file.exists() {
        assert!(Instant::now() < until, "no run.txt\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&file).unwrap();
    d.stop();
    let f: Vec<&str> = text.split('|').collect();
    assert_eq!(f.len(), 7, "{text}");
    assert_eq!(f[0], "slotty");
    let slot = chrono::DateTime::parse_from_rfc3339(f[1]).expect("slot is RFC 3339");
    assert_eq!(slot.timestamp().to_string(), f[2]);
    assert_eq!(
        slot.timestamp_subsec_nanos(),
        0,
        "a slot is a fire time: {text}"
    );
    assert_eq!(f[3], "1");
    assert_eq!(f[4], "retry");
    assert_eq!(f[5], hostname());
    // The retry's history entry: same slot, started at least a second after it.
    let h = d.history("slotty");
    let retry = h
        .iter()
        .find(|e| e["attempt"] == 1 && e["run"].as_u64() == f[6].parse().ok())
        .unwrap_or_else(|| panic!("no retry entry {}: {h:#?}", f[6]));
    let scheduled =
        chrono::DateTime::parse_from_rfc3339(retry["scheduled"].as_str().unwrap()).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(retry["start"].as_str().unwrap()).unwrap();
    assert_eq!(scheduled, slot);
    assert!(
        start - slot >= chrono::Duration::milliseconds(900),
        "{retry}"
    );
}

// ---------------------------------------------------------------------------------------------
// Fleets of real daemons on the real PostgreSQL.

/// A database of its own for one test (tables, claims and advisory locks do not mix).
fn fresh_db(base_url: &str) -> String {
    let name = unique("mtn_fleet");
    psql(base_url, &format!("CREATE DATABASE {name}"));
    url_with_db(base_url, &name)
}

/// Files `SLOT-HOST-...` written by the test scripts, grouped by slot.
fn runs_by_slot(dir: &Path, suffix: &str) -> std::collections::BTreeMap<i64, Vec<String>> {
    let mut m: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with('.') || !n.ends_with(suffix) {
            continue;
        }
        let n = n.trim_end_matches(suffix);
        let mut parts = n.splitn(2, '-');
        let slot: i64 = parts.next().unwrap().parse().unwrap();
        m.entry(slot)
            .or_default()
            .push(parts.next().unwrap().to_string());
    }
    m
}

/// The config every host of a test fleet shares (host_id differs).
/// Daemons named `hosts` under `root`, each with an every-second job `tick` running `script`
/// (which sees the returned output folder as `vars.out`).
fn tick_fleet(root: &Path, lock: &str, hosts: &[&str], script: &str) -> (PathBuf, Vec<Daemon>) {
    let out = root.join("out");
    std::fs::create_dir(&out).unwrap();
    let job = format!(
        "[[job]]\nname = \"tick\"\nscript = \"tick.rhai\"\nschedule = \"* * * * * *\"\nvars = {{ out = {out:?} }}\n"
    );
    let daemons = hosts
        .iter()
        .map(|h| {
            let dir = root.join(h);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("tick.rhai"), script).unwrap();
            Daemon::start(&dir, &fleet_config(lock, h, &out, &job))
        })
        .collect();
    (out, daemons)
}

fn fleet_config(lock: &str, host: &str, out: &Path, jobs: &str) -> String {
    format!(
        "[policy]\nallow_paths = [{out:?}]\n\n[fleet]\nlock = {lock:?}\nhost_id = {host:?}\ncheck_every = \"1s\"\n\n{jobs}"
    )
}

fn unix_now() -> i64 {
    chrono::Local::now().timestamp()
}

#[test]
fn fleet_three_daemons_run_every_slot_exactly_once() {
    let lock = fresh_db(&crate::support::env_var("MTN_TEST_PG_URL"));
    let tmp = tempdir();
    let (out, mut daemons) = tick_fleet(
        tmp.path(),
        &lock,
        &["h1", "h2", "h3"],
        "write_file(`${vars.out}/${run.slot_unix}-${run.host}-${run.id}.run`, run.trigger);\n",
    );
    // 15 s instead of the issue's 60 s keeps the suite fast; every second is a slot, so this is
    // still 15 contested slots × 3 hosts.
    let from = unix_now() + 2;
    std::thread::sleep(Duration::from_secs(17));
    let to = unix_now() - 2;
    for d in &mut daemons {
        d.stop();
    }
    let runs = runs_by_slot(&out, ".run");
    let logs: String = daemons.iter().map(|d| d.log()).collect();
    // Every slot has one claim; it ran exactly once — unless the claim says the previous run
    // was still going (on a machine so loaded that a run took over a second: the fleet's
    // overlap rule, recorded once), then not at all. Never twice, never silently lost.
    let claims = psql(
        &lock,
        &format!("SELECT extract(epoch FROM slot)::bigint, count(*), min(outcome) FROM mtn_fleet_claims WHERE job = 'tick' AND takeover = 0 AND slot BETWEEN to_timestamp({from}) AND to_timestamp({to}) GROUP BY slot"),
    );
    let outcome: std::collections::BTreeMap<i64, (i64, String)> = claims
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, '|').collect();
            (
                f[0].parse().unwrap(),
                (f[1].parse().unwrap(), f[2].to_string()),
            )
        })
        .collect();
    let mut overlapped = 0;
    for slot in from..=to {
        let who = runs.get(&slot).cloned().unwrap_or_default();
        let (n, how) = outcome
            .get(&slot)
            .cloned()
            .unwrap_or_else(|| panic!("slot {slot} has no claim\n{claims}\n{logs}"));
        assert_eq!(n, 1, "slot {slot}: {n} claims");
        if how.starts_with("skipped: previous run still going") {
            overlapped += 1;
            assert!(who.is_empty(), "slot {slot} ran {who:?} but says {how}");
        } else {
            assert_eq!(how, "ok", "slot {slot}");
            assert_eq!(who.len(), 1, "slot {slot} ran {who:?}\n{runs:#?}\n{logs}");
        }
    }
    let n = to - from + 1;
    assert!(
        overlapped * 4 <= n,
        "{overlapped} of {n} slots overlapped\n{logs}"
    );
    // The hosts that lost a slot recorded it as skipped, naming the winner.
    let skipped: Vec<serde_json::Value> = daemons
        .iter()
        .flat_map(|d| d.history("tick"))
        .filter(|e| e["status"] == "skipped")
        .collect();
    assert!(!skipped.is_empty());
    assert!(skipped.iter().all(|e| e["error"]
        .as_str()
        .is_some_and(|t| t.starts_with("skipped: claimed by h"))));
    // And the shared history holds every host's runs (host column), one per slot.
    let shared = psql(
        &lock,
        &format!("SELECT count(*), count(DISTINCT host) FROM mtn_fleet_history WHERE job = 'tick' AND status = 'ok' AND slot BETWEEN to_timestamp({from}) AND to_timestamp({to})"),
    );
    assert!(
        shared.trim().starts_with(&format!("{}|", n - overlapped)),
        "{shared}"
    );
    let hosts = runs
        .values()
        .flatten()
        .map(|w| w.split('-').next().unwrap().to_string());
    let hosts: std::collections::BTreeSet<String> = hosts.collect();
    eprintln!("slots {from}..={to} ran on {hosts:?}");
}

#[test]
fn fleet_a_killed_host_releases_its_lock_and_its_slot_is_rerun_once() {
    let lock = fresh_db(&crate::support::env_var("MTN_TEST_PG_URL"));
    let tmp = tempdir();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Every 4 s, a run of 2 s: it marks its start, sleeps, marks its end.
    let job = format!(
        "[[job]]\nname = \"slow\"\nscript = \"slow.rhai\"\nschedule = \"*/4 * * * * *\"\ncatch_up = true\nvars = {{ out = {out:?} }}\n"
    );
    let script = "write_file(`${vars.out}/${run.slot_unix}-${run.host}-${run.id}.start`, run.trigger);\n\
                  sleep(2);\n\
                  write_file(`${vars.out}/${run.slot_unix}-${run.host}-${run.id}.done`, run.trigger);\n";
    let hosts = ["k1", "k2", "k3"];
    let mut daemons: Vec<Daemon> = hosts
        .iter()
        .map(|h| {
            let dir = tmp.path().join(h);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("slow.rhai"), script).unwrap();
            Daemon::start(&dir, &fleet_config(&lock, h, &out, &job))
        })
        .collect();
    // Wait for a run in progress, then kill -9 the host running it.
    let until = Instant::now() + Duration::from_secs(20);
    let (slot, victim) = loop {
        let starts = runs_by_slot(&out, ".start");
        let dones = runs_by_slot(&out, ".done");
        if let Some((slot, who)) = starts.iter().rev().find(|(s, _)| !dones.contains_key(s)) {
            let host = who[0].split('-').next().unwrap().to_string();
            std::thread::sleep(Duration::from_millis(300));
            break (*slot, host);
        }
        assert!(Instant::now() < until, "no run started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let i = hosts.iter().position(|h| *h == victim).unwrap();
    daemons[i].kill9();
    // Its lock is released with its connection: another host re-runs the slot (catch_up,
    // trigger catch_up) and the next slots go on.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let dones = runs_by_slot(&out, ".done");
        let rerun = dones.get(&slot).is_some_and(|w| !w.is_empty());
        let later = dones.keys().any(|s| *s > slot);
        if rerun && later {
            break;
        }
        assert!(
            Instant::now() < until,
            "slot {slot} not re-run after killing {victim}\nstarts {:#?}\ndones {dones:#?}\n{}",
            runs_by_slot(&out, ".start"),
            daemons.iter().map(|d| d.log()).collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Never twice more: give the survivors time to find the slot again, then count.
    std::thread::sleep(Duration::from_secs(4));
    for d in &mut daemons {
        d.stop();
    }
    let logs: String = daemons.iter().map(|d| d.log()).collect();
    let starts = runs_by_slot(&out, ".start");
    let at_slot = &starts[&slot];
    assert_eq!(at_slot.len(), 2, "slot {slot}: {at_slot:?}\n{logs}");
    assert!(at_slot.iter().any(|w| w.starts_with(&victim)));
    let rerun_host = at_slot.iter().find(|w| !w.starts_with(&victim)).unwrap();
    let rerun_trigger =
        std::fs::read_to_string(out.join(format!("{slot}-{rerun_host}.done"))).unwrap();
    assert_eq!(rerun_trigger, "catch_up");
    // Reported once, by one host, naming the dead one.
    let reports = logs
        .lines()
        .filter(|l| l.contains("never finished") && l.contains(&victim))
        .count();
    assert_eq!(reports, 1, "{logs}");
    let claims = psql(
        &lock,
        &format!("SELECT takeover, host, outcome FROM mtn_fleet_claims WHERE job = 'slow' AND slot = to_timestamp({slot}) ORDER BY takeover"),
    );
    let rows: Vec<&str> = claims.lines().collect();
    assert_eq!(rows.len(), 2, "{claims}");
    assert!(
        rows[0].starts_with(&format!("0|{victim}|abandoned")),
        "{claims}"
    );
    assert!(
        rows[1].starts_with("1|") && rows[1].ends_with("|ok"),
        "{claims}"
    );
    // Every other slot ran at most once (a slot may be skipped fleet-wide while the re-run
    // holds the job's lock).
    for (s, who) in &starts {
        if *s != slot {
            assert!(who.len() <= 1, "slot {s} ran {who:?}\n{logs}");
        }
    }
    let shared = psql(
        &lock,
        &format!("SELECT host, status FROM mtn_fleet_history WHERE job = 'slow' AND slot = to_timestamp({slot}) ORDER BY id"),
    );
    assert!(shared.contains(&format!("{victim}|abandoned")), "{shared}");
}

#[test]
fn fleet_two_run_once_started_together_run_once() {
    let lock = fresh_db(&crate::support::env_var("MTN_TEST_PG_URL"));
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(
        dir.join("t.rhai"),
        "write_file(`./ran-${run.host}`, `${run.job} ${run.slot} ${run.trigger}`);\nsleep(1);\n",
    )
    .unwrap();
    let spawn = |host: &str| {
        mtn()
            .current_dir(dir)
            .args(["run", "t.rhai", "--once", "nightly", "--lock", &lock])
            .args(["--slot", "2026-11-29T02:00:00Z", "--host-id", host])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn("a");
    let b = spawn("b");
    let (a, b) = (
        crate::support::Run::from(a.wait_with_output().unwrap()),
        crate::support::Run::from(b.wait_with_output().unwrap()),
    );
    a.expect_code(0);
    b.expect_code(0);
    let ran: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("ran-"))
        .collect();
    assert_eq!(ran.len(), 1, "{ran:?}\n{a:?}\n{b:?}");
    let (winner, loser) = if ran[0] == "ran-a" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let other = if ran[0] == "ran-a" { "a" } else { "b" };
    assert!(
        loser
            .stdout
            .contains(&format!("skipped: claimed by {other}")),
        "{loser:?}"
    );
    assert!(!winner.stdout.contains("skipped"), "{winner:?}");
    let text = std::fs::read_to_string(dir.join(&ran[0])).unwrap();
    let slot = chrono::DateTime::parse_from_rfc3339(text.split(' ').nth(1).unwrap()).unwrap();
    assert_eq!(slot.timestamp(), 1_795_917_600, "{text}");
    assert!(
        text.starts_with("nightly ") && text.ends_with(" once"),
        "{text}"
    );
    // Recorded: the claim finished ok and the run is in the shared history.
    let claim = psql(
        &lock,
        "SELECT host, outcome FROM mtn_fleet_claims WHERE job = 'nightly'",
    );
    assert_eq!(claim.trim(), format!("{other}|ok"));
    let shared = psql(
        &lock,
        "SELECT host, trigger, status FROM mtn_fleet_history WHERE job = 'nightly'",
    );
    assert_eq!(shared.trim(), format!("{other}|once|ok"));
    // The same slot again: skipped, exit 0; a missing lock is a usage error.
    let again = Run::from(
        mtn()
            .current_dir(dir)
            .args(["run", "t.rhai", "--once", "nightly", "--lock", &lock])
            .args(["--slot", "1795917600"])
            .output()
            .unwrap(),
    );
    again.expect_code(0);
    assert!(
        again
            .stdout
            .contains(&format!("skipped: claimed by {other}")),
        "{again:?}"
    );
    let no_lock = Run::from(
        mtn()
            .current_dir(dir)
            .args(["run", "t.rhai", "--once", "nightly"])
            .output()
            .unwrap(),
    );
    no_lock.expect_code(2);
    assert!(
        no_lock.stderr.contains("--once needs the lock database"),
        "{no_lock:?}"
    );
}

/// A private PostgreSQL cluster this test may stop and start (the shared one serves other
/// tests): initdb as the `postgres` user (initdb refuses root), trust auth on loopback.
struct PrivatePg {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (tests/env/20-postgres.sh installs them)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        let bin = versions.pop().expect("an initdb under /usr/lib/postgresql");
        let dir = tempdir();
        let data = dir.path().join("data");
        let chown = |p: &Path| {
            let ok = std::process::Command::new("chown")
                .args(["postgres:", &p.to_string_lossy()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown postgres {}", p.display());
        };
        chown(dir.path());
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args([
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePg {
            bin,
            data,
            port: free_port(),
            _dir: dir,
        };
        pg.ctl_start();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, args: &[&str]) {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data.to_string_lossy(), "-w"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl_start(&self) {
        let sock = self.data.parent().unwrap().to_string_lossy().to_string();
        let log = self.data.parent().unwrap().join("server.log");
        self.ctl(&[
            "-l",
            &log.to_string_lossy(),
            "-o",
            &format!(
                "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port
            ),
            "start",
        ]);
    }

    fn stop(&self) {
        self.ctl(&["-m", "fast", "stop"]);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                &self.data.to_string_lossy(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http(port, "GET", "/metrics")?;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn fleet_no_run_starts_without_a_claim_while_the_lock_database_is_down() {
    let pg = PrivatePg::start();
    let lock = pg.url();
    let tmp = tempdir();
    let (out, mut daemons) = tick_fleet(
        tmp.path(),
        &lock,
        &["o1", "o2"],
        "write_file(`${vars.out}/${run.slot_unix}-${run.host}.run`, \"\");\n",
    );
    let wait_runs = |after: i64, what: &str, daemons: &[Daemon]| {
        let until = Instant::now() + Duration::from_secs(15);
        while !runs_by_slot(&out, ".run").keys().any(|s| *s > after) {
            assert!(
                Instant::now() < until,
                "{what}\n{}",
                daemons.iter().map(|d| d.log()).collect::<String>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_runs(0, "no run before the outage", &daemons);
    pg.stop();
    let down_from = unix_now();
    // 6 s of outage (the issue says 10; every second is a slot, 6 is plenty and keeps the
    // suite fast).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(metric(daemons[0].port, "mtn_fleet_db_up"), Some(0.0));
    std::thread::sleep(Duration::from_secs(3));
    let errors = metric(daemons[0].port, "mtn_fleet_claims_total{result=\"error\"}").unwrap();
    assert!(errors >= 2.0, "{errors}");
    let down_to = unix_now();
    pg.ctl_start();
    wait_runs(
        down_to + 1,
        "runs did not resume after the database returned",
        &daemons,
    );
    std::thread::sleep(Duration::from_secs(1));
    for d in &mut daemons {
        d.stop();
    }
    let logs: String = daemons.iter().map(|d| d.log()).collect();
    let runs = runs_by_slot(&out, ".run");
    // Nothing ran while the database was down (a slot fired just before the stop may still
    // have been claimed in time: allow the first second).
    let during: Vec<_> = runs.range(down_from + 1..down_to).collect();
    assert!(during.is_empty(), "ran without a claim: {during:?}\n{logs}");
    // Every run has its claim, by the host that ran it.
    let claims = psql(
        &lock,
        "SELECT extract(epoch FROM slot)::bigint, host FROM mtn_fleet_claims WHERE job = 'tick' AND takeover = 0",
    );
    for (slot, who) in &runs {
        assert_eq!(who.len(), 1, "slot {slot} ran {who:?}");
        assert!(
            claims.lines().any(|l| l == format!("{slot}|{}", who[0])),
            "slot {slot} by {who:?} has no claim\n{claims}"
        );
    }
    assert!(logs.contains("unreachable"), "{logs}");
    assert!(logs.contains("no run starts without a claim"), "{logs}");
    assert!(logs.contains("reachable again"), "{logs}");
    let skipped = daemons[0]
        .history("tick")
        .into_iter()
        .filter(|e| {
            e["error"]
                .as_str()
                .is_some_and(|t| t.starts_with("skipped: no claim"))
        })
        .count();
    assert!(skipped >= 2, "{logs}");
}

#[test]
fn fleet_kubernetes_manifest_matches_the_schemas() {
    let validator = crate::support::env_var("MTN_TEST_KUBERNETES_VALIDATE");
    let manifest = crate::support::repo().join("deploy/kubernetes-fleet.yaml");
    let out = std::process::Command::new(&validator)
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| panic!("{validator}: {e} (tests/env/55-deploy.sh installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for r in [
        "configmap/mtn-fleet-config",
        "deployment/mtn-daemon",
        "cronjob/mtn-hourly-once",
    ] {
        assert!(text.contains(&format!("passed for resource {r}")), "{text}");
    }
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    assert!(yaml.contains("replicas: 2") && yaml.contains("--once hourly"));
    // The config in the ConfigMap is one mtn accepts (the [fleet] table and the job).
    let toml_text: String = yaml
        .split("mtn.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let tmp = tempdir();
    std::fs::write(tmp.path().join("mtn.toml"), &toml_text).unwrap();
    let r = Run::from(
        mtn()
            .current_dir(tmp.path())
            .args(["check", "mtn.toml"])
            .output()
            .unwrap(),
    );
    // Only the script is missing here (it lives in another ConfigMap).
    let all = r.all();
    let problems: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("invalid config"))
        .collect();
    assert_eq!(problems.len(), 1, "{}", r.all());
    assert!(
        problems[0].contains("script /scripts/nightly.rhai does not exist"),
        "{}",
        r.all()
    );
}
