//! Checks: HTTP probes and requests, TLS certificate expiry, TCP ports, name resolution.

pub mod http;
pub mod net;
pub mod tls;

use std::time::Duration;

use rhai::{Array, Dynamic, ImmutableString, Map};

use crate::ctx::Ctx;
use crate::error::{HostError, HostResult};
use crate::host::binding::map_to_json;
use crate::host::registry::Registrar;
use crate::host_fn;
use crate::units::parse_duration;
use http::{Check, CheckOptions};

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
fn build_checks(ctx: &crate::ctx::RunCtx, targets: &Array, shared: &Map) -> HostResult<Vec<Check>> {
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
        let o: CheckOptions = serde_json::from_value(merged)
            .map_err(|e| HostError::invalid(format!("target {i}: invalid options: {e}")))?;
        checks.push(Check::new(ctx, &url, o).map_err(|e| e.context(format!("target {i}")))?);
    }
    Ok(checks)
}

pub fn register(r: &mut Registrar) {
    r.category("checks");

    let doc = (
        "Probe a URL: `#{ ok, status, latency_ms, error, body_snippet, tls_days_left }`; a failure is a result, not an error.\n\nOK means a 2xx/3xx status (after following redirects). `error` says why a check failed: connection refused, timed out, status 500, body mismatch.\n\n```rhai\nlet r = http_check(\"https://example.com/health\");\nif !r.ok { warn(`down: ${r.error}`); }\n```",
        "Probe a URL with options: `method`, `headers`, `body`, `expect_status` (number or array), `contains` (substring, or `/regex/`), `timeout` (default \"10s\"), `retries` + `retry_delay`, `follow_redirects` (default true), `ca_file`, `name`.\n\n```rhai\nlet r = http_check(\"https://example.com/health\", #{ expect_status: [200, 204], contains: \"ok\", timeout: \"5s\", retries: 2, retry_delay: \"1s\" });\nlog(`${r.status} in ${r.latency_ms} ms`);\n```",
    );
    host_fn!(r, "http_check", doc, |ctx, url: &str; opts: CheckOptions| -> "Map" {
        let check = Check::new(&ctx, url, opts)?;
        let clients = ctx.http();
        ctx.block_on(async move { check.run(&clients).await })
    });

    let doc = (
        "Check many URLs concurrently (50 at a time); results in input order. Targets are URL strings or maps `#{ url, ...http_check options }`.\n\n```rhai\nlet results = http_check_all([\"https://a.example.com\", #{ url: \"https://b.example.com/health\", contains: \"ok\" }]);\nfor r in results { if !r.ok { warn(`${r.url}: ${r.error}`); } }\n```",
        "Check many URLs concurrently with shared options: `concurrency` (default 50) plus any http_check option, which a map target can override.\n\n```rhai\nlet results = http_check_all([\"https://a.example.com\"], #{ concurrency: 200, timeout: \"3s\" });\nlet down = results.filter(|r| !r.ok);\n```",
    );
    host_fn!(r, "http_check_all", doc, |ctx, targets: Array; opts| -> "Array" {
        let mut o = opts.clone();
        let concurrency = match o.remove("concurrency") {
            None => DEFAULT_CONCURRENCY,
            Some(c) => c
                .as_int()
                .ok()
                .filter(|c| (1..=10_000).contains(c))
                .map(|c| c as usize)
                .ok_or_else(|| HostError::invalid("`concurrency` must be 1-10000"))?,
        };
        // Same option names as http_check: reject typos before decoding per target.
        crate::host::binding::opts::<CheckOptions>(&o)?;
        let checks = build_checks(&ctx, &targets, &o)?;
        let clients = ctx.http();
        let c2 = ctx.clone();
        ctx.block_on(async move { http::check_all(&c2, &clients, checks, concurrency).await })
    });

    let doc = (
        "Send an HTTP request: `#{ status, ok, headers, body, json, latency_ms }`. Any status is a result; a connection failure is an error (kind `network`). In a dry run only GET/HEAD/OPTIONS are sent.\n\n```rhai\nlet r = http_request(\"GET\", \"https://api.github.com/zen\");\nlog(r.body);\n```",
        "Send an HTTP request with options: `headers`, `body` (text) or `json` (a map/array), `query`, `timeout` (default \"30s\"), `follow_redirects`, `ca_file`, `basic_auth` (\"user:pass\"), `bearer`.\n\n```rhai\nlet r = http_request(\"POST\", \"https://api.example.com/items\", #{ json: #{ name: \"x\" }, bearer: secret(\"API_TOKEN\") });\nif r.ok { log(r.json.id); }\n```",
    );
    host_fn!(r, "http_request", doc, |ctx, method: &str, url: &str; opts: http::RequestOptions| -> "Map" {
        let clients = ctx.http();
        let c2 = ctx.clone();
        ctx.block_on(async move { http::request(&c2, &clients, method, url, opts).await })
    });

    let doc = (
        "Read a server's TLS certificate: `#{ days_left, not_after, subject, issuer, dns_names, expired, self_signed }`. Works on expired and self-signed certificates too. Target: \"host:port\", \"host\" (443) or an https URL.\n\n```rhai\nlet c = tls_expiry(\"example.com:443\");\nif c.days_left < 14 { warn(`certificate expires in ${c.days_left} days`); }\n```",
        "Read a server's TLS certificate with options: `timeout` (default \"10s\"), `server_name` (SNI, when it differs from the host).\n\n```rhai\nlet c = tls_expiry(\"10.0.0.5:443\", #{ server_name: \"www.example.com\", timeout: \"5s\" });\n```",
    );
    host_fn!(r, "tls_expiry", doc, |ctx, target: &str; opts: tls::TlsOptions| -> "Map" {
        let c2 = ctx.clone();
        ctx.block_on(async move { tls::tls_expiry(&c2, target, opts).await })
    });

    // The timeout is a positional argument, not an options map: two definitions.
    host_fn!(r, "tcp_check", "Try to open a TCP connection (5 s timeout): `#{ ok, latency_ms, error, address }`.\n\n```rhai\nif !tcp_check(\"127.0.0.1\", 5432).ok { warn(\"postgres is not listening\"); }\n```", |ctx, host: &str, port: i64| -> "Map" {
        tcp_check(&ctx, host, port, Duration::from_secs(5))
    });
    host_fn!(r, "tcp_check", "Try to open a TCP connection with a timeout (seconds or \"2s\").\n\n```rhai\nlet r = tcp_check(\"db.internal\", 5432, \"2s\");\n```", |ctx, host: &str, port: i64, timeout: Dynamic| -> "Map" {
        tcp_check(&ctx, host, port, duration_arg(&timeout)?)
    });

    host_fn!(r, "resolve", "The IP addresses a host name resolves to (system resolver), IPv4 first; an unknown name is an error of kind `not_found`.\n\n```rhai\nlet ips = resolve(\"localhost\");\nlog(ips);\n```", |ctx, host: &str| -> "Array" {
        let c2 = ctx.clone();
        ctx.block_on(async move { net::resolve(&c2, host).await })
    });
}

fn tcp_check(ctx: &Ctx, host: &str, port: i64, timeout: Duration) -> HostResult<net::TcpResult> {
    let c2 = ctx.clone();
    ctx.block_on(async move { net::tcp_check(&c2, host, port, timeout).await })
}
