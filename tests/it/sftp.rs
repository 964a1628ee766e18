//! sftp:// targets against the private OpenSSH server of tests/env/85-sftp.sh. Files are read
//! back and listed with OpenSSH's own `sftp` client, never through mtn's code.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

struct Server {
    port: String,
    user: String,
    dir: String,
    key: String,
    known_hosts: String,
}

fn server() -> Server {
    Server {
        port: env_var("MTN_TEST_SFTP_PORT"),
        user: env_var("MTN_TEST_SFTP_USER"),
        dir: env_var("MTN_TEST_SFTP_DIR"),
        key: env_var("MTN_TEST_SFTP_KEY"),
        known_hosts: env_var("MTN_TEST_SFTP_KNOWN_HOSTS"),
    }
}

impl Server {
    /// A fresh folder on the server: (URL, local path of the same folder).
    fn folder(&self, name: &str) -> (String, PathBuf) {
        let sub = format!("{name}-{}-{}", std::process::id(), nanos());
        let url = format!(
            "sftp://{}@127.0.0.1:{}{}/{sub}/",
            self.user, self.port, self.dir
        );
        (url, Path::new(&self.dir).join(sub))
    }
    /// The connection options every script passes.
    fn opts(&self) -> String {
        format!(
            r#"ssh_key: "{}", known_hosts: "{}""#,
            self.key, self.known_hosts
        )
    }
    /// OpenSSH's sftp in batch mode with the same key and known_hosts.
    fn sftp(&self, batch: &str) -> std::process::Output {
        let mut c = Command::new("sftp");
        c.args(["-q", "-b", "-", "-P", &self.port, "-i", &self.key])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .arg(format!("{}@127.0.0.1", self.user))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("run sftp");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A sparse file of `mib` MiB with some random blocks, made in milliseconds.
fn big_file(path: &Path, mib: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = fs::File::create(path).unwrap();
    f.set_len(mib * 1024 * 1024).unwrap();
    let noise = fs::read("/proc/self/stat").unwrap();
    for i in 0..mib {
        f.seek(SeekFrom::Start(i * 1024 * 1024 + i * 7)).unwrap();
        f.write_all(&noise).unwrap();
        f.write_all(&i.to_le_bytes()).unwrap();
    }
}

#[test]
fn round_trips_empty_small_and_large_files_read_back_by_openssh() {
    let s = server();
    let (url, remote_dir) = s.folder("rt");
    let dir = tempdir();
    fs::write(dir.path().join("empty.bin"), b"").unwrap();
    fs::write(dir.path().join("small.txt"), b"hello over sftp\n").unwrap();
    big_file(&dir.path().join("large.bin"), 300);
    let o = s.opts();
    let script = format!(
        r#"
for n in ["empty.bin", "small.txt", "large.bin"] {{
    let u = upload(n, "{url}", #{{ {o} }});
    print(`UP ${{n}} ${{u.bytes}} ${{u.sha256}}`);
}}
print("LIST " + #{{ l: list_remote("{url}", #{{ checksums: true, {o} }}) }}.to_json());
for n in ["empty.bin", "small.txt", "large.bin"] {{
    let d = download("{url}" + n, "back/", #{{ {o} }});
    print(`DOWN ${{n}} ${{d.verified}}`);
}}
"#
    );
    let run = run_script(dir.path(), "rt.rhai", &script, &[]);
    run.expect_code(0);
    let all = run.all();
    let list = json_after(&run, "LIST ")["l"].clone();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["empty.bin", "large.bin", "small.txt"], "{list}");
    for n in ["empty.bin", "small.txt", "large.bin"] {
        let local = dir.path().join(n);
        let sha = sha256_of(&local);
        assert!(all.contains(&format!("DOWN {n} sha256")), "{all}");
        assert_eq!(sha256_of(&dir.path().join("back").join(n)), sha, "{n}");
        // OpenSSH's client fetches the file and its sidecar.
        let got = dir.path().join(format!("openssh-{n}"));
        let out = s.sftp(&format!(
            "get {}/{n} {}\nget {}/{n}.sha256 {}.sha256\n",
            remote_dir.display(),
            got.display(),
            remote_dir.display(),
            got.display()
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(sha256_of(&got), sha, "{n} via sftp");
        let side = fs::read_to_string(format!("{}.sha256", got.display())).unwrap();
        assert_eq!(side, format!("{sha}  {n}\n"));
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["key"].as_str().unwrap().ends_with(n))
            .unwrap();
        assert_eq!(entry["sha256"], sha.as_str());
    }
    // Nothing temporary is left on the server.
    let leftovers: Vec<_> = fs::read_dir(&remote_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A corrupted object is refused on download and nothing is written locally.
    fs::write(remote_dir.join("small.txt"), b"HELLO over sftp\n").unwrap();
    let run = run_script(
        dir.path(),
        "bad.rhai",
        &format!(r#"download("{url}small.txt", "again.txt", #{{ {o} }});"#),
        &[],
    );
    run.expect_code(1);
    assert!(run.all().contains("stored checksum"), "{}", run.all());
    assert!(!dir.path().join("again.txt").exists());
    let _ = fs::remove_dir_all(&remote_dir);
}

#[test]
fn unknown_changed_and_mispinned_host_keys_are_refused_with_the_fingerprint() {
    let s = server();
    let fp = env_var("MTN_TEST_SFTP_HOST_FP");
    let (url, _) = s.folder("hk");
    let dir = tempdir();
    fs::write(dir.path().join("a.txt"), b"x").unwrap();
    fs::write(dir.path().join("empty_known_hosts"), b"").unwrap();
    // A known_hosts entry for this host and port with another ed25519 key.
    let other = fs::read_to_string(format!("{}.pub", env_var("MTN_TEST_SFTP_OTHER_KEY"))).unwrap();
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    fs::write(
        dir.path().join("changed_known_hosts"),
        format!("[127.0.0.1]:{} {} {}\n", s.port, other[0], other[1]),
    )
    .unwrap();
    let key = &s.key;
    for (opts, expect) in [
        (
            r#"known_hosts: "empty_known_hosts""#.to_string(),
            "unknown host key",
        ),
        (
            r#"known_hosts: "changed_known_hosts""#.to_string(),
            "HOST KEY CHANGED",
        ),
        (
            r#"host_key: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA""#.to_string(),
            "not the pinned host_key",
        ),
    ] {
        let run = run_script(
            dir.path(),
            "hk.rhai",
            &format!(r#"upload("a.txt", "{url}", #{{ ssh_key: "{key}", {opts} }});"#),
            &[],
        );
        run.expect_code(1);
        let all = run.all();
        assert!(all.contains(expect), "{opts}: {all}");
        assert!(
            all.contains(&fp),
            "{opts}: the message must show the key: {all}"
        );
    }
    // The right pin works without any known_hosts file.
    let run = run_script(
        dir.path(),
        "pin.rhai",
        &format!(r#"upload("a.txt", "{url}", #{{ ssh_key: "{key}", host_key: "{fp}" }});"#),
        &[],
    );
    run.expect_code(0);
}

#[test]
fn wrong_key_and_wrong_password_are_refused_without_echoing_secrets() {
    let s = server();
    let (url, remote_dir) = s.folder("auth");
    let dir = tempdir();
    fs::write(dir.path().join("a.txt"), b"x").unwrap();
    let kh = &s.known_hosts;
    let other = env_var("MTN_TEST_SFTP_OTHER_KEY");
    let run = run_script(
        dir.path(),
        "k.rhai",
        &format!(r#"upload("a.txt", "{url}", #{{ ssh_key: "{other}", known_hosts: "{kh}" }});"#),
        &[],
    );
    run.expect_code(1);
    assert!(run.all().contains("authentication as"), "{}", run.all());

    let env = [
        ("SFTP_PW", "Wrong-Secret-4711"),
        ("KEY_PW", "Bad-Phrase-0815"),
    ];
    let run = run_script_env(
        dir.path(),
        "p.rhai",
        &format!(
            r#"upload("a.txt", "{url}", #{{ password: secret("SFTP_PW"), known_hosts: "{kh}" }});"#
        ),
        &[],
        &env,
    );
    run.expect_code(1);
    assert!(run.all().contains("authentication as"), "{}", run.all());
    assert!(!run.all().contains("Wrong-Secret-4711"), "{}", run.all());

    let enc = env_var("MTN_TEST_SFTP_KEY_ENC");
    let run = run_script_env(
        dir.path(),
        "e.rhai",
        &format!(
            r#"upload("a.txt", "{url}", #{{ ssh_key: "{enc}", ssh_key_passphrase: secret("KEY_PW"), known_hosts: "{kh}" }});"#
        ),
        &[],
        &env,
    );
    run.expect_code(1);
    assert!(!run.all().contains("Bad-Phrase-0815"), "{}", run.all());

    // The right password and the right passphrase work.
    let pw = env_var("MTN_TEST_SFTP_PASSWORD");
    let phrase = env_var("MTN_TEST_SFTP_KEY_PASSPHRASE");
    let ok_env = [("SFTP_PW", pw.as_str()), ("KEY_PW", phrase.as_str())];
    let run = run_script_env(
        dir.path(),
        "ok.rhai",
        &format!(
            r#"upload("a.txt", "{url}", #{{ password: secret("SFTP_PW"), known_hosts: "{kh}" }});
upload("a.txt", "{url}b.txt", #{{ ssh_key: "{enc}", ssh_key_passphrase: secret("KEY_PW"), known_hosts: "{kh}" }});"#
        ),
        &[],
        &ok_env,
    );
    run.expect_code(0);
    assert!(!run.all().contains(&pw));
    assert_eq!(fs::read(remote_dir.join("b.txt")).unwrap(), b"x");
    let _ = fs::remove_dir_all(&remote_dir);
}

/// sshd and every session process it forked.
fn kill_tree(pid: u32) {
    let mut kids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) {
            let after = stat.rsplit(')').next().unwrap_or("");
            let ppid: u32 = after
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            if ppid == pid {
                kids.push(p);
            }
        }
    }
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    for k in kids {
        kill_tree(k);
    }
}

fn own_sshd() -> (Child, u16) {
    let (child, port, _) = own_sshd_with(&[]);
    (child, port)
}

/// A disposable sshd with the test config plus `-o` options: (process, port, its log file).
fn own_sshd_with(options: &[&str]) -> (Child, u16, PathBuf) {
    let port = free_port();
    let dir = tempdir().keep();
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.args([
        "-D",
        "-f",
        &env_var("MTN_TEST_SFTP_CONFIG"),
        "-p",
        &port.to_string(),
    ])
    .arg("-o")
    .arg(format!("PidFile={}", dir.join("pid").display()))
    .arg("-E")
    .arg(dir.join("log"));
    for o in options {
        cmd.arg("-o").arg(o);
    }
    let child = cmd.spawn().expect("start sshd");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port, dir.join("log"))
}

/// An upload flushes the file to the server's disk as it goes through a second SFTP session of
/// the same connection (docs/storage.md), and a server that allows one session per connection
/// still gets the whole file through the one.
#[test]
fn uploads_flush_through_a_second_sftp_session_and_do_without_when_refused() {
    let s = server();
    let fp = env_var("MTN_TEST_SFTP_HOST_FP");
    let dir = tempdir();
    big_file(&dir.path().join("big.bin"), 200);
    let sha = sha256_of(&dir.path().join("big.bin"));
    for (sessions, opened) in [("10", 2), ("1", 1)] {
        let (mut sshd, port, log) = own_sshd_with(&[&format!("MaxSessions={sessions}")]);
        let sub = format!("flush-{sessions}-{}-{}", std::process::id(), nanos());
        let remote_dir = Path::new(&s.dir).join(&sub);
        let url = format!("sftp://{}@127.0.0.1:{port}{}/{sub}/", s.user, s.dir);
        let run = run_script(
            dir.path(),
            "flush.rhai",
            &format!(
                r#"let u = upload("big.bin", "{url}", #{{ ssh_key: "{}", host_key: "{fp}" }}); print(`SHA ${{u.sha256}}`);"#,
                s.key
            ),
            &[],
        );
        kill_tree(sshd.id());
        let _ = sshd.wait();
        run.expect_code(0);
        assert!(run.all().contains(&format!("SHA {sha}")), "{}", run.all());
        assert_eq!(
            sha256_of(&remote_dir.join("big.bin")),
            sha,
            "MaxSessions={sessions}"
        );
        let log = fs::read_to_string(&log).unwrap();
        assert_eq!(
            log.matches("Starting session: ").count(),
            opened,
            "MaxSessions={sessions}: {log}"
        );
        let _ = fs::remove_dir_all(&remote_dir);
    }
}

#[test]
fn server_killed_mid_upload_leaves_nothing_under_the_final_name() {
    let s = server();
    let (mut sshd, port) = own_sshd();
    let fp = env_var("MTN_TEST_SFTP_HOST_FP");
    let sub = format!("kill-{}-{}", std::process::id(), nanos());
    let remote_dir = Path::new(&s.dir).join(&sub);
    let url = format!("sftp://{}@127.0.0.1:{port}{}/{sub}/", s.user, s.dir);
    let dir = tempdir();
    big_file(&dir.path().join("big.bin"), 2048);
    let script = dir.path().join("k.rhai");
    fs::write(
        &script,
        format!(
            r#"upload("big.bin", "{url}", #{{ ssh_key: "{}", host_key: "{fp}", retries: 1, retry_timeout: "30s" }});"#,
            s.key
        ),
    )
    .unwrap();
    let run = mtn()
        .current_dir(dir.path())
        .arg("run")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the upload is under way (its temporary file grows), then kill the server.
    let start = Instant::now();
    loop {
        let growing = fs::read_dir(&remote_dir).ok().and_then(|rd| {
            rd.flatten()
                .find(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .and_then(|e| e.metadata().ok())
                .filter(|m| m.len() > 8 * 1024 * 1024)
        });
        if growing.is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the upload never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_tree(sshd.id());
    let killed = Instant::now();
    let _ = sshd.wait();
    let out = run.wait_with_output().unwrap();
    // The writes in flight end with the connection, not after request_timeout (1 min).
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "mtn took {:?} to notice the server was gone",
        killed.elapsed()
    );
    let r = Run::from(out);
    r.expect_code(1);
    // The lost connection counts as transient: it was retried (on a new connection, refused).
    assert!(r.stderr.contains("after 2 attempts"), "{}", r.stderr);
    assert!(
        !remote_dir.join("big.bin").exists(),
        "a partial object has the final name"
    );
    assert!(!remote_dir.join("big.bin.sha256").exists());
}

#[test]
fn retention_over_sftp_deletes_old_backups_and_their_sidecars() {
    let s = server();
    let (url, remote_dir) = s.folder("ret");
    let dir = tempdir();
    let names: Vec<String> = (1..=6)
        .map(|d| format!("db_2026-01-0{d}_030000.sql.gz"))
        .collect();
    for n in &names {
        fs::write(dir.path().join(n), n.as_bytes()).unwrap();
    }
    let o = s.opts();
    let script = format!(
        r#"
for f in {names:?} {{ upload(f, "{url}", #{{ {o} }}); }}
let r = retention("{url}", #{{ keep_last: 2, max_delete_percent: 100 }}, #{{ pattern: "db_*.sql.gz", {o} }});
print(`DELETED ${{r.deleted.len()}} KEPT ${{r.kept.len()}}`);
delete_remote("{url}{last}", #{{ {o} }});
"#,
        last = names[5]
    );
    let run = run_script(dir.path(), "r.rhai", &script, &[]);
    run.expect_code(0);
    assert!(run.all().contains("DELETED 4 KEPT 2"), "{}", run.all());
    let out = s.sftp(&format!("ls -1 {}\n", remote_dir.display()));
    assert!(out.status.success());
    let mut left: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("sftp>"))
        .map(|l| l.trim().rsplit('/').next().unwrap().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [names[4].clone(), format!("{}.sha256", names[4])],
        "{left:?}"
    );
    let _ = fs::remove_dir_all(&remote_dir);
}
