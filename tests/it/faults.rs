//! Fault injection (issue 19's lasting suite): a TCP proxy in front of the real PostgreSQL and
//! S3 servers that resets connections mid-stream or answers 503 first, and a full disk under
//! every writer. After each fault: a clear error (or a successful retry), never a partial file
//! under a final name, never a temporary file left behind.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

#[derive(Clone, Copy)]
enum Fault {
    /// Forward, then reset both sides once this many bytes came back from the server.
    ResetAfter(usize),
    /// Answer the first N connections with `503 Slow Down` (S3's throttling reply), then forward.
    Http503(usize),
}

/// A proxy on a free loopback port in front of `upstream` (host:port).
struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: String, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, c) = (stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let n = c.fetch_add(1, Ordering::Relaxed);
                        let up = upstream.clone();
                        std::thread::spawn(move || serve(client, &up, fault, n));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            port,
            stop,
            connections,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Close with RST instead of FIN (SO_LINGER 0), as a crashed peer or a middlebox does.
fn reset(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
}

fn serve(mut client: TcpStream, upstream: &str, fault: Fault, n: usize) {
    if let Fault::Http503(first) = fault {
        if n < first {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && client.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        reset(&client);
        return;
    };
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let limit = match fault {
        Fault::ResetAfter(b) => b,
        Fault::Http503(_) => usize::MAX,
    };
    let mut server = server;
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0usize;
    loop {
        let k = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        if sent + k > limit {
            reset(&client);
            reset(&server);
            return;
        }
        if client.write_all(&buf[..k]).is_err() {
            break;
        }
        sent += k;
    }
    let _ = client.shutdown(Shutdown::Write);
}

/// Nothing of `name` in `dir`: no final file, no sidecar, no temporary.
#[track_caller]
fn nothing_left(dir: &Path, name: &str) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(name))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_connection_reset_during_a_postgres_dump_leaves_no_file() {
    let url = env_var("MTN_TEST_PG_URL");
    let port = env_var("MTN_TEST_PG_PORT");
    let db = format!("fault_{}", std::process::id());
    psql(&url, &format!("DROP DATABASE IF EXISTS {db}"));
    psql(&url, &format!("CREATE DATABASE {db}"));
    let db_url = url_with_db(&url, &db);
    psql(
        &db_url,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g*7)::text) AS v FROM generate_series(1, 200000) g",
    );
    // Every connection is cut after 256 KiB from the server: the version check passes, the dump
    // stream does not.
    let proxy = Proxy::start(format!("127.0.0.1:{port}"), Fault::ResetAfter(256 << 10));
    let through = db_url.replace(&format!(":{port}/"), &format!(":{}/", proxy.port));
    let tmp = tempdir();
    let run = run_script(
        tmp.path(),
        "d.rhai",
        &format!(r#"dump_db("{through}", #{{ to: "out/" }});"#),
        &[],
    );
    run.expect_code(1);
    let lower = run.stderr.to_lowercase();
    assert!(
        ["reset", "closed", "terminat", "lost", "eof", "unexpected"]
            .iter()
            .any(|w| lower.contains(w)),
        "the error names the broken connection: {}",
        run.stderr
    );
    assert!(
        !run.all().contains(&env_var("MTN_TEST_PG_PASSWORD")),
        "the password leaked"
    );
    assert!(proxy.connections.load(Ordering::Relaxed) >= 1);
    let out = tmp.path().join("out");
    if out.exists() {
        nothing_left(&out, "fault_");
    }
    psql(&url, &format!("DROP DATABASE {db} WITH (FORCE)"));
}

fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", env_var("MTN_TEST_S3_ACCESS_KEY")),
        ("AWS_SECRET_ACCESS_KEY", env_var("MTN_TEST_S3_SECRET_KEY")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

fn run_s3(dir: &Path, script: &str, endpoint: &str) -> Run {
    let env = s3_env(endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_script_env(dir, "s.rhai", script, &[], &env)
}

#[test]
fn s3_throttling_is_retried_and_a_persistent_503_fails_cleanly() {
    let upstream = env_var("MTN_TEST_S3_ENDPOINT")
        .trim_start_matches("http://")
        .to_string();
    let bucket = env_var("MTN_TEST_S3_BUCKET");
    let tmp = tempdir();
    let d = tmp.path();
    std::fs::write(d.join("payload.bin"), vec![7u8; 3 << 20]).unwrap();
    // Two 503s, then the real server: the upload succeeds through the retries.
    let proxy = Proxy::start(upstream.clone(), Fault::Http503(2));
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let key = format!("faults/{}/payload.bin", std::process::id());
    let run = run_s3(
        d,
        &format!(
            r#"let r = upload("payload.bin", "s3://{bucket}/{key}");
               download("s3://{bucket}/{key}", "back.bin");"#
        ),
        &endpoint,
    );
    run.expect_code(0);
    assert_eq!(
        std::fs::read(d.join("back.bin")).unwrap(),
        std::fs::read(d.join("payload.bin")).unwrap()
    );
    assert!(proxy.connections.load(Ordering::Relaxed) >= 3);
    drop(proxy);
    // 503 on every connection: a clear failure within the retry budget, no local leftovers.
    let proxy = Proxy::start(upstream, Fault::Http503(usize::MAX));
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let started = std::time::Instant::now();
    let run = run_s3(
        d,
        &format!(
            r#"download("s3://{bucket}/{key}", "again.bin", #{{ retries: 2, retry_timeout: "5s" }});"#
        ),
        &endpoint,
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("503") || run.stderr.contains("Slow"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    nothing_left(d, "again.bin");
}

#[test]
fn a_full_disk_under_every_writer_leaves_no_partial_file() {
    let tmp = tempdir();
    let d = tmp.path();
    let small = d.join("small");
    let _disk = SmallDisk::mount(&small, "512k");
    // 2 MiB of incompressible data: more than the disk holds, compressed or not.
    let mut data = vec![0u8; 2 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    std::fs::write(d.join("big.bin"), &data).unwrap();
    std::fs::create_dir(d.join("tree")).unwrap();
    std::fs::write(d.join("tree/big.bin"), &data).unwrap();
    {
        let c = rusqlite::Connection::open(d.join("app.db")).unwrap();
        c.execute_batch(
            "CREATE TABLE t(a); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 20000) INSERT INTO t SELECT hex(randomblob(64)) FROM c;",
        )
        .unwrap();
    }
    let store = d.join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(d.join("big.bin"), store.join("big.bin")).unwrap();
    let writers = [
        r#"let s = "x"; while s.len() < 2000000 { s += s; } write_file("small/w.txt", s);"#
            .to_string(),
        r#"copy("big.bin", "small/c.bin");"#.to_string(),
        r#"dump_db("sqlite://app.db", #{ to: "small/" });"#.to_string(),
        r#"export_table("sqlite://app.db", "t", "small/t.csv");"#.to_string(),
        format!(
            r#"download("file://{}/big.bin", "small/dl.bin");"#,
            store.display()
        ),
        r#"sync_dir("tree", "small/mirror");"#.to_string(),
    ];
    for script in &writers {
        let run = run_script(d, "w.rhai", script, &[]);
        run.expect_code(1);
        assert!(
            run.stderr.contains("[io]") || run.stderr.contains("No space"),
            "{script}: {}",
            run.stderr
        );
        let left: Vec<String> = walk(&small);
        // sync_dir may have created the (empty) mirror folder; nothing else may remain.
        assert!(
            left.iter().all(|f| f.ends_with("/mirror")),
            "{script} left {left:?}"
        );
    }
    // compress / decompress / rotate: the source sits on the full disk, the output does not fit.
    let _ = std::fs::remove_dir_all(small.join("mirror"));
    std::fs::write(small.join("log.txt"), &data[..300 << 10]).unwrap();
    for script in [
        r#"compress("small/log.txt", #{ level: 1 });"#,
        r#"rotate("small/log.txt", #{ copytruncate: true, keep: 2 });"#,
    ] {
        std::fs::write(small.join("filler"), vec![1u8; 150 << 10]).unwrap();
        let run = run_script(d, "w.rhai", script, &[]);
        std::fs::remove_file(small.join("filler")).unwrap();
        run.expect_code(1);
        assert_eq!(
            std::fs::read(small.join("log.txt")).unwrap(),
            &data[..300 << 10],
            "{script}: the log lost data"
        );
        let left = walk(&small);
        assert_eq!(left.len(), 1, "{script} left {left:?}");
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.display().to_string());
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn a_timed_out_postgres_statement_is_cancelled_on_the_server() {
    let url = env_var("MTN_TEST_PG_URL");
    let tag = format!("mtn_cancel_probe_{}", std::process::id());
    let tmp = tempdir();
    let started = std::time::Instant::now();
    let run = run_script(
        tmp.path(),
        "sleep.rhai",
        &format!(r#"db_query("{url}", "SELECT pg_sleep(60), '{tag}' AS tag");"#),
        &["--timeout", "1s"],
    );
    run.expect_code(124);
    assert!(started.elapsed() < Duration::from_secs(5));
    let still_running = || {
        psql(&url, &format!("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{tag}%' AND pid <> pg_backend_pid()"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while still_running() != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "pg_sleep(60) still runs on the server after mtn timed out"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
