//! Tests for the checks capability: http_check(_all), http_request, tls_expiry, tcp_check,
//! resolve, memory/load_avg/cpu_count, notify (webhooks, email), ping, exec, track.
//!
//! Every peer is real and on loopback: an HTTP server (axum) and a TLS server (tokio-rustls,
//! certificate made by openssl) run inside this test process; the SMTP server is Python's
//! aiosmtpd (installed by tests/env/40-checks.sh) started by the test with STARTTLS and AUTH.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::support::*;

/// One request the test server received on a recording path.
#[derive(Debug, Clone)]
struct Rec {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Paths under /flip/ that currently answer 503.
static DOWN: Mutex<std::collections::BTreeSet<String>> =
    Mutex::new(std::collections::BTreeSet::new());

struct Server {
    port: u16,
    recs: Arc<Mutex<Vec<Rec>>>,
    rt: tokio::runtime::Runtime,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    /// Requests recorded under a path prefix (each test uses its own prefix).
    fn recorded(&self, prefix: &str) -> Vec<Rec> {
        self.recs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

fn headers_map(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

async fn handle(recs: Arc<Mutex<Vec<Rec>>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let headers = headers_map(req.headers());
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let reply = |status: u16, body: &str| {
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    if path.starts_with("/hook/") || path.starts_with("/hc/") || path.starts_with("/api/") {
        recs.lock().unwrap().push(Rec {
            method,
            path: path.clone(),
            headers,
            body,
        });
        if path.contains("fail500") {
            return reply(500, "internal error");
        }
        if path.starts_with("/api/") {
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(r#"{"id":42,"name":"thing"}"#))
                .unwrap();
        }
        return reply(200, "recorded");
    }
    match path.as_str() {
        "/ok" => reply(200, "status: all ok, version v1.2.3"),
        "/fail" => reply(500, "internal error"),
        "/redirect" => Response::builder()
            .status(302)
            .header("location", "/ok")
            .body(Body::empty())
            .unwrap(),
        // The same server under another name, to test that redirects obey allow_hosts.
        "/redirect-localhost" => {
            let port = headers
                .get("host")
                .and_then(|h| h.rsplit(':').next())
                .unwrap_or("80")
                .to_string();
            Response::builder()
                .status(302)
                .header("location", format!("http://localhost:{port}/ok"))
                .body(Body::empty())
                .unwrap()
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply(200, "slow")
        }
        p if p.starts_with("/flip/") => {
            if DOWN.lock().unwrap().contains(p) {
                reply(503, "down")
            } else {
                reply(200, "up")
            }
        }
        p if p.starts_with("/n/") => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if p.ends_with("/bad") {
                reply(503, "unavailable")
            } else {
                reply(200, p)
            }
        }
        _ => reply(404, "not found"),
    }
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let recs = Arc::new(Mutex::new(Vec::new()));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let r2 = recs.clone();
        let app = axum::Router::new().fallback(move |req: Request| handle(r2.clone(), req));
        rt.spawn(async move { axum::serve(listener, app).await });
        Server { port, recs, rt }
    })
}

/// Run a script whose own `assert`s do the checking; fail with its output otherwise.
#[track_caller]
fn run_ok(dir: &Path, text: &str, args: &[&str]) -> Run {
    let r = run_script(dir, "t.rhai", text, args);
    r.expect_code(0);
    r
}

#[test]
fn checks_http_statuses_redirects_contains_retries() {
    let s = server();
    let dir = tempdir();
    let script = format!(
        r#"
let ok = http_check("{ok}", #{{ contains: "all ok" }});
assert(ok.ok && ok.status == 200 && ok.error == (), `ok: ${{ok}}`);
assert(ok.body_snippet.contains("v1.2.3") && ok.tls_days_left == (), `snippet: ${{ok}}`);
assert(ok.latency_ms > 0.0, "latency");
let re = http_check("{ok}", #{{ contains: "/v\\d+\\.\\d+\\.\\d+/" }});
assert(re.ok, `regex: ${{re}}`);
let miss = http_check("{ok}", #{{ contains: "database: up" }});
assert(!miss.ok && miss.status == 200 && miss.error.contains("does not contain"), `miss: ${{miss}}`);
let bad = http_check("{fail}");
assert(!bad.ok && bad.status == 500 && bad.error.contains("500"), `500: ${{bad}}`);
let bad_ok = http_check("{fail}", #{{ expect_status: [500, 503] }});
assert(bad_ok.ok, `expected 500: ${{bad_ok}}`);
let red = http_check("{redirect}");
assert(red.ok && red.status == 200 && red.body_snippet.contains("all ok"), `followed: ${{red}}`);
let raw = http_check("{redirect}", #{{ follow_redirects: false, expect_status: 302 }});
assert(raw.ok && raw.status == 302, `not followed: ${{raw}}`);
let refused = http_check("http://127.0.0.1:{closed}/", #{{ retries: 2, retry_delay: "100ms" }});
assert(!refused.ok && refused.status == () && refused.attempts == 3, `refused: ${{refused}}`);
assert(refused.error.contains("refused"), `refused error: ${{refused.error}}`);
let post = http_check("{hook}", #{{ method: "POST", body: "ping-body", headers: #{{ "x-token": "abc" }} }});
assert(post.ok, `post: ${{post}}`);
try {{
    // Built at run time: a literal typo is caught by the check before the run (run_contract.rs).
    let o = #{{}};
    o["timout"] = 1;
    http_check("{ok}", o);
    assert(false, "typo accepted");
}} catch (e) {{
    assert(e.kind == "invalid_input" && e.message.contains("did you mean `timeout`"), `typo: ${{e}}`);
}}
try {{
    http_check("ftp://example.com/");
    assert(false, "ftp accepted");
}} catch (e) {{
    assert(e.kind == "invalid_input", `scheme: ${{e}}`);
}}
"#,
        ok = s.url("/ok"),
        fail = s.url("/fail"),
        redirect = s.url("/redirect"),
        closed = free_port(),
        hook = s.url("/hook/check-post"),
    );
    run_ok(dir.path(), &script, &[]);
    let recs = s.recorded("/hook/check-post");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].method, "POST");
    assert_eq!(recs[0].body, "ping-body");
    assert_eq!(
        recs[0].headers.get("x-token").map(String::as_str),
        Some("abc")
    );
}

#[test]
fn checks_timeout_against_silent_port() {
    // Accepts connections (the kernel completes the handshake) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempdir();
    let started = Instant::now();
    run_ok(
        dir.path(),
        &format!(
            r#"
let r = http_check("http://127.0.0.1:{port}/", #{{ timeout: "1s" }});
assert(!r.ok && r.status == () && r.error.contains("timed out"), `silent: ${{r}}`);
assert(r.latency_ms >= 900.0 && r.latency_ms < 3000.0, `latency: ${{r.latency_ms}}`);
let slow = http_check("{slow}", #{{ timeout: 0.5 }});
assert(!slow.ok && slow.error.contains("timed out"), `slow: ${{slow}}`);
"#,
            slow = server().url("/slow")
        ),
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn checks_http_check_all_500_targets_in_order() {
    let s = server();
    let dir = tempdir();
    let started = Instant::now();
    let r = run_ok(
        dir.path(),
        &format!(
            r#"
let targets = [];
for i in 0..500 {{
    if i % 50 == 7 {{
        targets.push(#{{ url: `{base}/n/${{i}}/bad`, name: `bad-${{i}}` }});
    }} else {{
        targets.push(`{base}/n/${{i}}`);
    }}
}}
let results = http_check_all(targets, #{{ concurrency: 100, timeout: "10s" }});
assert(results.len() == 500, "count");
for i in 0..500 {{
    let r = results[i];
    if i % 50 == 7 {{
        assert(!r.ok && r.status == 503 && r.name == `bad-${{i}}`, `bad ${{i}}: ${{r}}`);
    }} else {{
        assert(r.ok && r.body_snippet == `/n/${{i}}`, `order ${{i}}: ${{r}}`);
    }}
}}
print(`failed=${{results.filter(|r| !r.ok).len()}}`);
try {{
    http_check_all(["{base}/ok", 42]);
    assert(false, "bad target accepted");
}} catch (e) {{
    assert(e.message.contains("target 1"), `bad target: ${{e}}`);
}}
"#,
            base = s.url("")
        ),
        &[],
    );
    assert!(r.all().contains("failed=10"), "{}", r.all());
    // 500 × 20 ms sequentially would be 10 s; 100 at a time is well under that.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn checks_http_request_json_and_dry_run() {
    let s = server();
    let dir = tempdir();
    run_ok(
        dir.path(),
        &format!(
            r#"
let r = http_request("POST", "{api}", #{{ json: #{{ name: "thing", n: 3 }}, bearer: "tok-123456789", query: #{{ page: "2" }} }});
assert(r.ok && r.status == 200 && r.json.id == 42 && r.headers["content-type"] == "application/json", `req: ${{r}}`);
let g = http_request("GET", "{fail}");
assert(!g.ok && g.status == 500 && g.body == "internal error", `get: ${{g}}`);
"#,
            api = s.url("/api/items"),
            fail = s.url("/fail")
        ),
        &[],
    );
    let recs = s.recorded("/api/items");
    assert_eq!(recs.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&recs[0].body).unwrap();
    assert_eq!(body["name"], "thing");
    assert_eq!(body["n"], 3);
    assert_eq!(recs[0].headers["authorization"], "Bearer tok-123456789");
    // A dry run does not send a POST.
    run_ok(
        dir.path(),
        &format!(
            r#"
let r = http_request("POST", "{api}", #{{ body: "x" }});
assert(r.dry_run && r.status == (), `dry: ${{r}}`);
"#,
            api = s.url("/api/dry")
        ),
        &["--dry-run"],
    );
    assert!(s.recorded("/api/dry").is_empty());
}

/// A self-signed certificate for 127.0.0.1/localhost valid for `days`, made by openssl.
fn make_cert(dir: &Path, days: u32) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256"])
        .arg("-days")
        .arg(days.to_string())
        .args(["-subj", "/CN=mtn-test.local"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (tests/env/40-checks.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A TLS server answering every connection with a tiny HTTP 200; returns its port.
fn start_tls_server(cert: &Path, key: &Path) -> u16 {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).unwrap(),
    ))
    .collect::<Result<_, _>>()
    .unwrap();
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).unwrap(),
    ))
    .unwrap()
    .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let s = server();
    let listener =
        s.rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
    let port = listener.local_addr().unwrap().port();
    s.rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { break };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\ntls ok")
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

#[test]
fn checks_tls_expiry_self_signed_10_days() {
    let dir = tempdir();
    let (cert, key) = make_cert(dir.path(), 10);
    let port = start_tls_server(&cert, &key);
    run_ok(
        dir.path(),
        &format!(
            r#"
let c = tls_expiry("127.0.0.1:{port}");
assert(c.days_left >= 9 && c.days_left <= 10, `days_left: ${{c}}`);
assert(!c.expired && c.self_signed && c.subject.contains("mtn-test.local"), `cert: ${{c}}`);
assert(c.dns_names.contains("localhost") && c.not_after.len() == 20, `names: ${{c}}`);
let c2 = tls_expiry("https://localhost:{port}/x", #{{ timeout: "5s" }});
assert(c2.days_left == c.days_left, "url form");
// Untrusted by default: the check fails (as a result), naming the certificate problem.
let u = http_check("https://127.0.0.1:{port}/");
assert(!u.ok && u.error.to_lower().contains("certificate"), `untrusted: ${{u}}`);
// Trusted through ca_file: the check passes and reports the days left.
let t = http_check("https://127.0.0.1:{port}/", #{{ ca_file: "{cert}" }});
assert(t.ok && t.body_snippet == "tls ok", `trusted: ${{t}}`);
assert(t.tls_days_left >= 9 && t.tls_days_left <= 10, `tls_days_left: ${{t}}`);
try {{
    tls_expiry("127.0.0.1:{closed}", #{{ timeout: "2s" }});
    assert(false, "closed port gave a certificate");
}} catch (e) {{
    assert(e.kind == "network", `closed: ${{e}}`);
}}
"#,
            cert = cert.display(),
            closed = free_port()
        ),
        &[],
    );
}

#[test]
fn checks_tcp_resolve_system() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let dir = tempdir();
    run_ok(
        dir.path(),
        &format!(
            r#"
let t = tcp_check("127.0.0.1", {port});
assert(t.ok && t.address == "127.0.0.1:{port}", `open: ${{t}}`);
let c = tcp_check("127.0.0.1", {closed}, "2s");
assert(!c.ok && c.error.contains("refused"), `closed: ${{c}}`);
let ips = resolve("localhost");
assert(ips.contains("127.0.0.1"), `resolve: ${{ips}}`);
try {{ resolve("no-such-host.invalid"); assert(false, "resolved"); }}
catch (e) {{ assert(e.kind == "not_found", `nx: ${{e}}`); }}
try {{ tcp_check("127.0.0.1", 70000); assert(false, "port"); }}
catch (e) {{ assert(e.kind == "invalid_input", `port: ${{e}}`); }}
let m = memory();
assert(m.total > 0 && m.available > 0 && m.used_percent >= 0.0 && m.used_percent <= 100.0, `mem: ${{m}}`);
let l = load_avg();
assert(l.one >= 0.0 && l.cpus == cpu_count() && cpu_count() >= 1, `load: ${{l}}`);
"#,
            closed = free_port()
        ),
        &[],
    );
    drop(open);
}

/// Run `script` under a config whose `[policy]` allows only `hosts`.
fn run_allowing_hosts(hosts: &str, script: &str) -> Run {
    let dir = tempdir();
    let config = dir.path().join("mtn.toml");
    std::fs::write(&config, format!("[policy]\nallow_hosts = [{hosts:?}]\n")).unwrap();
    run_script(
        dir.path(),
        "t.rhai",
        script,
        &["--config", config.to_str().unwrap()],
    )
}

#[test]
fn checks_policy_refuses_hosts() {
    let r = run_allowing_hosts(
        "example.com",
        &format!(
            r#"
try {{ http_check("{ok}"); assert(false, "allowed"); }}
catch (e) {{ assert(e.kind == "refused", `refused: ${{e}}`); }}
try {{ tcp_check("127.0.0.1", 22); assert(false, "allowed"); }}
catch (e) {{ assert(e.kind == "refused", `refused: ${{e}}`); }}
"#,
            ok = server().url("/ok")
        ),
    );
    r.expect_code(0);
}

#[test]
fn checks_redirects_obey_allow_hosts() {
    let r = run_allowing_hosts(
        "127.0.0.1",
        &format!(
            r#"
let same = http_check("{same}");
assert(same.ok && same.status == 200, `same host: ${{same}}`);
let other = http_check("{other}");
assert(!other.ok && other.error.contains("redirect refused"), `other host: ${{other}}`);
"#,
            same = server().url("/redirect"),
            other = server().url("/redirect-localhost")
        ),
    );
    r.expect_code(0);
}

#[test]
fn checks_notify_webhook_formats_and_redaction() {
    let s = server();
    let dir = tempdir();
    let r = run_ok(
        dir.path(),
        &format!(
            r#"
let a = notify("{base}/hook/fmt-json/tok-aaaa1111", "disk 91% on db1", #{{ title: "disk", level: "error" }});
assert(a.ok && a.format == "json" && a.status == 200, `json: ${{a}}`);
assert(!a.target.contains("tok-aaaa1111"), `target masked: ${{a.target}}`);
notify("{base}/hook/fmt-slack/T0/B0/tok-bbbb2222", "backup done", #{{ format: "slack", title: "nightly", level: "success" }});
notify("{base}/hook/fmt-discord/tok-cccc3333", "backup done", #{{ format: "discord", title: "nightly" }});
notify("{base}/hook/fmt-mattermost/tok-dddd4444", "restore test passed", #{{ format: "mattermost" }});
notify("{base}/hook/fmt-ntfy/topic-eeee5555", "cert expires in 5 days", #{{ format: "ntfy", title: "TLS", level: "warning" }});
try {{
    notify("{base}/hook/fmt-fail500/tok-ffff6666", "boom");
    assert(false, "500 accepted");
}} catch (e) {{
    assert(e.kind == "server" && e.message.contains("500"), `500: ${{e}}`);
    assert(!e.message.contains("tok-ffff6666"), `token leaked: ${{e.message}}`);
    log(e.message);
}}
try {{ notify("{base}/hook/x", "m", #{{ format: "teams" }}); assert(false, "format"); }}
catch (e) {{ assert(e.message.contains("unknown format"), `fmt: ${{e}}`); }}
"#,
            base = s.url("")
        ),
        &[],
    );
    assert!(!r.all().contains("tok-ffff6666"), "{}", r.all());

    let one = |p: &str| {
        let v = s.recorded(p);
        assert_eq!(v.len(), 1, "{p}: {v:?}");
        v[0].clone()
    };
    let j: serde_json::Value = serde_json::from_str(&one("/hook/fmt-json").body).unwrap();
    assert_eq!(j["message"], "disk 91% on db1");
    assert_eq!(j["title"], "disk");
    assert_eq!(j["level"], "error");
    assert!(j["host"].is_string() && j["time"].is_string());
    let sl: serde_json::Value = serde_json::from_str(&one("/hook/fmt-slack").body).unwrap();
    assert_eq!(sl["text"], ":white_check_mark: *nightly*\nbackup done");
    let d: serde_json::Value = serde_json::from_str(&one("/hook/fmt-discord").body).unwrap();
    assert_eq!(d["content"], "**nightly**\nbackup done");
    let mm: serde_json::Value = serde_json::from_str(&one("/hook/fmt-mattermost").body).unwrap();
    assert_eq!(mm["text"], "restore test passed");
    assert_eq!(mm["username"], "mtn");
    let n = one("/hook/fmt-ntfy");
    assert_eq!(n.body, "cert expires in 5 days");
    assert_eq!(n.headers["title"], "TLS");
    assert_eq!(n.headers["priority"], "4");
    assert_eq!(n.headers["tags"], "warning");
    assert_eq!(
        one("/hook/fmt-json").headers["content-type"],
        "application/json"
    );
}

#[test]
fn checks_ping_healthchecks_style() {
    let s = server();
    let dir = tempdir();
    run_ok(
        dir.path(),
        &format!(
            r#"
let hc = "{base}/hc/5f1c-uuid";
ping(hc, "start");
ping(hc);
ping(hc, "fail", "upload failed");
let r = ping(hc, 3);
assert(r.ok && r.status == 200 && r.attempts == 1, `ping: ${{r}}`);
try {{ ping("{base}/hc/fail500", "start"); assert(false, "500"); }}
catch (e) {{ assert(e.kind == "network" && e.message.contains("3 attempts"), `retries: ${{e}}`); }}
"#,
            base = s.url("")
        ),
        &[],
    );
    let paths: Vec<String> = s
        .recorded("/hc/5f1c")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/hc/5f1c-uuid/start",
            "/hc/5f1c-uuid",
            "/hc/5f1c-uuid/fail",
            "/hc/5f1c-uuid/3"
        ]
    );
    assert_eq!(s.recorded("/hc/5f1c-uuid/fail")[0].body, "upload failed");
    assert_eq!(s.recorded("/hc/fail500").len(), 3);
    // A dry run pings nothing.
    run_ok(
        dir.path(),
        &format!("ping(\"{}\");", s.url("/hc/dry-uuid")),
        &["--dry-run"],
    );
    assert!(s.recorded("/hc/dry-uuid").is_empty());
}

const SMTP_SINK: &str = r#"
import sys, ssl, time, pathlib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
port, out, cert, key = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = len(list(out.glob("*.eml")))
        (out / f"{n}.eml").write_bytes(envelope.original_content or envelope.content)
        (out / f"{n}.rcpt").write_text(",".join(envelope.rcpt_tos))
        return "250 OK"
def auth(server, session, envelope, mechanism, data):
    return AuthResult(success=(data.login == b"alerts" and data.password == b"p@ss-w0rd-xyz"))
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
               require_starttls=True, authenticator=auth, auth_required=True)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn checks_notify_email_starttls_auth() {
    let python = env_var("MTN_TEST_CHECKS_PYTHON");
    let dir = tempdir();
    let (cert, key) = make_cert(dir.path(), 30);
    let out = dir.path().join("mail");
    std::fs::create_dir(&out).unwrap();
    let sink_py = dir.path().join("sink.py");
    std::fs::write(&sink_py, SMTP_SINK).unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(&python)
        .arg(&sink_py)
        .arg(port.to_string())
        .arg(&out)
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start aiosmtpd sink");
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "SMTP sink did not start");

    let r = run_ok(
        dir.path(),
        &format!(
            r#"
let r = notify("smtp://alerts:p%40ss-w0rd-xyz@127.0.0.1:{port}?to=ops@example.com", "Backup of db1 failed\nupload timed out", #{{ subject: "[mtn] db1 backup failed", from: "mtn@example.com", ca_file: "{cert}", to: ["dba@example.com"] }});
assert(r.ok && r.format == "email", `email: ${{r}}`);
assert(r.target == "smtp://alerts:***@127.0.0.1:{port}", `target: ${{r.target}}`);
log(r.target);
try {{
    notify("smtp://alerts:wrong-pass-777@127.0.0.1:{closed}?to=ops@example.com", "x", #{{ ca_file: "{cert}", timeout: "5s" }});
    assert(false, "closed port accepted");
}} catch (e) {{
    assert(!e.message.contains("wrong-pass-777"), `leak: ${{e.message}}`);
    log(e.message);
}}
try {{
    notify("smtp://127.0.0.1:{port}", "x");
    assert(false, "no recipient accepted");
}} catch (e) {{ assert(e.message.contains("recipient"), `to: ${{e}}`); }}
"#,
            cert = cert.display(),
            closed = free_port()
        ),
        &[],
    );
    assert!(
        !r.all().contains("w0rd") && !r.all().contains("wrong-pass-777"),
        "{}",
        r.all()
    );
    let mail = std::fs::read_to_string(out.join("0.eml")).expect("the sink received the email");
    assert!(mail.contains("Subject: [mtn] db1 backup failed"), "{mail}");
    assert!(mail.contains("upload timed out"), "{mail}");
    let rcpt = std::fs::read_to_string(out.join("0.rcpt")).unwrap();
    assert!(
        rcpt.contains("dba@example.com") && rcpt.contains("ops@example.com"),
        "{rcpt}"
    );
    assert!(!out.join("1.eml").exists(), "only one email was sent");
}

#[test]
fn checks_exec_allow_list_timeout_redaction() {
    let dir = tempdir();
    let started = Instant::now();
    let r = run_script_env(
        dir.path(),
        "t.rhai",
        r#"
try { exec("rm", ["-rf", "/tmp/x"]); assert(false, "rm allowed"); }
catch (e) { assert(e.kind == "refused" && e.message.contains("allow-list"), `refused: ${e}`); }
let r = exec("echo", ["hello", "a b", 42]);
assert(r.ok && r.code == 0 && r.stdout == "hello a b 42\n" && r.duration_ms >= 0.0, `echo: ${r}`);
let tok = secret("CHECKS_TOKEN");
let leak = exec("sh", ["-c", "echo token=$T; echo err $T >&2; exit 3"], #{ env: #{ T: tok } });
assert(leak.code == 3 && !leak.ok && leak.stdout == "token=***\n" && leak.stderr == "err ***\n", `redacted: ${leak}`);
let clean = exec("sh", ["-c", "echo ${CHECKS_TOKEN:-unset}"], #{ clear_env: true });
assert(clean.stdout == "unset\n", `clear_env: ${clean}`);
try { exec("sh", ["-c", "exit 4"], #{ check: true }); assert(false, "check"); }
catch (e) { assert(e.kind == "failed" && e.message.contains("code 4"), `check: ${e}`); }
let t0 = now();
try { exec("sleep", ["30"], #{ timeout: "1s" }); assert(false, "not killed"); }
catch (e) { assert(e.message.contains("killed after its timeout"), `timeout: ${e}`); }
assert(now() - t0 < 5.0, "timeout took too long");
"#,
        &[
            "--allow-exec",
            "echo",
            "--allow-exec",
            "sh",
            "--allow-exec",
            "sleep",
        ],
        &[("CHECKS_TOKEN", "s3cr3t-t0ken-value")],
    );
    r.expect_code(0);
    assert!(!r.all().contains("s3cr3t-t0ken-value"), "{}", r.all());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn checks_exec_killed_on_run_timeout_with_children() {
    let dir = tempdir();
    let marker = dir.path().join("survivor");
    let started = Instant::now();
    let r = run_script(
        dir.path(),
        "t.rhai",
        &format!(
            r#"exec("sh", ["-c", "(sleep 3; touch {m}) & sleep 60"]);"#,
            m = marker.display()
        ),
        &["--allow-exec", "sh", "--timeout", "1s"],
    );
    assert_eq!(r.code, 124, "{}", r.all());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "a child of the killed program survived");
}

#[test]
fn checks_track_alert_once_and_recover_once() {
    let dir = tempdir();
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap();
    let mut seen = Vec::new();
    for ok in [false, false, false, false, true, true] {
        let r = run_ok(
            dir.path(),
            &format!(
                r#"let t = track("web/health", {ok});
print(`RESULT ${{t.failures}} ${{t.alert}} ${{t.recovered}} ${{t.down}}`);"#
            ),
            &["--state-dir", state_s],
        );
        let line = r
            .all()
            .lines()
            .find_map(|l| l.split_once("RESULT ").map(|(_, x)| x.to_string()))
            .unwrap();
        seen.push(line);
    }
    assert_eq!(
        seen,
        [
            "1 false false false",
            "2 false false false",
            "3 true false true",
            "4 false false true",
            "0 false true false",
            "0 false false false"
        ]
    );
    let files: Vec<_> = std::fs::read_dir(state.join("track")).unwrap().collect();
    assert_eq!(files.len(), 1, "one state file per key, no temp files left");
    run_ok(
        dir.path(),
        r#"
assert(consecutive_failures("db", false) == 1, "1");
assert(consecutive_failures("db", false) == 2, "2");
assert(consecutive_failures("db") == 2, "read");
assert(consecutive_failures("db", true) == 0, "reset");
try { track("", true); assert(false, "empty key"); } catch (e) { assert(e.kind == "invalid_input", "key"); }
"#,
        &["--state-dir", state_s],
    );
}

#[test]
fn checks_health_script_passes_check() {
    let r = Run::from(
        mtn()
            .arg("check")
            .arg(repo().join("scripts/health.rhai"))
            .output()
            .unwrap(),
    );
    r.expect_code(0);
}

#[test]
fn checks_health_script_alerts_after_3_and_recovers_once() {
    let s = server();
    let dir = tempdir();
    let state = dir.path().join("state");
    let script = repo().join("scripts/health.rhai");
    let run = |url: &str| {
        let r = Run::from(
            mtn()
                .current_dir(dir.path())
                .arg("run")
                .arg(&script)
                .arg("--state-dir")
                .arg(&state)
                .args(["--set", &format!("urls={url}")])
                .args(["--set", &format!("notify={}", s.url("/hook/health-alerts"))])
                .args([
                    "--set",
                    "mem_max=100",
                    "--set",
                    "load_max=1000",
                    "--set",
                    "disk_max=100",
                ])
                .output()
                .unwrap(),
        );
        assert!(r.code == 0 || r.code == 3, "{}", r.all());
    };
    // The endpoint fails 4 runs in a row, then answers again for 2 runs.
    let url = s.url("/flip/health");
    DOWN.lock().unwrap().insert("/flip/health".to_string());
    for _ in 0..4 {
        run(&url);
    }
    DOWN.lock().unwrap().clear();
    for _ in 0..2 {
        run(&url);
    }
    let titles: Vec<String> = s
        .recorded("/hook/health-alerts")
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            format!(
                "{} {}",
                v["level"].as_str().unwrap(),
                v["title"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        titles,
        [format!("error DOWN {url}"), format!("success UP {url}")]
    );
}
