//! Checks: HTTP probes and requests, TLS certificate expiry, TCP ports, name resolution.

pub mod http;
pub mod net;
pub mod tls;

use std::time::Duration;

use rhai::{Array, Dynamic, ImmutableString, Map};

use crate::engine::registry::Registrar;
use crate::host::binding::{call, map_to_json, opts, parse_duration, RhaiResult};
use crate::host::error::{HostError, HostResult};
use http::{clients_for, Check, CheckOptions};

/// Default number of checks `http_check_all` runs at once.
const DEFAULT_CONCURRENCY: usize = 50;

/// A duration argument: seconds (int or float) or a string like "5s".
pub fn duration_arg(d: &Dynamic) -> HostResult<Duration> {
    if let Ok(i) = d.as_int() {
        if i >= 0 {
            return Ok(Duration::from_secs(i as u64));
        }
    } else if let Ok(f) = d.as_float() {
        if f >= 0.0 && f.is_finite() {
            return Ok(Duration::from_secs_f64(f));
        }
    } else if let Some(s) = d.read_lock::<ImmutableString>() {
        return parse_duration(&s);
    }
    Err(HostError::invalid(format!(
        "expected a duration (seconds or a string like \"5s\"), got {d}"
    )))
}

/// Decode `http_check_all`'s targets: strings use the shared options, maps override them.
fn build_checks(
    ctx: &crate::engine::ctx::RunCtx,
    targets: &Array,
    shared: &Map,
) -> HostResult<Vec<Check>> {
    let shared_json = map_to_json(shared)?;
    let mut checks = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let (url, merged) = if let Some(s) = t.read_lock::<ImmutableString>() {
            (s.to_string(), shared_json.clone())
        } else if let Some(m) = t.read_lock::<Map>() {
            let mut merged = shared_json.clone();
            let own = map_to_json(&m)?;
            if let (Some(dst), serde_json::Value::Object(src)) = (merged.as_object_mut(), own) {
                dst.extend(src);
            }
            let url = merged
                .as_object_mut()
                .and_then(|o| o.remove("url"))
                .and_then(|u| u.as_str().map(str::to_string))
                .ok_or_else(|| {
                    HostError::invalid(format!("target {i}: a map target needs a `url` string"))
                })?;
            (url, merged)
        } else {
            return Err(HostError::invalid(format!(
                "target {i}: expected a URL string or a map with `url`, got {}",
                t.type_name()
            )));
        };
        let o: CheckOptions = serde_json::from_value(merged).map_err(|e| {
            HostError::invalid(format!("http_check_all: target {i}: invalid options: {e}"))
        })?;
        checks.push(Check::new(ctx, &url, o).map_err(|e| e.context(format!("target {i}")))?);
    }
    Ok(checks)
}

pub fn register(r: &mut Registrar) {
    r.category("checks");

    let ctx = r.ctx.clone();
    let http_check = move |url: &str, o: Map| -> RhaiResult {
        call(&ctx, "http_check", || {
            let o: CheckOptions = opts("http_check", &o)?;
            let check = Check::new(&ctx, url, o)?;
            let clients = clients_for(&ctx);
            ctx.block_on(async move { check.run(&clients).await })
        })
    };
    let f = http_check.clone();
    r.add(
        "http_check",
        &["url: &str"],
        "Map",
        "Probe a URL: `#{ ok, status, latency_ms, error, body_snippet, tls_days_left }`; a failure is a result, not an error.\n\nOK means a 2xx/3xx status (after following redirects). `error` says why a check failed: connection refused, timed out, status 500, body mismatch.\n\n```rhai\nlet r = http_check(\"https://example.com/health\");\nif !r.ok { warn(`down: ${r.error}`); }\n```",
        move |url: &str| f(url, Map::new()),
    );
    r.add(
        "http_check",
        &["url: &str", "opts: Map"],
        "Map",
        "Probe a URL with options: `method`, `headers`, `body`, `expect_status` (number or array), `contains` (substring, or `/regex/`), `timeout` (default \"10s\"), `retries` + `retry_delay`, `follow_redirects` (default true), `ca_file`, `name`.\n\n```rhai\nlet r = http_check(\"https://example.com/health\", #{ expect_status: [200, 204], contains: \"ok\", timeout: \"5s\", retries: 2, retry_delay: \"1s\" });\nlog(`${r.status} in ${r.latency_ms} ms`);\n```",
        http_check,
    );

    let ctx = r.ctx.clone();
    let check_all = move |targets: Array, mut o: Map| -> RhaiResult {
        call(&ctx, "http_check_all", || {
            let concurrency = match o.remove("concurrency") {
                None => DEFAULT_CONCURRENCY,
                Some(c) => c
                    .as_int()
                    .ok()
                    .filter(|c| (1..=10_000).contains(c))
                    .map(|c| c as usize)
                    .ok_or_else(|| {
                        HostError::invalid("http_check_all: `concurrency` must be 1-10000")
                    })?,
            };
            // Same option names as http_check: reject typos before decoding per target.
            opts::<CheckOptions>("http_check_all", &o)?;
            let checks = build_checks(&ctx, &targets, &o)?;
            let clients = clients_for(&ctx);
            let c2 = ctx.clone();
            ctx.block_on(async move { http::check_all(&c2, &clients, checks, concurrency).await })
        })
    };
    let f = check_all.clone();
    r.add(
        "http_check_all",
        &["targets: Array"],
        "Array",
        "Check many URLs concurrently (50 at a time); results in input order. Targets are URL strings or maps `#{ url, ...http_check options }`.\n\n```rhai\nlet results = http_check_all([\"https://a.example.com\", #{ url: \"https://b.example.com/health\", contains: \"ok\" }]);\nfor r in results { if !r.ok { warn(`${r.url}: ${r.error}`); } }\n```",
        move |t: Array| f(t, Map::new()),
    );
    r.add(
        "http_check_all",
        &["targets: Array", "opts: Map"],
        "Array",
        "Check many URLs concurrently with shared options: `concurrency` (default 50) plus any http_check option, which a map target can override.\n\n```rhai\nlet results = http_check_all([\"https://a.example.com\"], #{ concurrency: 200, timeout: \"3s\" });\nlet down = results.filter(|r| !r.ok);\n```",
        check_all,
    );

    let ctx = r.ctx.clone();
    let request = move |method: &str, url: &str, o: Map| -> RhaiResult {
        call(&ctx, "http_request", || {
            let o: http::RequestOptions = opts("http_request", &o)?;
            let clients = clients_for(&ctx);
            let c2 = ctx.clone();
            ctx.block_on(async move { http::request(&c2, &clients, method, url, o).await })
        })
    };
    let f = request.clone();
    r.add(
        "http_request",
        &["method: &str", "url: &str"],
        "Map",
        "Send an HTTP request: `#{ status, ok, headers, body, json, latency_ms }`. Any status is a result; a connection failure is an error (kind `network`). In a dry run only GET/HEAD/OPTIONS are sent.\n\n```rhai\nlet r = http_request(\"GET\", \"https://api.github.com/zen\");\nlog(r.body);\n```",
        move |m: &str, u: &str| f(m, u, Map::new()),
    );
    r.add(
        "http_request",
        &["method: &str", "url: &str", "opts: Map"],
        "Map",
        "Send an HTTP request with options: `headers`, `body` (text) or `json` (a map/array), `query`, `timeout` (default \"30s\"), `follow_redirects`, `ca_file`, `basic_auth` (\"user:pass\"), `bearer`.\n\n```rhai\nlet r = http_request(\"POST\", \"https://api.example.com/items\", #{ json: #{ name: \"x\" }, bearer: secret(\"API_TOKEN\") });\nif r.ok { log(r.json.id); }\n```",
        request,
    );

    let ctx = r.ctx.clone();
    let expiry = move |target: &str, o: Map| -> RhaiResult {
        call(&ctx, "tls_expiry", || {
            let o: tls::TlsOptions = opts("tls_expiry", &o)?;
            let c2 = ctx.clone();
            ctx.block_on(async move { tls::tls_expiry(&c2, target, o).await })
        })
    };
    let f = expiry.clone();
    r.add(
        "tls_expiry",
        &["target: &str"],
        "Map",
        "Read a server's TLS certificate: `#{ days_left, not_after, subject, issuer, dns_names, expired, self_signed }`. Works on expired and self-signed certificates too. Target: \"host:port\", \"host\" (443) or an https URL.\n\n```rhai\nlet c = tls_expiry(\"example.com:443\");\nif c.days_left < 14 { warn(`certificate expires in ${c.days_left} days`); }\n```",
        move |t: &str| f(t, Map::new()),
    );
    r.add(
        "tls_expiry",
        &["target: &str", "opts: Map"],
        "Map",
        "Read a server's TLS certificate with options: `timeout` (default \"10s\"), `server_name` (SNI, when it differs from the host).\n\n```rhai\nlet c = tls_expiry(\"10.0.0.5:443\", #{ server_name: \"www.example.com\", timeout: \"5s\" });\n```",
        expiry,
    );

    let ctx = r.ctx.clone();
    let tcp = move |host: &str, port: i64, timeout: Dynamic| -> RhaiResult {
        call(&ctx, "tcp_check", || {
            let timeout = duration_arg(&timeout)?;
            let c2 = ctx.clone();
            ctx.block_on(async move { net::tcp_check(&c2, host, port, timeout).await })
        })
    };
    let f = tcp.clone();
    r.add(
        "tcp_check",
        &["host: &str", "port: i64"],
        "Map",
        "Try to open a TCP connection (5 s timeout): `#{ ok, latency_ms, error, address }`.\n\n```rhai\nif !tcp_check(\"127.0.0.1\", 5432).ok { warn(\"postgres is not listening\"); }\n```",
        move |h: &str, p: i64| f(h, p, Dynamic::from(5_i64)),
    );
    r.add(
        "tcp_check",
        &["host: &str", "port: i64", "timeout: ?"],
        "Map",
        "Try to open a TCP connection with a timeout (seconds or \"2s\").\n\n```rhai\nlet r = tcp_check(\"db.internal\", 5432, \"2s\");\n```",
        tcp,
    );

    let ctx = r.ctx.clone();
    r.add(
        "resolve",
        &["host: &str"],
        "Array",
        "The IP addresses a host name resolves to (system resolver), IPv4 first; an unknown name is an error of kind `not_found`.\n\n```rhai\nlet ips = resolve(\"localhost\");\nlog(ips);\n```",
        move |host: &str| -> RhaiResult {
            call(&ctx, "resolve", || {
                let c2 = ctx.clone();
                ctx.block_on(async move { net::resolve(&c2, host).await })
            })
        },
    );
}
