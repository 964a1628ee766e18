//! Fleet tests (issue 16): the `run` map a script reads.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, mtn, run_script, tempdir};

/// The host name the daemon reports by default (`run.host`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// One `mtn daemon` in its own folder (state dir `.mtn`, its own port), killed on drop.
#[allow(dead_code)]
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
}

impl Daemon {
    /// Write `dir/mtn.toml` (listen and state_dir prepended to `config`) and start the daemon.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        let port = free_port();
        std::fs::create_dir_all(dir).unwrap();
        let text = format!("listen = \"127.0.0.1:{port}\"\nstate_dir = \".mtn\"\n{config}");
        std::fs::write(dir.join("mtn.toml"), text).unwrap();
        let child = mtn()
            .current_dir(dir)
            .args(["daemon", "--config", "mtn.toml"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
            .spawn()
            .expect("start mtn daemon");
        let d = Daemon {
            child: Some(child),
            dir: dir.to_path_buf(),
            port,
        };
        let until = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "daemon did not start:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn history(&self, job: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join(".mtn/history").join(format!("{job}.jsonl")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// SIGTERM, then wait (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let until = Instant::now() + Duration::from_secs(15);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// kill -9: no clean-up of any kind.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
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
