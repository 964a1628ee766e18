//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod clients;
pub use clients::*;
pub mod daemon;

pub fn mtn_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mtn"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `Command` for the mtn binary with a clean, predictable environment.
pub fn mtn() -> Command {
    let mut c = Command::new(mtn_path());
    c.env_remove("MTN_LOG")
        .env("MTN_STDLIB", repo().join("stdlib"));
    c.stdin(Stdio::null());
    c
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    /// Panic with both streams when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Write `text` to `dir/name` and run it with `mtn run`, from `dir`, with extra args.
pub fn run_script(dir: &Path, name: &str, text: &str, args: &[&str]) -> Run {
    run_script_env(dir, name, text, args, &[])
}

pub fn run_script_env(
    dir: &Path,
    name: &str,
    text: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write script");
    let mut c = mtn();
    c.current_dir(dir).arg("run").arg(&path).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output().expect("run mtn"))
}

/// A helper process's stdout; panics with `what` and its stderr when it failed.
#[track_caller]
pub fn stdout_of(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sha256 of some bytes, as lowercase hex (what `upload` stores and `sha256sum` prints).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// What a script printed after `tag` on the first line that has it (e.g. `print(`DUMP ${d.path}`)`
/// with tag "DUMP "), trimmed.
#[track_caller]
pub fn text_after(run: &Run, tag: &str) -> String {
    let all = run.all();
    all.lines()
        .find_map(|l| l.split_once(tag).map(|(_, t)| t.trim().to_string()))
        .unwrap_or_else(|| panic!("no {tag} in output:\n{all}"))
}

/// The JSON a script printed after `tag` (e.g. `print("JSON:" + r.to_json())`).
#[track_caller]
pub fn json_after(run: &Run, tag: &str) -> serde_json::Value {
    let text = text_after(run, tag);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON after {tag} {text}: {e}"))
}

/// A folder laid out like the repository root (examples/app.db), so scripts run as a user
/// would run them from a checkout.
pub fn sandbox() -> tempfile::TempDir {
    let d = tempdir();
    std::fs::create_dir_all(d.path().join("examples")).unwrap();
    std::fs::copy(
        repo().join("examples/app.db"),
        d.path().join("examples/app.db"),
    )
    .unwrap();
    d
}

/// The `key` of every object in a listing a script printed (`list_remote`), in order.
pub fn keys(listing: &serde_json::Value) -> Vec<&str> {
    listing
        .as_array()
        .unwrap_or_else(|| panic!("not a listing: {listing}"))
        .iter()
        .map(|o| o["key"].as_str().expect("a key"))
        .collect()
}

/// A variable exported by tests/run.sh. Missing means the suite was not started through it:
/// that is a failure, never a skip.
pub fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with `bash tests/run.sh`, which starts the servers"
        )
    })
}

/// A name no other test (nor an earlier run) uses: `PREFIX_PID_NANOS`, e.g. for a database.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A server URL (`scheme://user:password@host:port/db`) naming database `db` instead.
pub fn url_with_db(url: &str, db: &str) -> String {
    let (server, _) = url
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("no database in the URL {url}"));
    format!("{server}/{db}")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mtn-it")
        .tempdir()
        .expect("tempdir")
}

/// mtn's temporary file (or folder) for `final_path`, if one exists now: mtn writes
/// `.NAME.mtn-<random>.tmp` next to the final name (see src/atomic.rs).
pub fn temp_of(final_path: &Path) -> Option<PathBuf> {
    let dir = final_path.parent()?;
    let prefix = format!(".{}.mtn-", final_path.file_name()?.to_string_lossy());
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let n = e.file_name().to_string_lossy().to_string();
        (n.starts_with(&prefix) && n.ends_with(".tmp")).then(|| e.path())
    })
}

/// A tmpfs of `size` (e.g. "512k") mounted at `dir` (created) for disk-full tests; unmounted on
/// drop. Needs root, as the whole suite does on these machines.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "mounting a small tmpfs at {} (the test runs as root)",
            dir.display()
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
