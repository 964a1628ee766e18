//! The daemon harness of the daemon and fleet tests: a real `mtn daemon` in its own folder (state
//! dir `.mtn`, its own port, stderr in `daemon.log`), its HTTP endpoints, its history, stopped
//! by a signal or killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, mtn};

/// How long a daemon may take to answer /healthz after its start, and to exit after SIGTERM
/// (generous: the suite runs many tests at once on two cores).
const START: Duration = Duration::from_secs(15);
const EXIT: Duration = Duration::from_secs(15);

pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
}

impl Daemon {
    /// Write `dir/mtn.toml` (`listen` and `state_dir` prepended to `config`) and start the daemon.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        let port = free_port();
        std::fs::create_dir_all(dir).unwrap();
        let text = format!("listen = \"127.0.0.1:{port}\"\nstate_dir = \".mtn\"\n{config}");
        std::fs::write(dir.join("mtn.toml"), text).unwrap();
        Self::spawn(dir, port)
    }

    /// Start `mtn daemon --config mtn.toml` on the config already in `dir` (e.g. a restart).
    pub fn spawn(dir: &Path, port: u16) -> Daemon {
        Self::spawn_args(dir, port, &[])
    }

    /// The same with extra arguments (e.g. `--log-format json`); returns once /healthz answers.
    pub fn spawn_args(dir: &Path, port: u16, args: &[&str]) -> Daemon {
        let child = mtn()
            .current_dir(dir)
            .args(["daemon", "--config", "mtn.toml"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
            .spawn()
            .expect("start mtn daemon");
        let d = Daemon {
            child: Some(child),
            dir: dir.to_path_buf(),
            port,
        };
        let until = Instant::now() + START;
        while http(port, "GET", "/healthz").is_none() {
            assert!(Instant::now() < until, "daemon did not start:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.port, "GET", path).unwrap_or_else(|| panic!("GET {path} failed\n{}", self.log()))
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status").1).expect("status json")
    }

    pub fn job_status(&self, job: &str) -> Value {
        self.status()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == job)
            .cloned()
            .unwrap_or_else(|| panic!("no job {job} in /status"))
    }

    pub fn history(&self, job: &str) -> Vec<Value> {
        history(&self.dir, job)
    }

    /// Wait until `f` holds for the job's history, or fail with the log.
    pub fn wait_history(
        &self,
        job: &str,
        secs: f64,
        what: &str,
        f: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let h = self.history(job);
            if f(&h) {
                return h;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}\nhistory of {job}: {h:#?}\n--- log\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The token the daemon created in its state dir.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join(".mtn/trigger.token"))
            .expect("trigger.token in the state dir")
            .trim()
            .to_string()
    }

    /// `POST /trigger/{job}` with the token, as `mtn trigger` sends it; returns the status code.
    pub fn trigger(&self, job: &str) -> u16 {
        let auth = format!("Authorization: Bearer {}", self.token());
        http_with(self.port, "POST", &format!("/trigger/{job}"), &[&auth])
            .unwrap_or_else(|| panic!("POST /trigger/{job} failed\n{}", self.log()))
            .0
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("a running daemon").id() as i32;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// SIGTERM and wait for the exit; returns the exit code and how long it took. Fails the
    /// test when the daemon is still running after 15 s.
    pub fn terminate(&mut self) -> (i32, Duration) {
        self.sigterm_and_wait()
            .unwrap_or_else(|| panic!("daemon did not exit after SIGTERM\n{}", self.log()))
    }

    /// SIGTERM, then wait (SIGKILL after 15 s): for tests that check what the daemon left, not
    /// how it stopped.
    pub fn stop(&mut self) {
        let _ = self.sigterm_and_wait();
    }

    /// kill -9: no clean-up of any kind.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The exit code and the time from SIGTERM to the exit; None when the daemon was not
    /// running or did not exit within 15 s (then it is killed).
    fn sigterm_and_wait(&mut self) -> Option<(i32, Duration)> {
        self.child.as_ref()?;
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        let mut child = self.child.take()?;
        while t.elapsed() < EXIT {
            if let Some(s) = child.try_wait().unwrap() {
                return Some((s.code().unwrap_or(-1), t.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The history entries of `job` in the state dir `.mtn` under `dir` (lines that do not parse
/// are passed over: a line being written).
pub fn history(dir: &Path, job: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(".mtn/history").join(format!("{job}.jsonl")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A minimal HTTP/1.1 client (Connection: close) so the test checks the daemon's own server.
pub fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    http_with(port, method, path, &[])
}

/// A raw HTTP/1.1 request with extra headers (`Name: value` lines).
pub fn http_with(port: u16, method: &str, path: &str, headers: &[&str]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}
